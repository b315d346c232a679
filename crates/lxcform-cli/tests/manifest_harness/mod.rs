//! Harness for the manifest tests (`plan`, `apply`): runs the built `lxcform` as a process,
//! owns a temporary directory whose `Drop` destroys every container under it (even when the
//! test panics), and parses the JSON output into types defined here, apart from the library's,
//! with `deny_unknown_fields`: a change of the contract breaks a test.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

#[path = "../common/mod.rs"]
mod common;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lxcform");

/// Longest one run may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(300);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

// --- JSON contract ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
    Frozen,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    None,
    Create,
    Update,
    Destroy,
}

/// One config change in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum ConfigChange {
    Add {
        key: String,
        value: String,
    },
    Replace {
        key: String,
        value: String,
        old: String,
    },
    Remove {
        key: String,
        value: String,
    },
}

/// `plan --json`, one container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryPlan {
    pub name: String,
    pub lxc_path: PathBuf,
    pub line: u64,
    pub action: Action,
    pub changed: bool,
    pub steps: Vec<String>,
    pub config: Vec<ConfigChange>,
    pub before: State,
    pub after: State,
    #[serde(default)]
    pub clone: Option<String>,
    pub waits_for: Vec<String>,
    pub predicted: bool,
    pub warnings: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `plan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub changes: usize,
    pub unchanged: usize,
    pub errors: usize,
    pub containers: Vec<EntryPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOut {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `apply --json`, one container.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryResult {
    pub name: String,
    pub lxc_path: PathBuf,
    pub line: u64,
    pub status: Status,
    pub ok: bool,
    pub changed: bool,
    pub steps: Vec<String>,
    pub state: String,
    pub warnings: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub log: Vec<String>,
    #[serde(default)]
    pub command: Option<CommandOut>,
    #[serde(default)]
    pub signal: Option<i32>,
    pub seconds: f64,
}

/// `apply --json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub seconds: f64,
    #[serde(default)]
    pub interrupted: Option<i32>,
    pub containers: Vec<EntryResult>,
}

impl Summary {
    /// The result of the entry for `name` (the first, when several entries name it).
    #[track_caller]
    pub fn of(&self, name: &str) -> &EntryResult {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no result for {name} in {self:#?}"))
    }
}

/// An invalid manifest with `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalid {
    pub failed: bool,
    pub msg: String,
    pub problems: Vec<String>,
}

// --- running --------------------------------------------------------------------------------

/// What a process did.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as `T`.
    #[track_caller]
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> T {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the expected JSON ({e}); {self:#?}"))
    }

    /// Panics with the output unless the exit code is `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code; {self:#?}");
        self
    }
}

/// Runs a program with `LC_ALL=C`, stdin closed, killing it after [`TIMEOUT`].
pub fn run(program: &str, args: &[&str]) -> Run {
    let r = common::run_program_within(program, args, TIMEOUT);
    Run {
        code: r.code,
        stdout: r.stdout,
        stderr: r.stderr,
    }
}

/// Runs `lxcform` with these arguments.
pub fn lxcform(args: &[&str]) -> Run {
    run(BIN, args)
}

/// Starts `lxcform` with these arguments, stdin closed, stdout and stderr piped.
pub fn spawn(args: &[&str]) -> std::process::Child {
    std::process::Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lxcform")
}

/// Sends `signal` (`-INT`, `-TERM`, …) to process `pid` with kill(1).
#[track_caller]
pub fn send(signal: &str, pid: u32) {
    let r = run("kill", &[signal, &pid.to_string()]);
    assert_eq!(r.code, 0, "kill {signal} {pid}: {r:#?}");
}

/// Polls `done` every 10 ms until it holds; fails the test, saying `what`, after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !done() {
        assert!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// --- skipping -------------------------------------------------------------------------------

// Not every test file uses each of them.
#[allow(unused_imports)]
pub use common::{have_program as have, is_root, skip, skip_live, write_script};

// --- temporary directory --------------------------------------------------------------------

/// A temporary directory for a manifest and its lxc_paths. Dropping it stops and destroys every
/// container under it, unmounts what was mounted in it and removes it.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl TempDir {
    pub fn new(test: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("lxcform-mf-{test}-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir {
            path,
            mounts: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/sub` as a string.
    pub fn sub(&self, sub: &str) -> String {
        self.path.join(sub).display().to_string()
    }

    /// Writes a manifest and returns its path.
    pub fn manifest(&self, name: &str, text: &str) -> String {
        let p = self.path.join(name);
        fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p.display().to_string()
    }

    /// Writes a manifest of busybox containers without network in `lxc_path`, `entries`
    /// being its `containers:` list (YAML, two-space indented items), and returns its path.
    pub fn busybox_manifest(&self, name: &str, lxc_path: &str, entries: &str) -> String {
        self.manifest(
            name,
            &format!(
                "defaults:\n  template: busybox\n  lxc_path: {lxc_path}\n  container_config: [lxc.net.0.type=empty]\ncontainers:\n{entries}"
            ),
        )
    }

    /// A btrfs filesystem on a loop image mounted at `self/sub`, or `None` (with the reason
    /// printed) when this host cannot make one.
    pub fn btrfs(&mut self, sub: &str) -> Option<String> {
        if !have("mkfs.btrfs") {
            skip(format_args!("SKIP btrfs part: mkfs.btrfs missing"));
            return None;
        }
        let image = self.path.join(format!("{sub}.img"));
        let dir = self.path.join(sub);
        fs::create_dir_all(&dir).ok()?;
        let image_s = image.display().to_string();
        let dir_s = dir.display().to_string();
        let steps: [(&str, Vec<&str>); 3] = [
            ("truncate", vec!["-s", "1G", &image_s]),
            ("mkfs.btrfs", vec!["-q", &image_s]),
            ("mount", vec!["-o", "loop", &image_s, &dir_s]),
        ];
        for (program, args) in steps {
            let r = run(program, &args);
            if r.code != 0 {
                skip(format_args!(
                    "SKIP btrfs part: {program} failed: {}",
                    r.stderr.trim()
                ));
                return None;
            }
        }
        self.mounts.push(dir);
        Some(dir_s)
    }

    /// The state `lxc-info` reports for `name` in `lxc_path` (`RUNNING` …, or `ABSENT`).
    pub fn lxc_state(lxc_path: &str, name: &str) -> String {
        let r = run("lxc-info", &["-P", lxc_path, "-n", name, "-s"]);
        if r.code != 0 {
            return "ABSENT".into();
        }
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .map_or_else(|| "?".into(), |s| s.trim().to_string())
    }

    /// Every lxc_path under this directory holding containers, with their names.
    fn containers(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.filter_map(Result::ok) {
                let p = e.path();
                if p.join("config").is_file() {
                    out.push((d.clone(), e.file_name().to_string_lossy().into_owned()));
                } else if p.is_dir() && !p.is_symlink() && d == self.path {
                    dirs.push(p);
                }
            }
        }
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if is_root() {
            for (lxc_path, name) in self.containers() {
                let p = lxc_path.display().to_string();
                let _ = run("lxc-stop", &["-P", &p, "-n", &name, "-k"]);
                let _ = run("lxc-destroy", &["-P", &p, "-n", &name, "-f"]);
            }
            for m in self.mounts.iter().rev() {
                let _ = run("umount", &[&m.display().to_string()]);
            }
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}
