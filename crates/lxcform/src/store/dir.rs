//! The dir store: the rootfs is a plain directory.

use std::path::Path;

use super::{Store, StoreInfo, StoreOption};

/// A directory always works.
fn host_check(_lxc_path: &Path) -> Result<(), String> {
    Ok(())
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Dir,
    lxc_name: "dir",
    options: &[StoreOption::Directory],
    // A snapshot of a dir container is an overlay clone on top of it.
    block_backed: false,
    atomic_snapshot: false,
    snapshot_store: Some(Store::Overlay),
    snapshot_pins_origin: false,
    clones_within: false,
    takes_copies: true,
    name_refuses: "",
    host_check,
};
