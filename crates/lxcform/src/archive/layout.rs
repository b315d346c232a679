//! Archive file names and the paths of entries inside an archive (pure, no I/O).

use std::path::{Path, PathBuf};

use crate::spec::Compression;

/// `<name>.<extension>`: `web1.tar.tgz`, `web1.tar.zst` …, as the module names them.
pub fn file_name(name: &str, compression: Compression) -> String {
    format!("{name}.{}", compression.extension())
}

/// Prefix of the temporary files an archive is written to before it is renamed into place:
/// `.<file name>.lxcform-tmp.` followed by the writer's pid.
pub fn temp_prefix(name: &str, compression: Compression) -> String {
    format!(".{}.lxcform-tmp.", file_name(name, compression))
}

/// The temporary file an archive of `name` is written to in `dir` by process `pid`.
pub fn temp_path(dir: &Path, name: &str, compression: Compression, pid: u32) -> PathBuf {
    dir.join(format!("{}{pid}", temp_prefix(name, compression)))
}

/// Files of a container's directory that are not archived beside its `config`: the store's
/// own files (the rootfs, an overlay's layers, a loop image), liblxc's snapshot bookkeeping
/// (which would tie a restored container to others), logs, and lxcform's temporary names.
pub fn is_container_file_archived(file_name: &[u8], loop_image: Option<&[u8]>) -> bool {
    const SKIP: [&[u8]; 5] = [
        b"config",
        b"rootfs",
        b"lxc_rdepends",
        b"lxc_snapshots",
        b"partial",
    ];
    !(SKIP.contains(&file_name)
        || loop_image == Some(file_name)
        || file_name.ends_with(b".log")
        || file_name.starts_with(b".lxcform-"))
}

/// Where an archive entry belongs, once its container directory `<name>/` is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place<'a> {
    /// `.`, `./` or the container directory itself.
    Top,
    /// `<name>/config`.
    Config,
    /// Another file directly in the container directory (`fstab`, a hook script …).
    ContainerFile(&'a [u8]),
    /// `<name>/rootfs` itself (empty) or a path below it.
    Rootfs(&'a [u8]),
    /// Anything else under `<name>/` (a Python-module archive of an overlay container holds
    /// its raw layers here): not restored.
    Other(&'a [u8]),
}

/// The path with `./` and `/` prefixes removed (`./web1/config` → `web1/config`).
pub fn normalize(path: &[u8]) -> &[u8] {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix(b"/") {
            p = rest;
        } else {
            break;
        }
    }
    if p == b"." {
        return b"";
    }
    p
}

/// The container directory an entry lies in (its first path component), if any.
pub fn container_of(path: &[u8]) -> Option<&[u8]> {
    let p = normalize(path);
    let first = p.split(|&b| b == b'/').next().unwrap_or(b"");
    (!first.is_empty()).then_some(first)
}

/// Classifies `path` for an archive whose container directory is `name`; `None` when the entry
/// lies outside it (an archive of several containers, or a foreign tarball).
pub fn place<'a>(path: &'a [u8], name: &[u8]) -> Option<Place<'a>> {
    let p = normalize(path);
    if p.is_empty() {
        return Some(Place::Top);
    }
    let rest = p.strip_prefix(name)?;
    let rest = match rest {
        [] => return Some(Place::Top),
        [b'/', rest @ ..] => rest,
        _ => return None,
    };
    let rest = trim_slashes(rest);
    if rest.is_empty() {
        return Some(Place::Top);
    }
    if rest == b"config" {
        return Some(Place::Config);
    }
    if rest == b"rootfs" {
        return Some(Place::Rootfs(b""));
    }
    if let Some(below) = rest.strip_prefix(b"rootfs/") {
        return Some(Place::Rootfs(trim_slashes(below)));
    }
    if !rest.contains(&b'/') {
        return Some(Place::ContainerFile(rest));
    }
    Some(Place::Other(rest))
}

fn trim_slashes(mut p: &[u8]) -> &[u8] {
    while let Some(rest) = p.strip_suffix(b"/") {
        p = rest;
    }
    while let Some(rest) = p.strip_prefix(b"/") {
        p = rest;
    }
    p
}

/// Splits a rootfs-relative path into its components, refusing `..`, `.` and empty ones
/// (an archive must not reach outside the rootfs it is extracted into).
pub fn safe_components(rel: &[u8]) -> Option<Vec<&[u8]>> {
    let parts: Vec<&[u8]> = rel
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.iter().any(|c| *c == b"..") {
        return None;
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_module() {
        assert_eq!(file_name("web1", Compression::Gzip), "web1.tar.tgz");
        assert_eq!(file_name("web1", Compression::Bzip2), "web1.tar.bz2");
        assert_eq!(file_name("web1", Compression::None), "web1.tar");
        assert_eq!(file_name("web1", Compression::Xz), "web1.tar.xz");
        assert_eq!(file_name("web1", Compression::Zstd), "web1.tar.zst");
        assert_eq!(
            temp_path(Path::new("/b"), "web1", Compression::Zstd, 42),
            Path::new("/b/.web1.tar.zst.lxcform-tmp.42")
        );
    }

    #[test]
    fn python_module_and_our_paths_place_alike() {
        for prefix in ["", "./"] {
            let p = |s: &str| format!("{prefix}{s}").into_bytes();
            assert_eq!(place(&p("web1/config"), b"web1"), Some(Place::Config));
            assert_eq!(place(&p("web1/"), b"web1"), Some(Place::Top));
            assert_eq!(place(&p("web1/rootfs/"), b"web1"), Some(Place::Rootfs(b"")));
            assert_eq!(
                place(&p("web1/rootfs/etc/passwd"), b"web1"),
                Some(Place::Rootfs(b"etc/passwd"))
            );
            assert_eq!(
                place(&p("web1/fstab"), b"web1"),
                Some(Place::ContainerFile(b"fstab"))
            );
            assert_eq!(
                place(&p("web1/overlay/delta/x"), b"web1"),
                Some(Place::Other(b"overlay/delta/x"))
            );
            assert_eq!(place(&p("web10/config"), b"web1"), None);
        }
        assert_eq!(place(b"./", b"web1"), Some(Place::Top));
        assert_eq!(place(b".", b"web1"), Some(Place::Top));
        assert_eq!(container_of(b"./web1/config"), Some(&b"web1"[..]));
        assert_eq!(container_of(b"./"), None);
    }

    #[test]
    fn dot_dot_never_escapes() {
        assert_eq!(
            safe_components(b"etc/./passwd"),
            Some(vec![&b"etc"[..], b"passwd"])
        );
        assert_eq!(safe_components(b"etc/../../x"), None);
        assert_eq!(safe_components(b""), Some(vec![]));
    }

    #[test]
    fn container_files_skip_store_files() {
        assert!(is_container_file_archived(b"fstab", None));
        assert!(!is_container_file_archived(b"config", None));
        assert!(!is_container_file_archived(b"rootdev", Some(b"rootdev")));
        assert!(!is_container_file_archived(b"lxc_rdepends", None));
        assert!(!is_container_file_archived(b"web1.log", None));
        assert!(!is_container_file_archived(b".lxcform-archive-view", None));
    }
}
