//! A consistent, read-only view of a container's root filesystem, per backing store, and the
//! guard that undoes whatever making it took (thaw, unmount, delete a snapshot).
//!
//! | store   | stopped                         | running                                        |
//! |---------|---------------------------------|------------------------------------------------|
//! | dir     | the directory                   | frozen while it is read                        |
//! | overlay | upper over lower, merged        | frozen while the layers are read               |
//! | btrfs   | read-only snapshot              | frozen only while the snapshot is taken        |
//! | loop    | image mounted read-only         | frozen; its loop device mounted again, ro      |
//! | lvm     | volume mounted read-only        | frozen only while an LVM snapshot is taken     |
//! | zfs     | zfs snapshot, mounted read-only | frozen only while the snapshot is taken        |
//!
//! A frozen container stays frozen and a stopped one stopped; only a freeze this module made
//! is undone. Leftovers of a run killed by SIGKILL (a freeze, marked by a file in the
//! container's directory; a mount; a snapshot) have fixed names and are undone by the next
//! run, which holds the container's lock.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::cmd::{self, is_mount_point};
use super::undo::Undo;
use super::{io_error, ArchiveError};
use crate::error::Error;
use crate::liblxc::{Container, State};
use crate::store::Store;

/// Name of the directory, in the container's directory, where block stores and snapshots are
/// mounted while they are read.
const VIEW_DIR: &str = ".lxcform-archive-view";
/// Name given to snapshots made for an archive.
const SNAPSHOT: &str = "lxcform-archive";
/// Marker file, in the container's directory, that says the container is frozen by an
/// archive: a run killed meanwhile leaves it, and the next run thaws the container.
const FROZEN_MARK: &str = ".lxcform-archive-frozen";

/// The parts of an `lxc.rootfs.path` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The store.
    pub store: Store,
    /// Its paths: one for most stores; for overlay the upper first, then the lowers (top
    /// first); for lvm the device; for zfs the dataset (or a legacy mount path).
    pub paths: Vec<String>,
}

impl Rootfs {
    /// Parses `lxc.rootfs.path` (`dir:/p`, `/p`, `overlay:LOWER:UPPER`, `overlayfs:…`,
    /// `btrfs:/p`, `loop:/img`, `lvm:/dev/vg/lv`, `/dev/vg/lv`, `zfs:pool/ds`).
    pub fn parse(value: &str) -> Rootfs {
        let store = Store::from_rootfs(value);
        let rest = match value.split_once(':') {
            Some((prefix, rest)) if Store::parse(prefix).is_some() => rest,
            _ => value,
        };
        let paths = if store == Store::Overlay {
            // LXC's form is LOWER:UPPER, where LOWER may itself list several layers.
            let mut parts: Vec<String> = rest.split(':').map(str::to_string).collect();
            let upper = parts.pop().unwrap_or_default();
            parts.insert(0, upper);
            parts
        } else {
            vec![rest.to_string()]
        };
        Rootfs { store, paths }
    }

    /// The loop image's file name in the container directory, if this is a loop store.
    pub fn loop_image(&self) -> Option<&[u8]> {
        use std::os::unix::ffi::OsStrExt;
        (self.store == Store::Loop)
            .then(|| Path::new(&self.paths[0]).file_name())
            .flatten()
            .map(|n| n.as_bytes())
    }
}

/// A view of the rootfs, undone on drop (or by [`View::close`], which reports failures).
pub struct View<'c> {
    /// What to read, top layer first.
    pub layers: Vec<PathBuf>,
    /// Merge the layers as an overlay.
    pub overlay: bool,
    /// The store.
    pub rootfs: Rootfs,
    container: &'c Container,
    thaw: bool,
    undo: Vec<Undo>,
}

