//! Walking a root filesystem: one directory tree, or the merged view of an overlay's layers
//! read straight from its upper and lower directories, as the kernel would show them mounted.
//!
//! Overlay rules honoured ([`merge`]): a whiteout (a 0:0 character device, or an empty file
//! with `trusted.overlay.whiteout`) hides the name in the layers below; an opaque directory
//! (`trusted.overlay.opaque=y`) hides the directories below it; a directory is merged with the
//! directories of the same name below it until a layer holds a non-directory there. Redirected
//! directories and metacopy files (`trusted.overlay.redirect`/`metacopy`, off unless the
//! overlay was mounted with those features, which LXC does not do) are refused rather than
//! archived wrongly.
//!
//! Entries come out parents first, each directory's entries sorted by name, so archives of the
//! same tree are the same.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::liblxc::sys;

/// What one layer holds under a name, as far as merging is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A whiteout: the name is deleted.
    Whiteout,
    /// A directory; opaque ones hide the layers below.
    Dir {
        /// `trusted.overlay.opaque=y`.
        opaque: bool,
    },
    /// Anything else.
    Other,
}

/// One entry of a merged directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Its name.
    pub name: Vec<u8>,
    /// The layer whose entry is shown.
    pub layer: usize,
    /// For a directory: the layers (top first) whose directories of this name merge into it.
    pub dir_layers: Vec<usize>,
}

/// What one layer holds in one directory: `(layer, [(name, seen)])`.
pub type Listing = (usize, Vec<(Vec<u8>, Seen)>);

/// Merges one directory's listings, given top layer first.
pub fn merge(listings: &[Listing]) -> Vec<Merged> {
    enum State {
        Hidden,
        Shown {
            layer: usize,
            dir_layers: Vec<usize>,
            closed: bool,
        },
    }
    let mut names: BTreeMap<Vec<u8>, State> = BTreeMap::new();
    for (layer, entries) in listings {
        for (name, seen) in entries {
            match names.get_mut(name) {
                None => {
                    let state = match seen {
                        Seen::Whiteout => State::Hidden,
                        Seen::Other => State::Shown {
                            layer: *layer,
                            dir_layers: Vec::new(),
                            closed: true,
                        },
                        Seen::Dir { opaque } => State::Shown {
                            layer: *layer,
                            dir_layers: vec![*layer],
                            closed: *opaque,
                        },
                    };
                    names.insert(name.clone(), state);
                }
                Some(State::Shown {
                    dir_layers, closed, ..
                }) if !*closed => match seen {
                    Seen::Dir { opaque } => {
                        dir_layers.push(*layer);
                        *closed = *opaque;
                    }
                    Seen::Whiteout | Seen::Other => *closed = true,
                },
                Some(_) => {}
            }
        }
    }
    names
        .into_iter()
        .filter_map(|(name, state)| match state {
            State::Hidden => None,
            State::Shown {
                layer, dir_layers, ..
            } => Some(Merged {
                name,
                layer,
                dir_layers,
            }),
        })
        .collect()
}

/// Receives the entries of a walk.
pub trait Visitor {
    /// One entry: its path relative to the root (empty for the root itself), where to read
    /// it, and its metadata (not following symlinks).
    fn entry(&mut self, rel: &[u8], src: &Path, meta: &Metadata) -> io::Result<()>;
    /// A name that vanished while the walk ran (not an error: noted).
    fn vanished(&mut self, src: &Path);
}

/// How to walk.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The layers, top first; one for a plain tree.
    pub layers: Vec<PathBuf>,
    /// Read overlay whiteouts and opaque directories (only meaningful with several layers,
    /// but an overlay's upper directory alone also holds them).
    pub overlay: bool,
}

