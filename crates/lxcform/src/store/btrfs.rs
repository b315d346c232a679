//! The btrfs store: the rootfs is a subvolume; snapshots are subvolume snapshots.

use std::path::Path;

use super::{fs_magic_is, have_program, Store, StoreInfo};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;

fn host_check(lxc_path: &Path) -> Result<(), String> {
    if !fs_magic_is(lxc_path, BTRFS_SUPER_MAGIC) {
        return Err(format!(
            "lxc_path {} is not on a btrfs filesystem",
            lxc_path.display()
        ));
    }
    if !have_program("btrfs") {
        return Err("the btrfs program (btrfs-progs) is not installed".into());
    }
    Ok(())
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Btrfs,
    lxc_name: "btrfs",
    options: &[],
    block_backed: false,
    atomic_snapshot: true,
    snapshot_store: Some(Store::Btrfs),
    snapshot_pins_origin: false,
    clones_within: true,
    takes_copies: false,
    name_refuses: "",
    host_check,
};