impl<'c> View<'c> {
    /// Makes the view for `c`, whose rootfs is `rootfs`.
    pub fn open(c: &'c Container, rootfs: Rootfs) -> Result<View<'c>, Error> {
        let mut view = View {
            layers: Vec::new(),
            overlay: false,
            rootfs: rootfs.clone(),
            container: c,
            thaw: false,
            undo: Vec::new(),
        };
        let state = remove_leftovers(c, &view.rootfs);
        let running = !matches!(state, State::Stopped | State::Frozen);
        let live = state != State::Stopped;
        let path = PathBuf::from(&rootfs.paths[0]);
        match rootfs.store {
            Store::Dir => {
                view.freeze_if(running)?;
                view.layers.push(path);
            }
            Store::Overlay => {
                view.freeze_if(running)?;
                view.layers = rootfs.paths.iter().map(PathBuf::from).collect();
                view.overlay = true;
            }
            Store::Btrfs => {
                let snap = btrfs_snapshot_path(&path);
                view.freeze_if(running)?;
                let made = cmd::run(
                    c.name(),
                    "btrfs",
                    &[
                        "subvolume".as_ref(),
                        "snapshot".as_ref(),
                        "-r".as_ref(),
                        path.as_os_str(),
                        snap.as_os_str(),
                    ],
                );
                if made.is_ok() {
                    view.undo.push(Undo::BtrfsDelete(snap.clone()));
                }
                view.thaw_now()?;
                made?;
                view.layers.push(snap);
            }
            Store::Loop if live => {
                // The container's own loop device, mounted a second time: the kernel shares
                // the mounted filesystem (so what it has cached is what is read), without the
                // container's submounts over it. It must be mounted as the container has it
                // (read-write); the mount is then made read-only and never updates atimes.
                let losetup = cmd::run(c.name(), "losetup", &["-j".as_ref(), path.as_os_str()])?;
                let device = losetup
                    .lines()
                    .find_map(|l| l.split_once(':').map(|(d, _)| d.to_string()))
                    .ok_or_else(|| ArchiveError::Rootfs {
                        container: c.name().to_string(),
                        reason: format!("no loop device is attached to {}", path.display()),
                    })?;
                view.freeze_if(running)?;
                let mnt = view.mount_dir()?;
                let m = mnt.as_os_str();
                cmd::run(
                    c.name(),
                    "mount",
                    &["-o".as_ref(), "noatime".as_ref(), device.as_ref(), m],
                )?;
                view.undo.push(Undo::Unmount(mnt.clone()));
                cmd::run(
                    c.name(),
                    "mount",
                    &["-o".as_ref(), "remount,bind,ro,noatime".as_ref(), m],
                )?;
                view.layers.push(mnt);
            }
            Store::Loop => {
                let mnt = view.mount_dir()?;
                let image = path.as_os_str();
                cmd::run(
                    c.name(),
                    "mount",
                    &["-o".as_ref(), "ro,loop".as_ref(), image, mnt.as_os_str()],
                )?;
                view.undo.push(Undo::Unmount(mnt.clone()));
                view.layers.push(mnt);
            }
            Store::Lvm => {
                let mut device = rootfs.paths[0].clone();
                if running {
                    view.freeze_if(true)?;
                    let snap = lvm_snapshot(c, &device);
                    if let Ok((_, lv)) = &snap {
                        view.undo.push(Undo::LvRemove(lv.clone()));
                    }
                    view.thaw_now()?;
                    device = snap?.0;
                }
                let mnt = view.mount_dir()?;
                let opts = match cmd::run(
                    c.name(),
                    "blkid",
                    &["-o", "value", "-s", "TYPE", device.as_str()],
                ) {
                    // A snapshot of XFS has the same UUID and a dirty log.
                    Ok(t) if t.trim() == "xfs" => "ro,nouuid,norecovery",
                    _ => "ro",
                };
                cmd::run(
                    c.name(),
                    "mount",
                    &["-o", opts, device.as_str(), &mnt.to_string_lossy()],
                )?;
                view.undo.push(Undo::Unmount(mnt.clone()));
                view.layers.push(mnt);
            }
            Store::Zfs => {
                let dataset = zfs_dataset(c, &rootfs.paths[0])?;
                let snap = format!("{dataset}@{SNAPSHOT}");
                view.freeze_if(running)?;
                let made = cmd::run(c.name(), "zfs", &["snapshot", snap.as_str()]);
                if made.is_ok() {
                    view.undo.push(Undo::ZfsDestroySnapshot(snap.clone()));
                }
                view.thaw_now()?;
                made?;
                let mnt = view.mount_dir()?;
                cmd::run(
                    c.name(),
                    "mount",
                    &[
                        "-t",
                        "zfs",
                        "-o",
                        "ro",
                        snap.as_str(),
                        &mnt.to_string_lossy(),
                    ],
                )?;
                view.undo.push(Undo::Unmount(mnt.clone()));
                view.layers.push(mnt);
            }
        }
        Ok(view)
    }

    fn freeze_if(&mut self, running: bool) -> Result<(), Error> {
        if running {
            let mark = self.container_dir().join(FROZEN_MARK);
            fs::write(&mark, b"").map_err(io_error(self.container, "create", &mark))?;
            self.thaw = true;
            self.container.freeze()?;
        }
        Ok(())
    }

    /// Thaws the container now if this view froze it (snapshot stores: right after the
    /// snapshot).
    fn thaw_now(&mut self) -> Result<(), Error> {
        if std::mem::take(&mut self.thaw) {
            if self.container.state() == State::Frozen {
                self.container.unfreeze()?;
            }
            let _ = fs::remove_file(self.container_dir().join(FROZEN_MARK));
        }
        Ok(())
    }

    fn container_dir(&self) -> PathBuf {
        self.container.lxc_path().join(self.container.name())
    }

    fn mount_dir(&mut self) -> Result<PathBuf, Error> {
        let dir = self.container_dir().join(VIEW_DIR);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(self.container, "create", &dir))?;
        self.undo.push(Undo::RemoveDir(dir.clone()));
        Ok(dir)
    }

