//! Live tests of `lxcform archive` and `lxcform restore`: round trips on every store this host
//! has and with every compression, from running, frozen and stopped containers (which end in
//! the state they had); a tree with xattrs, ACLs, a file capability, hard links, device nodes,
//! setuid files and a sparse file, compared after lxcform's restore and after GNU tar's
//! extraction; signals during an archive; archives in the Python module's layout.
//!
//! Trees are compared by [`Node`]: kind, mode, owner, size, mtime (seconds: what tar keeps),
//! device number, symlink target, a hash of the content, every extended attribute, and the
//! hard-link group (the first path of the same inode).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{lxcform, run_program, skip_live, unique, BtrfsLxcPath, TempLxcPath, NO_NET};
use serde::Deserialize;

const COMPRESSIONS: [(&str, &str); 5] = [
    ("gzip", "tar.tgz"),
    ("bzip2", "tar.bz2"),
    ("none", "tar"),
    ("xz", "tar.xz"),
    ("zstd", "tar.zst"),
];

/// `lxcform archive --json`, defined apart from the library.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveOut {
    path: PathBuf,
    size: u64,
    sha256: String,
    compression: String,
    entries: u64,
    bytes_read: u64,
    seconds: f64,
    notes: Vec<String>,
}

/// `lxcform restore --json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreOut {
    name: String,
    lxc_path: PathBuf,
    store: String,
    rootfs: String,
    archived_name: String,
    compression: String,
    entries: u64,
    seconds: f64,
    notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Trees

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    rdev: u64,
    content: u64,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    link_group: Option<PathBuf>,
}

type Tree = BTreeMap<PathBuf, Node>;

fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    use lxcform::liblxc::sys;
    sys::xattr_names(p)
        .unwrap_or_else(|e| panic!("list xattrs of {}: {e}", p.display()))
        .into_iter()
        .map(|n| {
            let v = sys::xattr_get(p, &n).unwrap_or_default();
            (n, v)
        })
        .collect()
}

/// Every path under `root` (itself included), symlinks not followed.
fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut all = Vec::new();
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        all.push((p, md));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, md) in all {
        let ft = md.file_type();
        let mut h = DefaultHasher::new();
        let kind = if ft.is_symlink() {
            h.write(fs::read_link(&p).unwrap().as_os_str().as_bytes());
            "symlink"
        } else if ft.is_file() {
            hash_file(&p, &mut h);
            "file"
        } else if ft.is_dir() {
            "dir"
        } else {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_socket() {
                "socket"
            } else {
                "special"
            }
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let link_group = (!ft.is_dir() && md.nlink() > 1).then(|| {
            inodes
                .entry((md.dev(), md.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.len() },
                mtime: md.mtime(),
                rdev: md.rdev(),
                content: h.finish(),
                xattrs: xattrs(&p),
                link_group,
            },
        );
    }
    out
}

fn hash_file(p: &Path, h: &mut DefaultHasher) {
    use std::io::Read;
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
}

#[track_caller]
fn assert_same(want: &Tree, got: &Tree, context: &str) {
    let mut diffs = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => diffs.push(format!("missing: {}", p.display())),
            Some(g) if g != w => {
                diffs.push(format!("differs: {}\n    {w:?}\n    {g:?}", p.display()))
            }
            Some(_) => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        diffs.push(format!("extra: {}", p.display()));
    }
    let shown: Vec<String> = diffs.iter().take(20).cloned().collect();
    assert!(
        diffs.is_empty(),
        "{context}: {} differences:\n  {}",
        diffs.len(),
        shown.join("\n  ")
    );
}

/// Mounts something read-only for the life of the guard.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&OsStr], at: &Path) -> Mount {
        fs::create_dir_all(at).unwrap();
        let mut all: Vec<&OsStr> = vec![OsStr::new("-o")];
        all.extend(args);
        all.push(at.as_os_str());
        run_program("mount", &all).ok();
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..50 {
            if run_program("umount", [&self.0]).code == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = fs::remove_dir(&self.0);
    }
}

