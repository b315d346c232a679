//! The zfs store: the rootfs is a dataset under `zfs_root`; snapshots are zfs clones.

use std::path::Path;

use super::{have_program, kernel_has_fs, Store, StoreInfo, StoreOption};

fn host_check(_lxc_path: &Path) -> Result<(), String> {
    if !kernel_has_fs("zfs") && !Path::new("/sys/module/zfs").exists() {
        return Err("the kernel has no zfs module loaded".into());
    }
    if !have_program("zfs") {
        return Err("the zfs program (zfsutils) is not installed".into());
    }
    Ok(())
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Zfs,
    lxc_name: "zfs",
    options: &[StoreOption::ZfsRoot],
    block_backed: false,
    atomic_snapshot: true,
    snapshot_store: Some(Store::Zfs),
    snapshot_pins_origin: false,
    clones_within: false,
    takes_copies: true,
    name_refuses: "+@",
    host_check,
};