    /// Undoes everything, reporting the first failure.
    pub fn close(mut self) -> Result<(), Error> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> Result<(), Error> {
        let mut first: Option<Error> = None;
        if let Err(e) = self.thaw_now() {
            first.get_or_insert(e);
        }
        while let Some(u) = self.undo.pop() {
            if let Err(e) = u.run(self.container.name()) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        let _ = self.undo_all();
    }
}

/// Where the read-only snapshot of a btrfs rootfs goes: beside it, on the same filesystem.
fn btrfs_snapshot_path(rootfs: &Path) -> PathBuf {
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{SNAPSHOT}-snapshot"))
}

/// `(vg, lv)` of `/dev/vg/lv` or `/dev/mapper/vg-lv`.
fn lvm_names(device: &str) -> Option<(String, String)> {
    let rest = device.strip_prefix("/dev/")?;
    if let Some(mapped) = rest.strip_prefix("mapper/") {
        // Device-mapper doubles dashes inside names.
        let bytes = mapped.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'-' {
                if bytes.get(i + 1) == Some(&b'-') {
                    i += 2;
                    continue;
                }
                let vg = mapped[..i].replace("--", "-");
                let lv = mapped[i + 1..].replace("--", "-");
                return Some((vg, lv));
            }
            i += 1;
        }
        return None;
    }
    let (vg, lv) = rest.split_once('/')?;
    (!lv.contains('/')).then(|| (vg.to_string(), lv.to_string()))
}

/// Takes an LVM snapshot of `device`; returns its device path and `vg/lv` name.
fn lvm_snapshot(c: &Container, device: &str) -> Result<(String, String), Error> {
    let (vg, lv) = lvm_names(device).ok_or_else(|| ArchiveError::Rootfs {
        container: c.name().to_string(),
        reason: format!("{device} is not an LVM volume path"),
    })?;
    let snap_lv = format!("{lv}-{SNAPSHOT}");
    let origin = format!("{vg}/{lv}");
    let attr = cmd::run(
        c.name(),
        "lvs",
        &["--noheadings", "-o", "lv_attr", origin.as_str()],
    )?;
    let thin = attr.trim_start().starts_with('V');
    let mut args = vec!["-s", "-n", snap_lv.as_str()];
    if thin {
        // Thin snapshots are created with activation skipped.
        args.extend(["-kn", "-ay"]);
    } else {
        args.extend(["-l", "100%ORIGIN"]);
    }
    args.push(origin.as_str());
    cmd::run(c.name(), "lvcreate", &args)?;
    Ok((format!("/dev/{vg}/{snap_lv}"), format!("{vg}/{snap_lv}")))
}

/// The zfs dataset of a rootfs value: `pool/ds`, or the dataset mounted at a legacy path.
fn zfs_dataset(c: &Container, path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return Ok(path.to_string());
    }
    let list = cmd::run(c.name(), "zfs", &["list", "-H", "-o", "name,mountpoint"])?;
    list.lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, mnt)| *mnt == path)
        .map(|(name, _)| name.to_string())
        .ok_or_else(|| {
            ArchiveError::Rootfs {
                container: c.name().to_string(),
                reason: format!("no zfs dataset is mounted at {path}"),
            }
            .into()
        })
}

