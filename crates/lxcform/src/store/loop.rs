//! The loop store: the rootfs is a filesystem image (`rootdev`) mounted through a loop device.

use std::path::Path;

use super::{have_program, Store, StoreInfo, StoreOption};

fn host_check(_lxc_path: &Path) -> Result<(), String> {
    if !Path::new("/dev/loop-control").exists() {
        return Err("the host has no loop devices (/dev/loop-control is missing)".into());
    }
    if !have_program("mkfs") {
        return Err("mkfs is not installed".into());
    }
    Ok(())
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Loop,
    lxc_name: "loop",
    options: &[StoreOption::FsType, StoreOption::FsSize],
    block_backed: true,
    atomic_snapshot: false,
    snapshot_store: None,
    snapshot_pins_origin: false,
    clones_within: false,
    takes_copies: true,
    name_refuses: "",
    host_check,
};
