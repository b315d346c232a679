//! The lvm store: the rootfs is a logical volume (optionally thin); snapshots are LVM
//! snapshots.

use std::path::Path;

use super::{have_program, Store, StoreInfo, StoreOption};

fn host_check(_lxc_path: &Path) -> Result<(), String> {
    if !Path::new("/dev/mapper/control").exists() {
        return Err("the host has no device-mapper (/dev/mapper/control is missing)".into());
    }
    if !have_program("lvcreate") {
        return Err("the LVM tools (lvcreate) are not installed".into());
    }
    Ok(())
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Lvm,
    lxc_name: "lvm",
    options: &[
        StoreOption::LvName,
        StoreOption::VgName,
        StoreOption::Thinpool,
        StoreOption::FsType,
        StoreOption::FsSize,
    ],
    block_backed: true,
    atomic_snapshot: true,
    snapshot_store: Some(Store::Lvm),
    snapshot_pins_origin: true,
    clones_within: false,
    takes_copies: true,
    name_refuses: "@",
    host_check,
};
