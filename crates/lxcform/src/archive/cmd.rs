//! External commands (mount, btrfs, lvcreate, zfs …) through one runner: `LC_ALL=C`, no
//! stdin, and an error that carries the command line and its trimmed stderr.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use super::ArchiveError;

/// Runs `program` with `args`; returns its stdout on exit status 0.
pub fn run<S: AsRef<OsStr>>(
    container: &str,
    program: &str,
    args: &[S],
) -> Result<String, ArchiveError> {
    let shown = std::iter::once(program.to_string())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |detail: String| ArchiveError::Command {
        container: container.to_string(),
        command: shown.clone(),
        detail,
    };
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    Err(fail(if stderr.is_empty() {
        out.status.to_string()
    } else {
        format!("{}: {stderr}", out.status)
    }))
}

/// Whether `path` is a mount point in this process's mount namespace.
pub fn is_mount_point(path: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| unescape_mountinfo(m) == want)
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or(""), 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let err = run("c1", "sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo oops >&2; exit 3"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
        assert_eq!(run("c1", "sh", &["-c", "echo hi"]).unwrap(), "hi\n");
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert!(is_mount_point(std::path::Path::new("/")));
    }
}