impl Tree {
    /// Walks the tree, calling `v` for every entry.
    pub fn walk(&self, v: &mut dyn Visitor) -> io::Result<()> {
        let top = self
            .layers
            .first()
            .ok_or_else(|| io::Error::other("no layer to read"))?;
        let meta = fs::symlink_metadata(top)?;
        v.entry(b"", top, &meta)?;
        let layers: Vec<usize> = if self.overlay {
            // The roots merge like any directory: an opaque upper root hides the lower ones.
            let mut l = Vec::new();
            for (i, p) in self.layers.iter().enumerate() {
                if !fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                    break;
                }
                l.push(i);
                if self.is_opaque(p) {
                    break;
                }
            }
            l
        } else {
            vec![0]
        };
        self.walk_dir(&mut Vec::new(), &layers, v)
    }

    fn is_opaque(&self, dir: &Path) -> bool {
        self.overlay && sys::xattr_get(dir, b"trusted.overlay.opaque").is_ok_and(|v| v == b"y")
    }

    fn seen(&self, path: &Path, meta: &Metadata) -> Seen {
        let ft = meta.file_type();
        if ft.is_dir() {
            return Seen::Dir {
                opaque: self.is_opaque(path),
            };
        }
        if self.overlay {
            if ft.is_char_device() && meta.rdev() == 0 {
                return Seen::Whiteout;
            }
            if ft.is_file()
                && meta.len() == 0
                && sys::xattr_get(path, b"trusted.overlay.whiteout").is_ok()
            {
                return Seen::Whiteout;
            }
        }
        Seen::Other
    }

    fn walk_dir(&self, rel: &mut Vec<u8>, layers: &[usize], v: &mut dyn Visitor) -> io::Result<()> {
        let mut listings = Vec::with_capacity(layers.len());
        let mut metas: BTreeMap<(usize, Vec<u8>), Metadata> = BTreeMap::new();
        for &layer in layers {
            let dir = self.layers[layer].join(OsStr::from_bytes(rel));
            let mut entries = Vec::new();
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    v.vanished(&dir);
                    continue;
                }
                Err(e) => return Err(with_path(e, &dir)),
            };
            for item in rd {
                let item = item.map_err(|e| with_path(e, &dir))?;
                let name = item.file_name();
                let path = item.path();
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        v.vanished(&path);
                        continue;
                    }
                    Err(e) => return Err(with_path(e, &path)),
                };
                let name = name.as_bytes().to_vec();
                entries.push((name.clone(), self.seen(&path, &meta)));
                metas.insert((layer, name), meta);
            }
            listings.push((layer, entries));
        }
        for m in merge(&listings) {
            let Some(meta) = metas.remove(&(m.layer, m.name.clone())) else {
                continue;
            };
            let len = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&m.name);
            let src = self.layers[m.layer].join(OsStr::from_bytes(rel));
            v.entry(rel, &src, &meta)?;
            if meta.is_dir() {
                self.walk_dir(rel, &m.dir_layers, v)?;
            }
            rel.truncate(len);
        }
        Ok(())
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(layer: usize, entries: &[(&str, Seen)]) -> Listing {
        (
            layer,
            entries
                .iter()
                .map(|(n, s)| (n.as_bytes().to_vec(), *s))
                .collect(),
        )
    }

    fn shown(m: &[Merged]) -> Vec<(String, usize, Vec<usize>)> {
        m.iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(&m.name).into_owned(),
                    m.layer,
                    m.dir_layers.clone(),
                )
            })
            .collect()
    }

    const DIR: Seen = Seen::Dir { opaque: false };
    const OPAQUE: Seen = Seen::Dir { opaque: true };

    #[test]
    fn upper_wins_and_whiteouts_hide_lower_names() {
        let upper = l(0, &[("a", Seen::Other), ("gone", Seen::Whiteout)]);
        let lower = l(
            1,
            &[
                ("a", Seen::Other),
                ("gone", Seen::Other),
                ("b", Seen::Other),
            ],
        );
        assert_eq!(
            shown(&merge(&[upper, lower])),
            vec![("a".into(), 0, vec![]), ("b".into(), 1, vec![])]
        );
    }

    #[test]
    fn directories_merge_until_opaque_or_a_non_directory() {
        let upper = l(0, &[("d", DIR), ("o", OPAQUE), ("f", DIR)]);
        let middle = l(1, &[("d", DIR), ("o", DIR), ("f", Seen::Other)]);
        let lower = l(2, &[("d", DIR), ("o", DIR), ("f", DIR)]);
        assert_eq!(
            shown(&merge(&[upper, middle, lower])),
            vec![
                ("d".into(), 0, vec![0, 1, 2]),
                ("f".into(), 0, vec![0]),
                ("o".into(), 0, vec![0]),
            ]
        );
    }

    #[test]
    fn a_whiteout_below_a_directory_stops_the_merge() {
        let upper = l(0, &[("d", DIR)]);
        let middle = l(1, &[("d", Seen::Whiteout)]);
        let lower = l(2, &[("d", DIR)]);
        assert_eq!(
            shown(&merge(&[upper, middle, lower])),
            vec![("d".into(), 0, vec![0])]
        );
    }

    #[test]
    fn a_file_over_a_directory_hides_it() {
        let upper = l(0, &[("x", Seen::Other)]);
        let lower = l(1, &[("x", DIR)]);
        assert_eq!(
            shown(&merge(&[upper, lower])),
            vec![("x".into(), 0, vec![])]
        );
    }

    #[test]
    fn a_lower_only_directory_is_read_from_the_lower_layer() {
        let upper = l(0, &[]);
        let lower = l(1, &[("etc", DIR)]);
        assert_eq!(
            shown(&merge(&[upper, lower])),
            vec![("etc".into(), 1, vec![1])]
        );
    }

    struct Collect(Vec<String>);
    impl Visitor for Collect {
        fn entry(&mut self, rel: &[u8], _src: &Path, _meta: &Metadata) -> io::Result<()> {
            self.0.push(String::from_utf8_lossy(rel).into_owned());
            Ok(())
        }
        fn vanished(&mut self, _src: &Path) {}
    }

    #[test]
    fn a_plain_tree_walks_parents_first_sorted() {
        let root = std::env::temp_dir().join(format!("lxcform-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("b/y")).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("b/x"), b"").unwrap();
        fs::write(root.join("c"), b"").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
        let mut got = Collect(Vec::new());
        Tree {
            layers: vec![root.clone()],
            overlay: false,
        }
        .walk(&mut got)
        .unwrap();
        assert_eq!(got.0, ["", "a", "a/etc", "b", "b/x", "b/y", "c"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_overlay_tree_merges_its_layers() {
        let root = std::env::temp_dir().join(format!("lxcform-walkov-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (upper, lower) = (root.join("upper"), root.join("lower"));
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(lower.join("usr/bin")).unwrap();
        fs::write(upper.join("etc/new"), b"").unwrap();
        fs::write(lower.join("etc/old"), b"").unwrap();
        fs::write(lower.join("usr/bin/sh"), b"").unwrap();
        let mut got = Collect(Vec::new());
        Tree {
            layers: vec![upper, lower],
            overlay: true,
        }
        .walk(&mut got)
        .unwrap();
        assert_eq!(
            got.0,
            [
                "",
                "etc",
                "etc/new",
                "etc/old",
                "usr",
                "usr/bin",
                "usr/bin/sh"
            ]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
