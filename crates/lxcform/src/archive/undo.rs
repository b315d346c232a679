//! The steps that undo what making an archive's view or restoring an archive did (unmount,
//! delete a snapshot or a volume …), shared by [`super::view`] and [`super::restore`], which
//! each keep a list of them and run it backwards.

use std::fs;
use std::path::PathBuf;

use super::cmd::{self, is_mount_point};
use super::io_error_of;
use crate::error::Error;

/// One step that undoes another.
#[derive(Debug)]
pub(super) enum Undo {
    /// Unmount (nothing to do if it is not mounted any more).
    Unmount(PathBuf),
    /// Remove an empty directory (a mount point).
    RemoveDir(PathBuf),
    /// Remove a directory and everything in it.
    RemoveTree(PathBuf),
    /// Delete a btrfs subvolume or snapshot.
    BtrfsDelete(PathBuf),
    /// Remove a logical volume or LVM snapshot (`vg/lv`).
    LvRemove(String),
    /// Destroy a zfs snapshot (`pool/ds@snap`).
    ZfsDestroySnapshot(String),
    /// Destroy a zfs dataset with whatever was made in it.
    ZfsDestroyDataset(String),
}

impl Undo {
    /// Runs the step for `container`.
    pub(super) fn run(&self, container: &str) -> Result<(), Error> {
        match self {
            Undo::Unmount(p) => {
                if let Err(e) = cmd::run(container, "umount", &[p]) {
                    if is_mount_point(p) {
                        return Err(e.into());
                    }
                }
            }
            Undo::RemoveDir(p) => fs::remove_dir(p).map_err(io_error_of(container, "remove", p))?,
            Undo::RemoveTree(p) => {
                fs::remove_dir_all(p).map_err(io_error_of(container, "remove", p))?
            }
            Undo::BtrfsDelete(p) => {
                cmd::run(
                    container,
                    "btrfs",
                    &["subvolume".as_ref(), "delete".as_ref(), p.as_os_str()],
                )?;
            }
            Undo::LvRemove(lv) => {
                cmd::run(container, "lvremove", &["-f", lv.as_str()])?;
            }
            Undo::ZfsDestroySnapshot(snap) => {
                cmd::run(container, "zfs", &["destroy", snap.as_str()])?;
            }
            Undo::ZfsDestroyDataset(ds) => {
                cmd::run(container, "zfs", &["destroy", "-r", ds.as_str()])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_mounted_needs_no_unmount_and_failures_name_the_container() {
        let dir = std::env::temp_dir().join(format!("lxcform-undo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Undo::Unmount(dir.clone()).run("c1").unwrap();
        Undo::RemoveDir(dir.clone()).run("c1").unwrap();
        assert!(!dir.exists());
        let err = Undo::RemoveDir(dir.clone())
            .run("c1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"c1\"") && err.contains(&*dir.to_string_lossy()),
            "{err}"
        );
    }
}
