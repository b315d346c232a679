//! Backing stores: one file per store, each describing itself as data ([`StoreInfo`]) so that
//! callers never branch on a store's name.

mod btrfs;
mod dir;
mod r#loop;
mod lvm;
mod overlay;
mod zfs;

use std::fmt;
use std::path::Path;

/// A backing store for a container's root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    /// A plain directory.
    Dir,
    /// An overlay of an upper directory over a lower one (`overlayfs` is accepted too).
    Overlay,
    /// A btrfs subvolume (the lxc_path must be on btrfs).
    Btrfs,
    /// A filesystem image file mounted through a loop device.
    Loop,
    /// An LVM logical volume.
    Lvm,
    /// A ZFS dataset.
    Zfs,
}

/// The `backing_store` values accepted, in the module's order plus `overlay`.
pub const CHOICES: [&str; 7] = ["dir", "lvm", "loop", "btrfs", "overlayfs", "overlay", "zfs"];

/// Store-specific options of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOption {
    /// `lv_name`.
    LvName,
    /// `vg_name`.
    VgName,
    /// `thinpool`.
    Thinpool,
    /// `fs_type`.
    FsType,
    /// `fs_size`.
    FsSize,
    /// `directory`.
    Directory,
    /// `zfs_root`.
    ZfsRoot,
}

impl StoreOption {
    /// Every store-specific option.
    pub const ALL: [StoreOption; 7] = [
        StoreOption::LvName,
        StoreOption::VgName,
        StoreOption::Thinpool,
        StoreOption::FsType,
        StoreOption::FsSize,
        StoreOption::Directory,
        StoreOption::ZfsRoot,
    ];

    /// The option named `name`, if it is a store-specific one.
    pub fn parse(name: &str) -> Option<StoreOption> {
        StoreOption::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The option's name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOption::LvName => "lv_name",
            StoreOption::VgName => "vg_name",
            StoreOption::Thinpool => "thinpool",
            StoreOption::FsType => "fs_type",
            StoreOption::FsSize => "fs_size",
            StoreOption::Directory => "directory",
            StoreOption::ZfsRoot => "zfs_root",
        }
    }
}

/// What a store is and can do.
#[derive(Debug)]
pub struct StoreInfo {
    /// The store.
    pub store: Store,
    /// The name liblxc knows it by (`bdevtype`, and the `lxc.rootfs.path` prefix).
    pub lxc_name: &'static str,
    /// The store-specific options that apply to it.
    pub options: &'static [StoreOption],
    /// Whether the rootfs lives on a block device (loop, lvm) rather than a directory tree.
    pub block_backed: bool,
    /// Whether a snapshot is taken atomically by the store itself, so that freezing the
    /// origin for that instant is enough (btrfs, lvm, zfs); otherwise the origin is stopped.
    pub atomic_snapshot: bool,
    /// The store a snapshot clone of this store is made on (`None`: it cannot be snapshotted).
    pub snapshot_store: Option<Store>,
    /// Whether a snapshot clone on this store depends on its origin's rootfs, so that liblxc
    /// records it in the origin's `lxc_snapshots` and will not destroy the origin while it
    /// exists (overlay: the origin is its lower layer; lvm: a classic snapshot). Thin LVM
    /// snapshots do not, but which kind a volume is shows only on the host.
    pub snapshot_pins_origin: bool,
    /// Whether liblxc makes every clone of a container on this store a snapshot on the same
    /// store, whatever is asked (btrfs: a subvolume snapshot, when the clone is on the same
    /// filesystem, as in one lxc_path): a clone onto another store fails in liblxc.
    pub clones_within: bool,
    /// Whether liblxc can copy a container of another store onto this one (not btrfs: it makes
    /// a plain directory, labelled btrfs, that it then cannot destroy).
    pub takes_copies: bool,
    /// Characters a container name cannot hold on this store, which names a volume or a
    /// dataset after it (lvm: `@`; zfs: `+` and `@`).
    pub name_refuses: &'static str,
    /// Checks that this host can hold the store in `lxc_path`; the error says why not.
    pub host_check: fn(lxc_path: &Path) -> Result<(), String>,
}

const TABLE: [&StoreInfo; 6] = [
    &dir::INFO,
    &overlay::INFO,
    &btrfs::INFO,
    &r#loop::INFO,
    &lvm::INFO,
    &zfs::INFO,
];

impl StoreInfo {
    /// Whether a copy-on-write snapshot clone can be made from it.
    pub fn can_snapshot(&self) -> bool {
        self.snapshot_store.is_some()
    }
}

