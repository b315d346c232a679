//! The overlay store: an upper directory (`delta0`) over a lower one, as liblxc's
//! `overlay:LOWER:UPPER` rootfs.

use std::path::Path;

use super::{kernel_has_fs, Store, StoreInfo};

fn host_check(_lxc_path: &Path) -> Result<(), String> {
    // overlay may be a module that is loaded on first mount; only refuse when it is surely absent.
    if kernel_has_fs("overlay")
        || Path::new("/sys/module/overlay").exists()
        || module_available("overlay")
    {
        Ok(())
    } else {
        Err("the kernel has no overlay filesystem".into())
    }
}

fn module_available(name: &str) -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    std::fs::read_to_string(format!("/lib/modules/{}/modules.dep", release.trim()))
        .map(|deps| deps.lines().any(|l| l.contains(&format!("/{name}.ko"))))
        .unwrap_or(false)
}

pub(super) const INFO: StoreInfo = StoreInfo {
    store: Store::Overlay,
    lxc_name: "overlay",
    options: &[],
    block_backed: false,
    atomic_snapshot: false,
    snapshot_store: Some(Store::Overlay),
    snapshot_pins_origin: true,
    clones_within: false,
    takes_copies: true,
    name_refuses: "",
    host_check,
};