/// The root filesystem of a stopped container as the container would see it, read with the
/// kernel's own overlay and loop mounts (independently of lxcform's reading).
fn rootfs_tree(lxc: &TempLxcPath, name: &str) -> Tree {
    let config = lxc.config_text(name);
    let value = config
        .lines()
        .find_map(|l| l.strip_prefix("lxc.rootfs.path = "))
        .unwrap_or_else(|| panic!("no rootfs in {config}"))
        .to_string();
    let mnt = lxc.path().join(format!(".view-{name}"));
    let (prefix, rest) = value.split_once(':').unwrap_or(("dir", &value));
    match prefix {
        "dir" | "btrfs" => tree(Path::new(rest)),
        "overlay" | "overlayfs" => {
            let (lower, upper) = rest.rsplit_once(':').unwrap();
            let opts = format!("ro,lowerdir={upper}:{lower}");
            let _m = Mount::new(
                &[
                    OsStr::new(&opts),
                    OsStr::new("-t"),
                    OsStr::new("overlay"),
                    OsStr::new("overlay"),
                ],
                &mnt,
            );
            tree(&mnt)
        }
        "loop" => {
            let _m = Mount::new(&[OsStr::new("ro,loop"), OsStr::new(rest)], &mnt);
            let mut t = tree(&mnt);
            t.remove(Path::new("lost+found"));
            t
        }
        other => panic!("no view for store {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn set_state(lxc: &TempLxcPath, name: &str, state: &str) {
    lxc.ensure(name, &["--state", state]);
    let want = match state {
        "started" => "RUNNING",
        "stopped" => "STOPPED",
        "frozen" => "FROZEN",
        other => panic!("state {other}"),
    };
    assert_eq!(lxc.lxc_state(name), want);
}

fn archive(lxc: &TempLxcPath, name: &str, out: &Path, compression: &str) -> ArchiveOut {
    let p = lxc.path().as_os_str();
    let args: Vec<&OsStr> = vec![
        "archive".as_ref(),
        name.as_ref(),
        "-P".as_ref(),
        p,
        "-p".as_ref(),
        out.as_os_str(),
        "-c".as_ref(),
        compression.as_ref(),
        "--json".as_ref(),
    ];
    lxcform(&args).ok().json()
}

fn restore(lxc: &TempLxcPath, archive: &Path, name: &str, extra: &[&str]) -> RestoreOut {
    let mut args: Vec<&OsStr> = vec![
        "restore".as_ref(),
        archive.as_os_str(),
        "--name".as_ref(),
        name.as_ref(),
        "-P".as_ref(),
        lxc.path().as_os_str(),
        "--json".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    lxcform(&args).ok().json()
}

fn sha256sum(p: &Path) -> String {
    let r = run_program("sha256sum", [p]).ok();
    r.stdout.split_whitespace().next().unwrap().to_string()
}

/// Checks what every archive must be: its name, mode 0600, its size and hash as reported.
fn check_file(a: &ArchiveOut, dir: &Path, name: &str, ext: &str) {
    assert_eq!(a.path, dir.join(format!("{name}.{ext}")));
    let md = fs::metadata(&a.path).unwrap();
    assert_eq!(
        md.permissions().mode() & 0o777,
        0o600,
        "archives are private"
    );
    assert_eq!(md.len(), a.size);
    assert_eq!(sha256sum(&a.path), a.sha256);
    assert!(a.entries > 10 && a.seconds >= 0.0, "{a:?}");
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("lxcform-tmp"))
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Archives `name` from every state with every compression, restores each archive onto
/// `restore_args`' store, and compares the restored rootfs with the original: exactly for a
/// stopped container; for a running or frozen one, with the tree once it is stopped, apart
/// from what its syslogd writes (`var/log`, `var/run`) and the root's mtime.
fn round_trips(lxc: &TempLxcPath, name: &str, restore_args: &[&str], store: &str) {
    set_state(lxc, name, "stopped");
    let stopped = rootfs_tree(lxc, name);
    let out = lxc.path().join("archives");
    let mut started_one = false;
    for state in ["stopped", "started", "frozen"] {
        set_state(lxc, name, state);
        let mut restored = Vec::new();
        for (compression, ext) in COMPRESSIONS {
            let a = archive(lxc, name, &out, compression);
            let context = format!("{store}, {state}, {compression}");
            assert_eq!(a.compression, compression);
            assert!(a.bytes_read > 500_000, "{a:?}");
            check_file(&a, &out, name, ext);
            set_state_is(lxc, name, state, &context);
            let new = unique(&format!("r-{store}"));
            let r = restore(lxc, &a.path, &new, restore_args);
            assert_eq!((r.name.as_str(), r.store.as_str()), (new.as_str(), store));
            assert_eq!(r.archived_name, name);
            assert_eq!(r.lxc_path, lxc.path());
            assert_eq!(r.compression, compression, "{context}");
            assert!(r.entries >= a.entries && r.seconds >= 0.0, "{r:?}");
            assert!(r.rootfs.starts_with(store), "{r:?}");
            restored.push((context, rootfs_tree(lxc, &new)));
            let config = lxc.config_text(&new);
            assert!(
                config.contains(&format!("lxc.uts.name = {new}\n")),
                "{config}"
            );
            assert!(
                config.contains(&format!("lxc.rootfs.path = {}\n", r.rootfs)),
                "{config}"
            );
            if !started_one {
                let o = lxc.ensure(&new, &["--state", "started", "--command", "echo up"]);
                assert_eq!(o.command.map(|c| c.stdout), Some("up\n".into()));
                started_one = true;
            }
            lxc.ensure(&new, &["--state", "absent"]);
            fs::remove_file(&a.path).unwrap();
        }
        if state == "stopped" {
            for (context, got) in &restored {
                assert_same(&stopped, got, context);
            }
        } else {
            set_state(lxc, name, "stopped");
            let want = quiet(rootfs_tree(lxc, name));
            for (context, got) in restored {
                assert_same(&want, &quiet(got), &context);
            }
        }
    }
    set_state(lxc, name, "stopped");
}

/// A tree without what a running busybox container changes by itself.
fn quiet(mut t: Tree) -> Tree {
    t.retain(|p, _| {
        !(p.starts_with("var/log") || p.starts_with("var/run")) || p.as_os_str().len() <= 7
    });
    for p in ["", "var/log", "var/run"] {
        if let Some(n) = t.get_mut(Path::new(p)) {
            n.mtime = 0;
        }
    }
    t
}

#[track_caller]
fn set_state_is(lxc: &TempLxcPath, name: &str, state: &str, context: &str) {
    let want = match state {
        "started" => "RUNNING",
        "stopped" => "STOPPED",
        _ => "FROZEN",
    };
    assert_eq!(lxc.lxc_state(name), want, "{context}: state after archive");
}

fn busybox(lxc: &TempLxcPath, test: &str, store_args: &[&str]) -> String {
    let name = unique(test);
    let mut args = vec!["-t", "busybox", NO_NET, "--state", "stopped"];
    args.extend(store_args);
    lxc.ensure(&name, &args);
    name
}

// ---------------------------------------------------------------------------------------------
// Round trips per store

#[test]
fn dir_round_trips_every_compression_from_every_state() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-dir");
    let name = busybox(&lxc, "arc-dir", &[]);
    round_trips(&lxc, &name, &[], "dir");
}

#[test]
fn overlay_round_trips_its_merged_view_with_whiteouts_and_opaque_dirs() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-ovl");
    let name = busybox(&lxc, "arc-ovl", &["-B", "overlay"]);
    // Lower-layer content that the container then deletes and replaces: whiteouts, an opaque
    // directory, a copied-up file.
    let lower = lxc.path().join(&name).join("rootfs");
    fs::create_dir_all(lower.join("opq/old")).unwrap();
    fs::write(lower.join("opq/old/f"), b"lower").unwrap();
    fs::write(lower.join("gone"), b"lower").unwrap();
    fs::write(lower.join("kept"), b"lower").unwrap();
    let o = lxc.ensure(
        &name,
        &[
            "--state",
            "stopped",
            "--command",
            "rm /gone && rm -rf /opq && mkdir /opq && echo upper > /opq/new && echo up >> /kept",
        ],
    );
    assert_eq!(o.command.map(|c| c.rc), Some(0));
    let upper = lxc.path().join(&name).join("overlay/delta");
    let whiteout = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert_eq!(whiteout.rdev(), 0, "the kernel made a whiteout");
    let t = rootfs_tree(&lxc, &name);
    assert!(!t.contains_key(Path::new("gone")) && !t.contains_key(Path::new("opq/old")));
    assert!(t.contains_key(Path::new("opq/new")));
    round_trips(&lxc, &name, &["-B", "overlay"], "overlay");
}

#[test]
fn loop_round_trips_every_compression_from_every_state() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-loop");
    let name = busybox(&lxc, "arc-loop", &["-B", "loop", "--fs-size", "64M"]);
    round_trips(&lxc, &name, &["-B", "loop", "--fs-size", "64M"], "loop");
}