impl Store {
    /// Parses a `backing_store` value.
    pub fn parse(s: &str) -> Option<Store> {
        Some(match s {
            "dir" => Store::Dir,
            "overlay" | "overlayfs" => Store::Overlay,
            "btrfs" => Store::Btrfs,
            "loop" => Store::Loop,
            "lvm" => Store::Lvm,
            "zfs" => Store::Zfs,
            _ => return None,
        })
    }

    /// The store that an `lxc.rootfs.path` value belongs to (`overlay:/a:/b` → overlay;
    /// a bare path → dir).
    pub fn from_rootfs(rootfs: &str) -> Store {
        match rootfs.split_once(':') {
            Some((prefix, _)) => Store::parse(prefix).unwrap_or(if rootfs.starts_with("/dev/") {
                Store::Lvm
            } else {
                Store::Dir
            }),
            None if rootfs.starts_with("/dev/") => Store::Lvm,
            None => Store::Dir,
        }
    }

    /// The store's description.
    pub fn info(self) -> &'static StoreInfo {
        TABLE
            .iter()
            .find(|i| i.store == self)
            .expect("every store is in the table")
    }

    /// The option value naming the store.
    pub fn as_str(self) -> &'static str {
        self.info().lxc_name
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a clone is made: on which store, and whether as a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneMethod {
    /// Store of the clone.
    pub store: Store,
    /// Copy-on-write snapshot rather than a full copy.
    pub snapshot: bool,
    /// The origin only needs to be frozen (not stopped) while the clone is made.
    pub freeze_is_enough: bool,
}

impl CloneMethod {
    /// Whether the clone will pin its origin (see [`StoreInfo::snapshot_pins_origin`]).
    pub fn pins_origin(&self) -> bool {
        self.snapshot && self.store.info().snapshot_pins_origin
    }
}

/// Decides how to clone an origin on `origin` when the user asked for `requested` (the
/// `backing_store` option, if given) and `snapshot`. Pure; errors say why it cannot be done.
///
/// As the module: an overlay clone is always a snapshot. A snapshot without a store (or with
/// `dir`, which cannot be one) is made on the origin store's native snapshot store.
pub fn clone_method(
    origin: Store,
    requested: Option<Store>,
    snapshot: bool,
) -> Result<CloneMethod, String> {
    let info = origin.info();
    if info.clones_within {
        let native = info.snapshot_store.unwrap_or(origin);
        return match requested {
            None => Ok(native),
            Some(Store::Dir) if snapshot => Ok(native),
            Some(s) if s == native => Ok(native),
            Some(s) => Err(format!(
                "liblxc clones a {origin} container only as a {native} snapshot beside it; \
                 backing_store {s} cannot be used for its clone"
            )),
        }
        .map(|store| CloneMethod {
            store,
            snapshot: true,
            freeze_is_enough: info.atomic_snapshot,
        });
    }
    let snapshot = snapshot || requested == Some(Store::Overlay);
    if !snapshot {
        let store = requested.unwrap_or(Store::Dir);
        if !store.info().takes_copies && store != origin {
            return Err(format!(
                "liblxc cannot copy a {origin} container onto {store} (it makes a plain \
                 directory it then cannot destroy); clone it onto another store"
            ));
        }
        return Ok(CloneMethod {
            store,
            snapshot: false,
            freeze_is_enough: false,
        });
    }
    let native = info.snapshot_store.ok_or_else(|| {
        format!("a {origin} container cannot be snapshotted; clone it without clone_snapshot")
    })?;
    let store = match requested {
        None | Some(Store::Dir) => native,
        // An overlay can sit on any directory-backed origin.
        Some(Store::Overlay) if !origin.info().block_backed && origin != Store::Zfs => {
            Store::Overlay
        }
        Some(s) if s == native => s,
        Some(s) => {
            return Err(format!(
                "a snapshot of a {origin} container can be made on {native}, not on {s}"
            ))
        }
    };
    Ok(CloneMethod {
        store,
        snapshot: true,
        freeze_is_enough: store == origin && origin.info().atomic_snapshot,
    })
}

/// "vg_name is for lvm" — the stores an option applies to, for error messages.
pub fn stores_with(option: &str) -> String {
    let names: Vec<&str> = TABLE
        .iter()
        .filter(|i| i.options.iter().any(|o| o.as_str() == option))
        .map(|i| i.lxc_name)
        .collect();
    format!("{option} is for {}", names.join(", "))
}

/// Whether the filesystem holding `path` (or its nearest existing parent) has this magic.
fn fs_magic_is(path: &Path, magic: i64) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            break;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
    crate::liblxc::sys::fs_magic(p) == Some(magic)
}

