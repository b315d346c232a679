//! Live tests of every backing store: create, start, run a command, stop, destroy, and the
//! `lxc.rootfs.path` prefix each store writes. Stores the host cannot hold (lvm without
//! device-mapper, zfs without its module) are skipped with the reason printed.

mod common;

use std::path::Path;

use common::{
    lines_with_key, run_program, skip_live, unique, BtrfsLxcPath, State, TempLxcPath, NO_NET,
};

/// The whole life of one container on one store: `prefix` is the `lxc.rootfs.path` prefix,
/// `root_fs` the filesystem type `/` has inside (when it says something about the store).
fn lifecycle(
    lxc: &TempLxcPath,
    test: &str,
    store_args: &[&str],
    prefix: &str,
    root_fs: Option<&str>,
) {
    let name = unique(test);
    let mut args = vec!["-t", "busybox", NO_NET];
    args.extend(store_args);
    args.extend([
        "--command",
        "awk '$2 == \"/\" { print $3 }' /proc/mounts; echo in-$(hostname)",
    ]);
    let o = lxc.ensure(&name, &args);
    assert_eq!(
        o.steps,
        ["create", "write config (1 change)", "start", "run command"]
    );
    assert_eq!(o.facts.state, State::Running);
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
    let c = o.command.expect("command result");
    assert_eq!(c.rc, 0, "{c:?}");
    let mounted: Vec<&str> = c.stdout.lines().collect();
    if let Some(fs) = root_fs {
        assert!(mounted.contains(&fs), "rootfs type {fs} expected: {c:?}");
    }
    assert!(mounted.contains(&format!("in-{name}").as_str()), "{c:?}");

    let config = lxc.config_text(&name);
    let rootfs = lines_with_key(&config, "lxc.rootfs.path");
    assert_eq!(rootfs.len(), 1, "{config}");
    let value = rootfs[0].split_once('=').unwrap().1.trim().to_string();
    let want = format!("{prefix}:{}", lxc.path().join(&name).display());
    assert!(
        value.starts_with(&want),
        "lxc.rootfs.path {value:?} should start with {want:?}"
    );

    let o = lxc.ensure(&name, &["--state", "stopped"]);
    assert_eq!(o.steps, ["stop"]);
    assert_eq!(lxc.lxc_state(&name), "STOPPED");

    let o = lxc.ensure(&name, &["--state", "absent"]);
    assert_eq!(o.steps, ["destroy"]);
    assert_eq!(lxc.lxc_state(&name), "ABSENT");
    assert!(
        !lxc.path().join(&name).exists(),
        "its directory and storage are gone"
    );
    assert!(lxc.lxc_ls().is_empty());
}

#[test]
fn dir_store_lifecycle() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("store-dir");
    lifecycle(&lxc, "store-dir", &["-B", "dir"], "dir", None);
}

#[test]
fn overlayfs_store_lifecycle() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("store-overlayfs");
    lifecycle(
        &lxc,
        "store-overlayfs",
        &["-B", "overlayfs"],
        "overlay",
        Some("overlay"),
    );
}

#[test]
fn overlay_is_accepted_as_well_as_overlayfs() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("store-overlay");
    lifecycle(
        &lxc,
        "store-overlay",
        &["-B", "overlay"],
        "overlay",
        Some("overlay"),
    );
}

#[test]
fn btrfs_store_lifecycle_on_a_loopback_image() {
    if skip_live() {
        return;
    }
    let fs = match BtrfsLxcPath::new("store-btrfs") {
        Ok(fs) => fs,
        Err(reason) => {
            common::skip(format_args!("SKIP btrfs: {reason}"));
            return;
        }
    };
    lifecycle(
        fs.lxc(),
        "store-btrfs",
        &["-B", "btrfs"],
        "btrfs",
        Some("btrfs"),
    );
    let r = run_program(
        "btrfs",
        ["subvolume", "list", fs.mount_point().to_str().unwrap()],
    )
    .ok();
    assert_eq!(r.stdout.trim(), "", "no subvolume is left behind");
}

#[test]
fn loop_store_lifecycle_with_fs_size() {
    if skip_live() {
        return;
    }
    if !Path::new("/dev/loop-control").exists() {
        common::skip(format_args!("SKIP loop: /dev/loop-control is missing"));
        return;
    }
    let lxc = TempLxcPath::new("store-loop");
    lifecycle(
        &lxc,
        "store-loop",
        &["-B", "loop", "--fs-size", "200M"],
        "loop",
        Some("ext4"),
    );
    let r = run_program("losetup", ["-a"]).ok();
    assert!(
        !r.stdout.contains(lxc.path().to_str().unwrap()),
        "no loop device left on the image: {r:?}"
    );
}