#[test]
fn btrfs_round_trips_every_compression_from_every_state() {
    if skip_live() {
        return;
    }
    let btrfs = match BtrfsLxcPath::new("arc-btrfs") {
        Ok(b) => b,
        Err(why) => {
            common::skip(format_args!("SKIP: btrfs: {why}"));
            return;
        }
    };
    let lxc = btrfs.lxc();
    let name = busybox(lxc, "arc-btrfs", &["-B", "btrfs"]);
    round_trips(lxc, &name, &["-B", "btrfs"], "btrfs");
    let snaps: Vec<_> = fs::read_dir(lxc.path().join(&name))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("lxcform"))
        .collect();
    assert!(snaps.is_empty(), "snapshots left: {snaps:?}");
}

#[test]
fn lvm_and_zfs_archives_need_their_host_support() {
    if skip_live() {
        return;
    }
    if !Path::new("/dev/mapper/control").exists() {
        common::skip(format_args!(
            "SKIP: lvm round trip: the host has no device-mapper"
        ));
    }
    if !fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("zfs")) {
        common::skip(format_args!(
            "SKIP: zfs round trip: the kernel has no zfs module"
        ));
    }
    // Restoring onto a store the host lacks fails cleanly, before anything is made.
    let lxc = TempLxcPath::new("arc-nostore");
    let name = busybox(&lxc, "arc-nostore", &[]);
    let a = archive(&lxc, &name, &lxc.path().join("a"), "zstd");
    for store in ["lvm", "zfs"] {
        let unavailable = match store {
            "lvm" => !Path::new("/dev/mapper/control").exists(),
            _ => !fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.contains("zfs")),
        };
        if !unavailable {
            continue;
        }
        let new = unique("arc-nostore-r");
        let r = lxcform([
            OsStr::new("restore"),
            a.path.as_os_str(),
            OsStr::new("-n"),
            OsStr::new(&new),
            OsStr::new("-P"),
            lxc.path().as_os_str(),
            OsStr::new("-B"),
            OsStr::new(store),
        ]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("cannot be used here"), "{r:?}");
        assert!(!lxc.path().join(&new).exists(), "nothing made");
    }
}

