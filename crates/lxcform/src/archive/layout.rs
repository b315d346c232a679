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
    format!(".{}{TEMP_MARK}", file_name(name, compression))
}

/// What the name of an archive's temporary file has before the writer's pid.
pub const TEMP_MARK: &str = ".lxcform-tmp.";

/// The temporary file an archive of `name` is written to in `dir` by process `pid`.
pub fn temp_path(dir: &Path, name: &str, compression: Compression, pid: u32) -> PathBuf {
    dir.join(format!("{}{pid}", temp_prefix(name, compression)))
}

/// Archive path of the container directory: the archive's root, as the Python module writes
/// it (`tar --directory=<copy of the container directory> -czf NAME.tar.tgz .`), so that a
/// restore script written for its archives (`tar -xzf NAME.tar.tgz -C /var/lib/lxc/NAME`)
/// works unchanged.
pub const CONTAINER_DIR: &[u8] = b".";

/// Archive path of the root filesystem (the merged view, whatever the store).
pub const ROOTFS: &[u8] = b"./rootfs";

/// Whether file `file_name` of a container's directory is archived beside its `config` (only
/// regular files are; directories are not). Archived: `fstab`, hook scripts and the like,
/// which the config may name and a restore puts back. Not archived:
/// - the store's own files: the `rootfs` (archived as the view, see [`ROOTFS`]), a loop image
///   (its content is the rootfs), an overlay's layers (merged into the rootfs: a second, raw
///   copy of the upper layer would double every changed file and no restore would use it);
/// - liblxc's bookkeeping: `lxc_snapshots` (snapshots are whole root filesystems of their own;
///   a restore makes a standalone container), `lxc_rdepends` (which ties a clone to its
///   origin: it would tie the restored container to containers of another host), `partial`
///   (the mark of a create still running);
/// - logs (`*.log`: the host's history of this container, not part of it);
/// - lxcform's own files (`.lxcform-*`: the archive's view and freeze mark, a restore's mount
///   point; its locks live in the lxc_path, not here).
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
        || file_name.starts_with(b".lxcform-")
        || file_name == b"."
        || file_name == b"..")
}