/// Whether `name` is among the kernel's filesystems (/proc/filesystems).
fn kernel_has_fs(name: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|s| s.lines().any(|l| l.split_whitespace().last() == Some(name)))
        .unwrap_or(false)
}

/// Whether an executable named `name` is on PATH.
fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_prefixes_name_their_store() {
        assert_eq!(Store::from_rootfs("/var/lib/lxc/a/rootfs"), Store::Dir);
        assert_eq!(Store::from_rootfs("dir:/var/lib/lxc/a/rootfs"), Store::Dir);
        assert_eq!(
            Store::from_rootfs("overlay:/a/rootfs:/b/delta0"),
            Store::Overlay
        );
        assert_eq!(
            Store::from_rootfs("overlayfs:/a/rootfs:/b/delta0"),
            Store::Overlay
        );
        assert_eq!(Store::from_rootfs("btrfs:/a/rootfs"), Store::Btrfs);
        assert_eq!(Store::from_rootfs("loop:/a/rootdev"), Store::Loop);
        assert_eq!(Store::from_rootfs("lvm:/dev/lxc/a"), Store::Lvm);
        assert_eq!(Store::from_rootfs("/dev/lxc/a"), Store::Lvm);
        assert_eq!(Store::from_rootfs("zfs:lxc/a"), Store::Zfs);
    }

    #[test]
    fn every_choice_parses_and_names_round_trip() {
        for c in CHOICES {
            let s = Store::parse(c).unwrap();
            assert_eq!(Store::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn clone_methods() {
        use Store::*;
        let m = |o, r, s| clone_method(o, r, s).map(|m| (m.store, m.snapshot, m.freeze_is_enough));
        assert_eq!(m(Dir, None, false), Ok((Dir, false, false)));
        assert_eq!(m(Dir, None, true), Ok((Overlay, true, false)));
        assert_eq!(m(Dir, Some(Dir), true), Ok((Overlay, true, false)));
        assert_eq!(
            m(Dir, Some(Overlay), false),
            Ok((Overlay, true, false)),
            "overlay implies snapshot"
        );
        assert_eq!(m(Overlay, Some(Overlay), true), Ok((Overlay, true, false)));
        assert_eq!(m(Btrfs, None, true), Ok((Btrfs, true, true)));
        assert_eq!(m(Btrfs, Some(Btrfs), true), Ok((Btrfs, true, true)));
        // liblxc snapshots a btrfs container whatever is asked; onto another store it fails.
        assert_eq!(m(Btrfs, None, false), Ok((Btrfs, true, true)));
        assert_eq!(m(Btrfs, Some(Dir), true), Ok((Btrfs, true, true)));
        for other in [Dir, Overlay, Loop] {
            assert!(m(Btrfs, Some(other), false)
                .unwrap_err()
                .contains("btrfs snapshot"));
        }
        assert!(m(Btrfs, Some(Overlay), true).is_err());
        // liblxc's copy onto btrfs of another store's container is broken.
        assert!(m(Dir, Some(Btrfs), false)
            .unwrap_err()
            .contains("cannot copy a dir container onto btrfs"));
        assert_eq!(m(Lvm, None, true), Ok((Lvm, true, true)));
        assert_eq!(m(Zfs, None, true), Ok((Zfs, true, true)));
        assert_eq!(m(Loop, Some(Dir), false), Ok((Dir, false, false)));
        assert!(m(Loop, None, true)
            .unwrap_err()
            .contains("cannot be snapshotted"));
        assert!(m(Dir, Some(Btrfs), true)
            .unwrap_err()
            .contains("not on btrfs"));
        assert!(m(Lvm, Some(Overlay), true).is_err());
    }

    #[test]
    fn every_store_option_is_listed() {
        use StoreOption::*;
        // Exhaustive: a new store option does not compile here until ALL has it.
        let index = |o: StoreOption| match o {
            LvName => 0,
            VgName => 1,
            Thinpool => 2,
            FsType => 3,
            FsSize => 4,
            Directory => 5,
            ZfsRoot => 6,
        };
        for (i, o) in StoreOption::ALL.iter().enumerate() {
            assert_eq!(index(*o), i, "{o:?}");
            assert_eq!(StoreOption::parse(o.as_str()), Some(*o));
        }
        assert_eq!(StoreOption::parse("name"), None);
    }

    #[test]
    fn capabilities_are_data() {
        assert!(Store::Overlay.info().can_snapshot());
        assert!(Store::Btrfs.info().can_snapshot());
        assert!(!Store::Loop.info().can_snapshot());
        assert!(Store::Loop.info().block_backed && Store::Lvm.info().block_backed);
        assert!(!Store::Dir.info().block_backed);
    }
}