#[test]
fn a_dir_archive_restores_onto_every_other_store() {
    if skip_live() {
        return;
    }
    let btrfs = match BtrfsLxcPath::new("arc-any") {
        Ok(b) => b,
        Err(why) => {
            common::skip(format_args!("SKIP: btrfs: {why}"));
            return;
        }
    };
    let lxc = btrfs.lxc();
    let name = busybox(lxc, "arc-any", &[]);
    let want = rootfs_tree(lxc, &name);
    let a = archive(lxc, &name, &lxc.path().join("a"), "gzip");
    for (store, extra) in [
        ("overlay", vec!["-B", "overlayfs"]),
        ("btrfs", vec!["-B", "btrfs"]),
        ("loop", vec!["-B", "loop", "--fs-size", "64M"]),
        ("dir", vec!["-B", "dir"]),
    ] {
        let new = unique(&format!("arc-any-{store}"));
        let r = restore(lxc, &a.path, &new, &extra);
        assert_eq!(r.store, store);
        assert_same(&want, &rootfs_tree(lxc, &new), store);
        let o = lxc.ensure(&new, &["--state", "started", "--command", "hostname"]);
        assert_eq!(o.command.map(|c| c.stdout), Some(format!("{new}\n")));
        lxc.ensure(&new, &["--state", "absent"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Fidelity

fn sh(script: &str) {
    run_program("sh", ["-c", script]).ok();
}

/// Fills `dir` with every kind of thing a root filesystem may hold.
fn fidelity_tree(dir: &Path) -> PathBuf {
    let f = dir.join("fid");
    fs::create_dir_all(f.join("sub")).unwrap();
    let d = f.display();
    sh(&format!(
        "set -e; cd {d}
         printf hello > plain; touch -d 2001-02-03T04:05:06 plain
         printf x > setuid; chmod 4755 setuid
         mkdir setgid-dir; chmod 2775 setgid-dir
         mkdir sticky; chmod 1777 sticky
         printf o > owned; chown 3000000:3000001 owned
         printf x > xattr; setfattr -n user.test -v value xattr; setfattr -n trusted.test -v secret xattr
         printf x > acl; setfacl -m u:1234:r,g:4321:rw acl
         mkdir acldir; setfacl -d -m u:1234:rx acldir; setfacl -m u:1234:rwx acldir
         printf x > cap; setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= cap
         printf linked > h1; ln h1 sub/h2; ln h1 h3
         mknod null c 1 3; mknod loop9 b 7 9; mkfifo fifo
         truncate -s 256M sparse; printf data | dd of=sparse bs=1 seek=134217728 conv=notrunc 2>/dev/null
         truncate -s 32M holes-only
         ln -s ../etc/passwd link; ln -s /etc/shadow abs
         mkdir empty; : > empty-file
         mkdir -p long/$(printf 'd%.0s' $(seq 120))/$(printf 'e%.0s' $(seq 120))
         printf deep > long/$(printf 'd%.0s' $(seq 120))/$(printf 'e%.0s' $(seq 120))/$(printf 'f%.0s' $(seq 150))
         ln -s $(printf 't%.0s' $(seq 200)) long-target
         python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock\")'
         touch -h -d 1999-12-31T23:59:59 link"
    ));
    // A name that is not UTF-8.
    let name = OsString::from_vec(b"caf\xe9".to_vec());
    fs::write(f.join(name), b"latin-1").unwrap();
    f
}

fn without_socket(mut t: Tree) -> Tree {
    t.retain(|p, n| {
        if n.kind == "socket" {
            assert_eq!(p, Path::new("fid/sock"));
            false
        } else {
            true
        }
    });
    t
}

#[test]
fn a_tree_of_every_kind_of_file_survives_restore_and_gnu_tar() {
    if skip_live() {
        return;
    }
    for p in ["setfattr", "setfacl", "python3"] {
        if !common::have_program(p) {
            common::skip(format_args!(
                "SKIP: fidelity test needs {p} (packages attr, acl, python3)"
            ));
            return;
        }
    }
    let lxc = TempLxcPath::new("arc-fid");
    let name = busybox(&lxc, "arc-fid", &[]);
    let rootfs = lxc.path().join(&name).join("rootfs");
    fidelity_tree(&rootfs);
    let want = without_socket(tree(&rootfs));
    assert!(want[Path::new("fid/cap")]
        .xattrs
        .contains_key(&b"security.capability"[..]));
    assert!(want[Path::new("fid/acldir")]
        .xattrs
        .contains_key(&b"system.posix_acl_default"[..]));

    for (compression, _) in [("zstd", ""), ("gzip", "")] {
        let out = lxc.path().join("out");
        let a = archive(&lxc, &name, &out, compression);
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("skipped socket") && n.contains("fid/sock")),
            "{:?}",
            a.notes
        );
        // The sparse file is stored sparse: the archive is small.
        assert!(a.size < 16 << 20, "archive of {} bytes", a.size);

        // Hard links are stored once.
        let list = run_program("tar", [OsStr::new("-tvf"), a.path.as_os_str()]).ok();
        let links = list
            .stdout
            .lines()
            .filter(|l| l.contains("/fid/") && l.contains(" link to "))
            .count();
        assert_eq!(links, 2, "{}", list.stdout);

        // GNU tar extracts the same tree.
        let gnu = lxc.path().join(format!("gnu-{compression}"));
        fs::create_dir_all(&gnu).unwrap();
        let r = run_program(
            "tar",
            [
                OsStr::new("--xattrs"),
                OsStr::new("--xattrs-include=*"),
                OsStr::new("--numeric-owner"),
                OsStr::new("-xpf"),
                a.path.as_os_str(),
                OsStr::new("-C"),
                gnu.as_os_str(),
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let extracted = tree(&gnu.join("rootfs"));
        assert_same(&want, &extracted, &format!("GNU tar, {compression}"));
        let sparse = fs::metadata(gnu.join("rootfs/fid/sparse")).unwrap();
        assert!(sparse.blocks() * 512 < 1 << 20, "GNU tar kept the holes");
        fs::remove_dir_all(&gnu).unwrap();

        // lxcform restores the same tree.
        let new = unique("arc-fid-r");
        let r = restore(&lxc, &a.path, &new, &[]);
        assert_eq!(r.archived_name, name);
        let restored = lxc.path().join(&new).join("rootfs");
        assert_same(
            &want,
            &tree(&restored),
            &format!("lxcform restore, {compression}"),
        );
        let sparse = fs::metadata(restored.join("fid/sparse")).unwrap();
        assert_eq!(sparse.len(), 256 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "restore kept the holes");
        lxc.ensure(&new, &["--state", "absent"]);
        fs::remove_file(&a.path).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Signals

/// A running container with a large incompressible file, so that an xz archive of it takes
/// long enough to be interrupted.
fn slow_container(lxc: &TempLxcPath, test: &str) -> String {
    let name = busybox(lxc, test, &[]);
    let big = lxc.path().join(&name).join("rootfs/big");
    sh(&format!("head -c 300M /dev/urandom > {}", big.display()));
    set_state(lxc, &name, "started");
    name
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains("lxcform-tmp"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts an xz archive and returns once it is writing, with the container frozen.
// The caller waits for the child it is handed.
#[allow(clippy::zombie_processes)]
fn start_archive(lxc: &TempLxcPath, name: &str, out: &Path) -> std::process::Child {
    let mut child = Command::new(common::BIN)
        .args(["archive", name, "-c", "xz", "-q", "-P"])
        .arg(lxc.path())
        .arg("-p")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if !temp_files(out).is_empty() && lxc.lxc_state(name) == "FROZEN" {
            // Let it get into the big file.
            std::thread::sleep(Duration::from_millis(300));
            return child;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the archive never started");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_leave_no_archive_and_thaw_the_container() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-sig");
    let name = slow_container(&lxc, "arc-sig");
    let out = lxc.path().join("out");
    for (signal, number) in [("-INT", 2), ("-TERM", 15)] {
        let mut child = start_archive(&lxc, &name, &out);
        run_program("kill", [signal, &child.id().to_string()]).ok();
        let t0 = Instant::now();
        let status = child.wait().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t0.elapsed()
        );
        assert_eq!(
            status.signal(),
            Some(number),
            "ends by the signal it got: {status:?}"
        );
        assert!(
            temp_files(&out).is_empty(),
            "{signal}: {:?}",
            temp_files(&out)
        );
        assert!(!out.join(format!("{name}.tar.xz")).exists());
        assert_eq!(lxc.lxc_state(&name), "RUNNING", "{signal}: thawed");
        assert!(!lxc
            .path()
            .join(&name)
            .join(".lxcform-archive-frozen")
            .exists());
    }
}

#[test]
fn after_sigkill_the_next_run_removes_the_temp_file_and_thaws() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-kill");
    let name = slow_container(&lxc, "arc-kill");
    let out = lxc.path().join("out");
    let mut child = start_archive(&lxc, &name, &out);
    run_program("kill", ["-KILL", &child.id().to_string()]).ok();
    child.wait().unwrap();
    let left = temp_files(&out);
    assert_eq!(left.len(), 1, "a SIGKILL leaves only its temporary file");
    assert!(!out.join(format!("{name}.tar.xz")).exists());
    assert_eq!(lxc.lxc_state(&name), "FROZEN", "frozen by the killed run");
    // Make the next run quick.
    fs::write(lxc.path().join(&name).join("rootfs/big"), b"small").unwrap();
    let a = archive(&lxc, &name, &out, "xz");
    assert!(
        a.notes.iter().any(|n| n.contains("interrupted run")),
        "{:?}",
        a.notes
    );
    assert!(temp_files(&out).is_empty());
    assert!(a.path.exists());
    assert_eq!(
        lxc.lxc_state(&name),
        "RUNNING",
        "the killed run's freeze is undone"
    );
}

// ---------------------------------------------------------------------------------------------
// Other archives, errors

/// The members of `archive`, as GNU tar lists them.
fn members(archive: &Path) -> Vec<String> {
    let list = run_program("tar", [OsStr::new("-tf"), archive.as_os_str()]).ok();
    list.stdout.lines().map(str::to_string).collect()
}

#[test]
fn members_are_those_of_the_python_modules_archives() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-mem");
    let name = busybox(&lxc, "arc-mem", &[]);
    let dir = lxc.path().join(&name);
    // What belongs beside the config, and what does not.
    fs::write(dir.join("fstab"), "proc proc proc nodev 0 0\n").unwrap();
    fs::write(dir.join("console.log"), "boot\n").unwrap();
    fs::write(dir.join("partial"), "").unwrap();
    fs::create_dir_all(dir.join("lxc_snapshots/snap0/rootfs")).unwrap();
    let out = lxc.path().join("out");
    let a = archive(&lxc, &name, &out, "gzip");
    let list = members(&a.path);
    assert_eq!(list[..3], ["./", "./config", "./fstab"], "{list:?}");
    for want in ["./rootfs/", "./rootfs/bin/busybox", "./rootfs/etc/passwd"] {
        assert!(list.iter().any(|m| m == want), "{want} in {list:?}");
    }
    for m in &list {
        assert!(
            m == "./" || m.starts_with("./rootfs/") || ["./config", "./fstab"].contains(&&**m),
            "{m} is archived: {list:?}"
        );
    }
    // A restore script written for the Python module's archives works as it did.
    let by_hand = lxc.path().join("by-hand");
    fs::create_dir_all(&by_hand).unwrap();
    run_program(
        "tar",
        [
            OsStr::new("--numeric-owner"),
            OsStr::new("-xpzf"),
            a.path.as_os_str(),
            OsStr::new("-C"),
            by_hand.as_os_str(),
        ],
    )
    .ok();
    assert_eq!(
        fs::read(by_hand.join("config")).unwrap(),
        fs::read(lxc.config_file(&name)).unwrap()
    );
    assert!(by_hand.join("rootfs/bin/busybox").is_file());
    assert_same(
        &rootfs_tree(&lxc, &name),
        &tree(&by_hand.join("rootfs")),
        "tar -x",
    );
    // lxcform restores it, fstab included, with the paths into the old directory moved.
    let new = unique("arc-mem-r");
    let r = restore(&lxc, &a.path, &new, &[]);
    assert_eq!(r.archived_name, name);
    assert_eq!(
        fs::read_to_string(lxc.path().join(&new).join("fstab")).unwrap(),
        "proc proc proc nodev 0 0\n"
    );
    assert!(!lxc.path().join(&new).join("console.log").exists());
    let config = lxc.config_text(&new);
    assert!(
        config.contains(&format!(
            "lxc.rootfs.path = dir:{}\n",
            lxc.path().join(&new).join("rootfs").display()
        )),
        "{config}"
    );
    assert!(!config.contains(&format!("/{name}/")), "{config}");
}

#[test]
fn archives_in_the_python_modules_and_earlier_layouts_restore() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-py");
    let name = busybox(&lxc, "arc-py", &[]);
    let want = rootfs_tree(&lxc, &name);
    let dir = lxc.path().join(&name);
    // What the module does: rsync the container directory into a temp dir, tar its copy.
    let tmp = lxc.path().join("pytmp");
    fs::create_dir_all(&tmp).unwrap();
    let python = lxc.path().join(format!("{name}.tar.tgz"));
    sh(&format!(
        "set -e; rsync -aHAX {dir} {tmp}; tar --directory={tmp}/{name} -czf {python} .",
        dir = dir.display(),
        tmp = tmp.display(),
        python = python.display()
    ));
    assert_eq!(members(&python)[0], "./");
    assert!(members(&python).contains(&"./config".to_string()));
    // Earlier lxcform archives: `NAME/config`, `NAME/rootfs/…`; and the same below `./`.
    let named = lxc.path().join("named.tar.zst");
    let dotted = lxc.path().join("dotted.tar");
    let at = lxc.path().display();
    sh(&format!(
        "set -e; tar -C {at} --zstd -cf {named} {name}; tar -C {at} -cf {dotted} ./{name}",
        named = named.display(),
        dotted = dotted.display()
    ));
    assert!(members(&named).contains(&format!("{name}/config")));
    assert!(members(&dotted).contains(&format!("./{name}/rootfs/bin/busybox")));
    for (layout, archive) in [("python", &python), ("named", &named), ("dotted", &dotted)] {
        let new = unique("arc-py-r");
        let r = restore(&lxc, archive, &new, &["--keep-hwaddr"]);
        assert_eq!(r.archived_name, name, "{layout}");
        assert!(!r.notes.iter().any(|n| n.contains("MAC")), "{:?}", r.notes);
        assert_same(&want, &rootfs_tree(&lxc, &new), layout);
        let config = lxc.config_text(&new);
        assert!(!config.contains(&format!("/{name}/")), "{layout}: {config}");
        if layout == "python" {
            let o = lxc.ensure(&new, &["--state", "started", "--command", "hostname"]);
            assert_eq!(o.command.map(|c| c.stdout), Some(format!("{new}\n")));
        }
        lxc.ensure(&new, &["--state", "absent"]);
    }
}

#[test]
fn failures_leave_nothing_behind() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-fail");
    let p = lxc.path().as_os_str();
    let out = lxc.path().join("out");

    // No such container.
    let r = lxcform([
        OsStr::new("archive"),
        OsStr::new("nope"),
        OsStr::new("-P"),
        p,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("does not exist"), "{r:?}");
    // A compression that does not exist: bad usage, nothing touched.
    let r = lxcform([
        OsStr::new("archive"),
        OsStr::new("nope"),
        OsStr::new("-c"),
        OsStr::new("lz4"),
        OsStr::new("-P"),
        p,
    ]);
    assert_eq!(r.code, 2, "{r:?}");

    let name = busybox(&lxc, "arc-fail", &[]);
    let a = archive(&lxc, &name, &out, "gzip");
    // Restoring onto an existing name changes nothing.
    let before = fs::read(lxc.config_file(&name)).unwrap();
    let r = lxcform([
        OsStr::new("restore"),
        a.path.as_os_str(),
        OsStr::new("-n"),
        OsStr::new(&name),
        OsStr::new("-P"),
        p,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("already exists"), "{r:?}");
    assert_eq!(fs::read(lxc.config_file(&name)).unwrap(), before);

    // A truncated archive: an error, and no half-restored container.
    let data = fs::read(&a.path).unwrap();
    let cut = lxc.path().join("cut.tar.tgz");
    fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let new = unique("arc-fail-cut");
    let r = lxcform([
        OsStr::new("restore"),
        cut.as_os_str(),
        OsStr::new("-n"),
        OsStr::new(&new),
        OsStr::new("-P"),
        p,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!lxc.path().join(&new).exists(), "nothing half-made: {r:?}");

    // Not an archive at all.
    let junk = lxc.path().join("junk.tar");
    fs::write(&junk, vec![7u8; 4096]).unwrap();
    let r = lxcform([
        OsStr::new("restore"),
        junk.as_os_str(),
        OsStr::new("-n"),
        OsStr::new(&new),
        OsStr::new("-P"),
        p,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not a container archive"), "{r:?}");
    assert!(!lxc.path().join(&new).exists());
}

// ---------------------------------------------------------------------------------------------
// lvm and zfs, with stand-in commands

/// Writes stand-ins for the lvm, zfs and mount commands into `dir`: each logs its command
/// line; `blkid` says ext4; `zfs list` and `lvs` find no leftover snapshot; `mount` bind-mounts
/// `$FAKE_ROOT` where it is asked to mount anything.
fn stand_ins(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let real_mount = run_program("sh", ["-c", "command -v mount"]).ok().stdout;
    let scripts = [
        ("zfs", "case \"$1\" in list) exit 1;; esac"),
        ("lvs", "exit 5"),
        ("blkid", "echo ext4"),
        (
            "mount",
            &format!(
                "for last; do :; done; exec {} --bind \"$FAKE_ROOT\" \"$last\"",
                real_mount.trim()
            ),
        ),
    ];
    for (name, body) in scripts {
        let path = dir.join(name);
        common::write_script(
            &path,
            &format!("#!/bin/sh\necho \"{name} $*\" >> \"$FAKE_LOG\"\n{body}\n"),
        );
    }
}

#[test]
fn lvm_and_zfs_views_snapshot_mount_and_clean_up() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-fake");
    let fakes = lxc.path().join("bin");
    stand_ins(&fakes);
    let log = lxc.path().join("commands.log");
    let path = format!(
        "{}:{}",
        fakes.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (store, rootfs_value) in [("zfs", "zfs:tank/lxc/NAME"), ("lvm", "lvm:/dev/vg0/NAME")] {
        let name = busybox(&lxc, &format!("arc-fake-{store}"), &[]);
        let real_rootfs = lxc.path().join(&name).join("rootfs");
        let original = lxc.config_text(&name);
        let value = rootfs_value.replace("NAME", &name);
        let config: String = original
            .lines()
            .map(|l| {
                if l.starts_with("lxc.rootfs.path") {
                    format!("lxc.rootfs.path = {value}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(lxc.config_file(&name), config).unwrap();
        let _ = fs::remove_file(&log);
        let out = lxc.path().join("out");
        let r = Command::new(common::BIN)
            .args(["archive", &name, "-c", "zstd", "--json", "-P"])
            .arg(lxc.path())
            .arg("-p")
            .arg(&out)
            .env("PATH", &path)
            .env("FAKE_ROOT", &real_rootfs)
            .env("FAKE_LOG", &log)
            .output()
            .unwrap();
        assert!(r.status.success(), "{store}: {r:?}");
        let a: ArchiveOut = serde_json::from_slice(&r.stdout).unwrap();
        let list = run_program("tar", [OsStr::new("-tf"), a.path.as_os_str()]).ok();
        assert!(
            list.stdout.lines().any(|l| l == "./rootfs/bin/busybox"),
            "{store}: {}",
            list.stdout
        );
        let commands = fs::read_to_string(&log).unwrap();
        let mnt = lxc.path().join(&name).join(".lxcform-archive-view");
        let want = match store {
            "zfs" => format!(
                "zfs list -H tank/lxc/{name}@lxcform-archive\n\
                 zfs snapshot tank/lxc/{name}@lxcform-archive\n\
                 mount -t zfs -o ro tank/lxc/{name}@lxcform-archive {mnt}\n\
                 zfs destroy tank/lxc/{name}@lxcform-archive\n",
                mnt = mnt.display()
            ),
            _ => format!(
                "lvs vg0/{name}-lxcform-archive\n\
                 blkid -o value -s TYPE /dev/vg0/{name}\n\
                 mount -o ro /dev/vg0/{name} {mnt}\n",
                mnt = mnt.display()
            ),
        };
        assert_eq!(commands, want, "{store}");
        assert!(!mnt.exists(), "{store}: the view is unmounted and removed");
        // Back to a dir container, which the cleanup can destroy.
        fs::write(lxc.config_file(&name), original).unwrap();
    }
}

/// A restore onto loop keeps the image it made, whatever the archive holds of the same name:
/// an archived `./rootdev` (the Python module archives a loop container's image with it) is
/// never written over the new, mounted one.
#[test]
fn an_archived_rootdev_never_replaces_the_new_loop_image() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-rootdev");
    let name = busybox(&lxc, "arc-rootdev", &[]);
    let src = lxc.path().join("src");
    fs::create_dir_all(src.join("rootfs/bin")).unwrap();
    fs::copy(lxc.config_file(&name), src.join("config")).unwrap();
    fs::write(src.join("rootdev"), "not an image\n").unwrap();
    fs::write(src.join("rootfs/bin/x"), "x\n").unwrap();
    let archive = lxc.path().join("rootdev.tar");
    sh(&format!(
        "set -e; tar --directory={} -cf {} .",
        src.display(),
        archive.display()
    ));
    let new = unique("arc-rootdev-r");
    restore(&lxc, &archive, &new, &["-B", "loop", "--fs-size", "64M"]);
    let image = lxc.path().join(&new).join("rootdev");
    assert_eq!(
        fs::metadata(&image).unwrap().len(),
        64 << 20,
        "the image was replaced"
    );
    let fsck = run_program("e2fsck", [OsStr::new("-fn"), image.as_os_str()]);
    assert_eq!(fsck.code, 0, "{fsck:#?}");
    lxc.ensure(&new, &["--state", "absent"]);
}

/// An archive killed outright (SIGKILL) leaves its view mounted and the container frozen.
/// The next run of any kind undoes that first — the container is running again, nothing is
/// mounted — so that a later destroy works and a declared frozen state is one lxcform made.
#[test]
fn what_a_killed_archive_leaves_is_undone_by_the_next_run() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-kill");
    let name = busybox(&lxc, "arc-kill", &["-B", "loop", "--fs-size", "512M"]);
    lxc.ensure(&name, &["--state", "started"]);
    let big = "dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null; sync";
    lxc.ensure(&name, &["--command", big]);
    let out = lxc.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let view = lxc.path().join(&name).join(".lxcform-archive-view");
    let mounted = || {
        fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&view.display().to_string())
    };
    let mut child = Command::new(common::BIN)
        .args(["archive", &name, "-c", "xz", "-P"])
        .arg(lxc.path())
        .arg("-p")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !mounted() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the view was never mounted"
        );
        assert!(child.try_wait().unwrap().is_none(), "ended before the view");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mounted(), "the killed archive left its view");

    // A run with nothing else to do undoes it.
    let o = lxc.ensure(&name, &["--state", "started"]);
    assert_eq!(
        o.steps,
        ["recover from a killed run (back to running)"],
        "{o:?}"
    );
    assert!(!mounted(), "the view is unmounted");
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
    // And the container can go.
    lxc.ensure(&name, &["--state", "absent"]);
    assert!(!lxc.path().join(&name).exists());
}

/// An archive whose disk fills up fails naming the archive it could not write (not the
/// container's files), and leaves no partial file.
#[test]
fn a_full_archive_disk_is_told_as_such_and_leaves_nothing() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("arc-full");
    let name = busybox(&lxc, "arc-full", &[]);
    let out = lxc.path().join("tiny");
    fs::create_dir_all(&out).unwrap();
    let mount = run_program(
        "mount",
        [
            OsStr::new("-t"),
            OsStr::new("tmpfs"),
            OsStr::new("-o"),
            OsStr::new("size=256k"),
            OsStr::new("tmpfs"),
            out.as_os_str(),
        ],
    );
    if mount.code != 0 {
        common::skip(format_args!("SKIP: cannot mount a tmpfs: {}", mount.stderr));
        return;
    }
    /// Unmounts the tmpfs, even when the test fails.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = run_program("umount", [self.0.as_os_str()]);
        }
    }
    let _unmount = Unmount(&out);
    let r = lxcform([
        OsStr::new("archive"),
        OsStr::new(&name),
        OsStr::new("-P"),
        lxc.path().as_os_str(),
        OsStr::new("-p"),
        out.as_os_str(),
        OsStr::new("-c"),
        OsStr::new("none"),
    ]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(
        r.stderr.contains("cannot write") && r.stderr.contains("No space left on device"),
        "{r:#?}"
    );
    assert!(!r.stderr.contains("root filesystem"), "{r:#?}");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "a partial archive is left"
    );
}