/// Where an archive entry belongs in the container directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place<'a> {
    /// The container directory itself (`./`, `NAME/`), or `./` above it.
    Top,
    /// `config`.
    Config,
    /// Another entry directly in the container directory (`fstab`, a hook script …).
    ContainerFile(&'a [u8]),
    /// `rootfs` itself (empty) or a path below it.
    Rootfs(&'a [u8]),
    /// Anything else in the container directory (a Python-module archive of an overlay
    /// container holds its raw upper layer here): not restored.
    Other(&'a [u8]),
    /// `X/file`, while it is not known yet whether the archive's one top-level directory `X`
    /// is the container directory (then this is a container file) or a directory in it (then
    /// it is not restored): see [`Layout`].
    Pending(&'a [u8]),
}

/// Where an archive keeps the container directory, learnt from its entries in order.
///
/// - lxcform's archives and the Python module's have it at the root: `./`, `./config`,
///   `./rootfs/…` (the Python module's in the order of `readdir`).
/// - lxcform's earlier archives (and `tar -C /var/lib/lxc -cf … NAME`) have it in `NAME/`:
///   `NAME/`, `NAME/config`, `NAME/rootfs/…`; `tar -C /var/lib/lxc -cf … ./NAME` writes the
///   same with a `./` prefix.
///
/// The two tell apart by the entries at the top: a file there, `rootfs`, or two names there
/// mean the root; a single top-level directory `X` holding `config` or `rootfs` means `X/`.
/// Until then, the entries in `X` are not restored either way, except its files, which may be
/// the container's: [`Place::Pending`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Layout {
    /// Nothing seen yet (or only `./`).
    #[default]
    Open,
    /// Not known yet; the archive's one top-level directory so far.
    Candidate(Vec<u8>),
    /// The container directory is the archive's root.
    Root,
    /// The container directory is `NAME/`.
    Named(Vec<u8>),
}

impl Layout {
    /// Places the entry `path` (a directory if `dir`), learning the layout from it; `None`
    /// for an entry outside the container directory `NAME/` (an archive of several containers,
    /// or a foreign tarball).
    pub fn place<'a>(&mut self, path: &'a [u8], dir: bool) -> Option<Place<'a>> {
        let p = trim_slashes(normalize(path));
        if p.is_empty() {
            return Some(Place::Top);
        }
        let (first, rest) = match p.iter().position(|&b| b == b'/') {
            Some(i) => (&p[..i], Some(&p[i + 1..])),
            None => (p, None),
        };
        if *self == Layout::Open {
            *self = if first != b"rootfs" && first != b".." && (dir || rest.is_some()) {
                Layout::Candidate(first.to_vec())
            } else {
                Layout::Root
            };
        }
        if let Layout::Candidate(x) = self {
            if first != &x[..] {
                *self = Layout::Root;
            } else {
                match rest {
                    None => return Some(Place::Top),
                    Some(r) if r == b"config" || r == b"rootfs" || r.starts_with(b"rootfs/") => {
                        *self = Layout::Named(x.clone());
                    }
                    Some(r) if !r.contains(&b'/') => return Some(Place::Pending(r)),
                    Some(_) => return Some(Place::Other(p)),
                }
            }
        }
        self.locate(p)
    }

    /// Places `path` (a hard link's target) by what is known so far: `None` outside the
    /// container directory or while the layout is not known.
    pub fn locate<'a>(&self, path: &'a [u8]) -> Option<Place<'a>> {
        let p = trim_slashes(normalize(path));
        let rest = match self {
            Layout::Root => p,
            Layout::Named(name) => match p.strip_prefix(&name[..])? {
                [] => b"",
                [b'/', rest @ ..] => trim_slashes(rest),
                _ => return None,
            },
            Layout::Open | Layout::Candidate(_) => return None,
        };
        Some(match rest {
            b"" => Place::Top,
            b"config" => Place::Config,
            b"rootfs" => Place::Rootfs(b""),
            _ => match rest.strip_prefix(b"rootfs/") {
                Some(below) => Place::Rootfs(trim_slashes(below)),
                None if !rest.contains(&b'/') && rest != b"." && rest != b".." => {
                    Place::ContainerFile(rest)
                }
                None => Place::Other(rest),
            },
        })
    }

    /// Whether the layout is known.
    pub fn is_known(&self) -> bool {
        matches!(self, Layout::Root | Layout::Named(_))
    }

    /// The container's name, for an archive that keeps it as `NAME/`.
    pub fn name(&self) -> Option<&[u8]> {
        match self {
            Layout::Named(name) => Some(name),
            _ => None,
        }
    }
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

    /// The places of `entries` (path, is a directory) read in order, and the layout learnt.
    fn read<'a>(entries: &[(&'a str, bool)]) -> (Vec<Option<Place<'a>>>, Layout) {
        let mut layout = Layout::default();
        let places = entries
            .iter()
            .map(|(p, dir)| layout.place(p.as_bytes(), *dir))
            .collect();
        (places, layout)
    }

    #[test]
    fn our_and_the_python_modules_archives_have_the_container_directory_at_the_root() {
        // Ours, in our order.
        let (places, layout) = read(&[
            ("./", true),
            ("./config", false),
            ("./fstab", false),
            ("./rootfs/", true),
            ("./rootfs/etc/passwd", false),
        ]);
        assert_eq!(layout, Layout::Root);
        assert_eq!(
            places,
            [
                Some(Place::Top),
                Some(Place::Config),
                Some(Place::ContainerFile(b"fstab")),
                Some(Place::Rootfs(b"")),
                Some(Place::Rootfs(b"etc/passwd")),
            ]
        );
        assert_eq!(
            layout.locate(b"./rootfs/bin/sh"),
            Some(Place::Rootfs(b"bin/sh"))
        );
        // The Python module's, in readdir order: a directory first that is not the rootfs (an
        // overlay's upper layer, snapshots), a file in it, then the config.
        let (places, layout) = read(&[
            ("./", true),
            ("./delta0/", true),
            ("./delta0/file", false),
            ("./delta0/etc/hosts", false),
            ("./config", false),
            ("./rootfs/", true),
        ]);
        assert_eq!(layout, Layout::Root);
        assert_eq!(
            places,
            [
                Some(Place::Top),
                Some(Place::Top),
                Some(Place::Pending(b"file")),
                Some(Place::Other(b"delta0/etc/hosts")),
                Some(Place::Config),
                Some(Place::Rootfs(b"")),
            ]
        );
        // The rootfs first, without `./`.
        let (places, layout) = read(&[("rootfs/", true), ("rootfs/bin/sh", false)]);
        assert_eq!(layout, Layout::Root);
        assert_eq!(places[1], Some(Place::Rootfs(b"bin/sh")));
    }

    #[test]
    fn archives_with_a_named_container_directory_still_read() {
        for prefix in ["", "./"] {
            let p = |s: &str| format!("{prefix}{s}");
            let paths = [
                p("web1/"),
                p("web1/fstab"),
                p("web1/config"),
                p("web1/rootfs/"),
                p("web1/rootfs/etc/passwd"),
                p("web1/overlay/delta/x"),
            ];
            let mut entries: Vec<(&str, bool)> = paths
                .iter()
                .map(|s| (s.as_str(), s.ends_with('/')))
                .collect();
            if prefix == "./" {
                entries.insert(0, ("./", true));
            }
            let (mut places, mut layout) = read(&entries);
            if prefix == "./" {
                assert_eq!(places.remove(0), Some(Place::Top));
            }
            assert_eq!(layout, Layout::Named(b"web1".to_vec()), "{prefix}");
            assert_eq!(layout.name(), Some(&b"web1"[..]));
            assert_eq!(
                places,
                [
                    Some(Place::Top),
                    Some(Place::Pending(b"fstab")),
                    Some(Place::Config),
                    Some(Place::Rootfs(b"")),
                    Some(Place::Rootfs(b"etc/passwd")),
                    Some(Place::Other(b"overlay/delta/x")),
                ],
                "{prefix}"
            );
            assert_eq!(layout.place(p("web10/config").as_bytes(), false), None);
            assert_eq!(
                layout.locate(p("web1/rootfs/bin/sh").as_bytes()),
                Some(Place::Rootfs(b"bin/sh"))
            );
        }
        // The rootfs before the config, as `tar` may write them.
        let (places, layout) = read(&[("./web1/", true), ("./web1/rootfs/", true)]);
        assert_eq!(layout, Layout::Named(b"web1".to_vec()));
        assert_eq!(places[1], Some(Place::Rootfs(b"")));
    }

    #[test]
    fn an_unknown_layout_places_no_hard_link() {
        let mut layout = Layout::default();
        assert!(!layout.is_known());
        assert_eq!(layout.place(b"./", true), Some(Place::Top));
        assert_eq!(layout.place(b"./web1/", true), Some(Place::Top));
        assert!(!layout.is_known());
        assert_eq!(layout.locate(b"./web1/rootfs/x"), None);
        assert_eq!(layout.place(b"./web1/config", false), Some(Place::Config));
        assert!(layout.is_known());
        // `..` is never a candidate nor a container file.
        let (places, layout) = read(&[("../", true), ("..", false)]);
        assert_eq!(layout, Layout::Root);
        assert_eq!(
            places,
            [Some(Place::Other(b"..")), Some(Place::Other(b".."))]
        );
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
        assert!(!is_container_file_archived(b"..", None));
        assert!(!is_container_file_archived(b".", None));
    }
}