#[test]
fn loop_store_image_has_the_declared_size() {
    if skip_live() {
        return;
    }
    if !Path::new("/dev/loop-control").exists() {
        common::skip(format_args!("SKIP loop: /dev/loop-control is missing"));
        return;
    }
    let lxc = TempLxcPath::new("store-loop-size");
    let name = unique("store-loop-size");
    lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "-B",
            "loop",
            "--fs-size",
            "200M",
            "--state",
            "stopped",
        ],
    );
    let image = lxc.path().join(&name).join("rootdev");
    let len = std::fs::metadata(&image).expect("rootdev image").len();
    // liblxc writes one byte at offset `size`, so the file is one byte longer.
    assert!(
        (200 << 20..=(200 << 20) + 1).contains(&len),
        "image is {len} bytes"
    );
}

/// Why the host cannot hold an lvm store, if it cannot.
fn lvm_unavailable() -> Option<String> {
    if !Path::new("/dev/mapper/control").exists() {
        return Some("no device-mapper (/dev/mapper/control is missing)".into());
    }
    if !common::have_program("vgs") {
        return Some("the LVM tools (vgs) are not installed".into());
    }
    if std::env::var_os("LXCFORM_TEST_VG").is_none() {
        return Some("set LXCFORM_TEST_VG to a volume group the tests may use".into());
    }
    None
}

#[test]
fn lvm_store_lifecycle() {
    if skip_live() {
        return;
    }
    if let Some(reason) = lvm_unavailable() {
        common::skip(format_args!("SKIP lvm: {reason}"));
        return;
    }
    let vg = std::env::var("LXCFORM_TEST_VG").expect("checked");
    let lxc = TempLxcPath::new("store-lvm");
    let name = unique("store-lvm");
    let o = lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "-B",
            "lvm",
            "--vg-name",
            &vg,
            "--fs-size",
            "200M",
            "--command",
            "true",
        ],
    );
    assert_eq!(o.facts.state, State::Running);
    let config = lxc.config_text(&name);
    let rootfs = lines_with_key(&config, "lxc.rootfs.path");
    assert!(
        rootfs[0].contains(&format!("lvm:/dev/{vg}/{name}")),
        "{rootfs:?}"
    );
    lxc.ensure(&name, &["--state", "absent"]);
    assert_eq!(lxc.lxc_state(&name), "ABSENT");
}

/// Why the host cannot hold a zfs store, if it cannot.
fn zfs_unavailable() -> Option<String> {
    let has_fs = std::fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("zfs"))
        })
        .unwrap_or(false);
    if !has_fs {
        return Some("the kernel has no zfs filesystem (/proc/filesystems)".into());
    }
    if !common::have_program("zfs") {
        return Some("the zfs program is not installed".into());
    }
    if std::env::var_os("LXCFORM_TEST_ZFS_ROOT").is_none() {
        return Some("set LXCFORM_TEST_ZFS_ROOT to a dataset the tests may use".into());
    }
    None
}

#[test]
fn zfs_store_lifecycle() {
    if skip_live() {
        return;
    }
    if let Some(reason) = zfs_unavailable() {
        common::skip(format_args!("SKIP zfs: {reason}"));
        return;
    }
    let root = std::env::var("LXCFORM_TEST_ZFS_ROOT").expect("checked");
    let lxc = TempLxcPath::new("store-zfs");
    let name = unique("store-zfs");
    let o = lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "-B",
            "zfs",
            "--zfs-root",
            &root,
            "--command",
            "true",
        ],
    );
    assert_eq!(o.facts.state, State::Running);
    let config = lxc.config_text(&name);
    assert!(
        lines_with_key(&config, "lxc.rootfs.path")[0].contains("zfs:"),
        "{config}"
    );
    lxc.ensure(&name, &["--state", "absent"]);
    assert_eq!(lxc.lxc_state(&name), "ABSENT");
}

#[test]
fn failed_loop_create_leaves_nothing_half_made() {
    if skip_live() {
        return;
    }
    if !Path::new("/dev/loop-control").exists() {
        common::skip(format_args!("SKIP loop: /dev/loop-control is missing"));
        return;
    }
    let lxc = TempLxcPath::new("store-loop-full");
    let name = unique("store-loop-full");
    // 1M holds no busybox: the template fails after the image and its filesystem exist.
    let r = lxc.ensure_run(
        &name,
        &["-t", "busybox", NO_NET, "-B", "loop", "--fs-size", "1M"],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let f: common::Failure = r.json();
    assert!(f.msg.contains(&name), "{f:?}");
    assert!(
        !lxc.path().join(&name).exists(),
        "no half-made container directory"
    );
    assert!(lxc.lxc_ls().is_empty());
    let r = run_program("losetup", ["-a"]).ok();
    assert!(
        !r.stdout.contains(lxc.path().to_str().unwrap()),
        "no loop device left: {r:?}"
    );
}