/// What a killed earlier archive of `c` left behind, if anything (its freeze mark, its view's
/// mount point): `Some(true)` when it had frozen the container.
pub fn left_behind(c: &Container) -> Option<bool> {
    let dir = c.lxc_path().join(c.name());
    let froze = dir.join(FROZEN_MARK).exists();
    (froze || dir.join(VIEW_DIR).exists()).then_some(froze)
}

/// Removes what a killed earlier archive of `c` (whose rootfs is `rootfs`) left: its freeze,
/// its mount, its snapshot. Returns the container's state once its freeze is undone.
pub fn remove_leftovers(c: &Container, rootfs: &Rootfs) -> State {
    let name = c.name();
    let dir = c.lxc_path().join(name);
    let mark = dir.join(FROZEN_MARK);
    if mark.exists() {
        if c.state() == State::Frozen {
            let _ = c.unfreeze();
        }
        let _ = fs::remove_file(&mark);
    }
    let mnt = dir.join(VIEW_DIR);
    if is_mount_point(&mnt) {
        let _ = cmd::run(name, "umount", &[&mnt]);
    }
    let _ = fs::remove_dir(&mnt);
    match rootfs.store {
        Store::Btrfs => {
            let snap = btrfs_snapshot_path(Path::new(&rootfs.paths[0]));
            if snap.exists() {
                let _ = Undo::BtrfsDelete(snap).run(name);
            }
        }
        Store::Lvm => {
            if let Some((vg, lv)) = lvm_names(&rootfs.paths[0]) {
                let snap = format!("{vg}/{lv}-{SNAPSHOT}");
                if cmd::run(name, "lvs", &[snap.as_str()]).is_ok() {
                    let _ = Undo::LvRemove(snap).run(name);
                }
            }
        }
        Store::Zfs => {
            if let Ok(ds) = zfs_dataset(c, &rootfs.paths[0]) {
                let snap = format!("{ds}@{SNAPSHOT}");
                if cmd::run(name, "zfs", &["list", "-H", snap.as_str()]).is_ok() {
                    let _ = Undo::ZfsDestroySnapshot(snap).run(name);
                }
            }
        }
        Store::Dir | Store::Overlay | Store::Loop => {}
    }
    c.state()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_values_parse() {
        let r = Rootfs::parse("overlay:/l/a/rootfs:/l/b/overlay/delta");
        assert_eq!(r.store, Store::Overlay);
        assert_eq!(r.paths, ["/l/b/overlay/delta", "/l/a/rootfs"]);
        let r = Rootfs::parse("overlayfs:/low1:/low2:/up");
        assert_eq!(r.paths, ["/up", "/low1", "/low2"]);
        assert_eq!(
            Rootfs::parse("/var/lib/lxc/a/rootfs").paths,
            ["/var/lib/lxc/a/rootfs"]
        );
        assert_eq!(Rootfs::parse("dir:/x/rootfs").paths, ["/x/rootfs"]);
        let r = Rootfs::parse("loop:/l/a/rootdev");
        assert_eq!(
            (r.store, r.loop_image()),
            (Store::Loop, Some(&b"rootdev"[..]))
        );
        assert_eq!(Rootfs::parse("lvm:/dev/lxc/a").paths, ["/dev/lxc/a"]);
        assert_eq!(Rootfs::parse("zfs:tank/lxc/a").paths, ["tank/lxc/a"]);
    }

    #[test]
    fn lvm_device_names() {
        assert_eq!(
            lvm_names("/dev/lxc/web1"),
            Some(("lxc".into(), "web1".into()))
        );
        assert_eq!(
            lvm_names("/dev/mapper/my--vg-web--1"),
            Some(("my-vg".into(), "web-1".into()))
        );
        assert_eq!(lvm_names("/srv/x"), None);
    }

    #[test]
    fn btrfs_snapshots_sit_beside_the_rootfs() {
        assert_eq!(
            btrfs_snapshot_path(Path::new("/l/a/rootfs")),
            Path::new("/l/a/.lxcform-archive-snapshot")
        );
    }
}
