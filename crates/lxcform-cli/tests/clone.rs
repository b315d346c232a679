//! Live tests of cloning (issue 4): `lxcform clone` (the module's `state: clone`) and
//! `ensure --clone-name` with other states, driving the built binary.
//!
//! For every store this host has — dir → overlay snapshot, overlay → overlay, btrfs → btrfs
//! snapshot, dir → dir copy, loop → dir copy — a clone is made from a stopped, a running and a
//! frozen origin; `lxc-info` (an observer independent of lxcform) then says the origin is in
//! the state it had and the clone is stopped; the clone starts; files written on either side
//! after the clone stay on that side (except what overlay's design shares, see
//! [`Case::origin_writes_reach_clone`]); a second run changes nothing. Failures — impossible
//! stores, a name taken by a directory, a copy that runs out of space, SIGTERM/SIGINT in the
//! middle of a copy — leave the origin in its state and the lxc_path as it was. Two runs
//! cloning the same origin at once take turns.
//!
//! Containers are busybox without network. Each test owns a [`Lab`]: a temporary lxc_path
//! (on a loopback btrfs image where needed) that destroys clones before their origins — an
//! origin with overlay clones cannot be destroyed — even when the test fails.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    is_root, lines_with_key, run_program, snapshot_tree, unique, BtrfsLxcPath, CommandOut, Diff,
    Entry, Facts, Failure, Run, State, TempLxcPath, BIN, NO_NET,
};
use serde::Deserialize;

/// `ensure`/`clone --json` when a clone is involved: [`common::Outcome`] plus `cloned`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outcome {
    changed: bool,
    steps: Vec<String>,
    facts: Facts,
    #[serde(default)]
    diff: Option<Diff>,
    #[serde(default)]
    command: Option<CommandOut>,
    /// Present exactly when `clone_name` was given: whether this run made the clone.
    #[serde(default)]
    cloned: Option<bool>,
    warnings: Vec<String>,
}

/// The prior states a clone is made from: the `--state` that sets it up, what lxc-info says,
/// and what lxcform reports.
const PRIOR: [(&str, &str, State); 3] = [
    ("stopped", "STOPPED", State::Stopped),
    ("started", "RUNNING", State::Running),
    ("frozen", "FROZEN", State::Frozen),
];

// ---------------------------------------------------------------------------------------------
// The lab

/// A temporary lxc_path whose drop destroys the containers named through it in reverse order
/// (clones before their origins), then lets the harness remove the rest.
struct Lab {
    names: Mutex<Vec<String>>,
    // Dropped after `Lab::drop` destroyed the containers; `btrfs` holds its own lxc_path.
    tmp: Option<TempLxcPath>,
    btrfs: Option<BtrfsLxcPath>,
}

impl Lab {
    /// A lab in /tmp, or `None` (after printing why) when live tests cannot run.
    fn new(test: &str) -> Option<Lab> {
        if !live(test) {
            return None;
        }
        Some(Lab {
            names: Mutex::default(),
            tmp: Some(TempLxcPath::new(test)),
            btrfs: None,
        })
    }

    /// A lab whose lxc_path is on a fresh btrfs filesystem, or `None` (after printing why).
    fn on_btrfs(test: &str) -> Option<Lab> {
        if !live(test) {
            return None;
        }
        match BtrfsLxcPath::new(test) {
            Ok(b) => Some(Lab {
                names: Mutex::default(),
                tmp: None,
                btrfs: Some(b),
            }),
            Err(why) => {
                common::skip(format_args!("SKIP: {test}: no btrfs here: {why}"));
                None
            }
        }
    }

    fn lxc(&self) -> &TempLxcPath {
        match (&self.tmp, &self.btrfs) {
            (Some(t), _) => t,
            (None, Some(b)) => b.lxc(),
            (None, None) => unreachable!("a lab has an lxc_path"),
        }
    }

    fn path(&self) -> &Path {
        self.lxc().path()
    }

    /// A unique container name, remembered for cleanup (in creation order: origins first).
    fn name(&self, role: &str) -> String {
        let n = unique(role);
        self.names.lock().unwrap().push(n.clone());
        n
    }

    /// Makes `name` a busybox container without network in `state`; `store` are extra create
    /// options (`-B ...`).
    #[track_caller]
    fn origin(&self, name: &str, store: &[&str], state: &str) {
        let mut args = vec!["-t", "busybox", "--state", state, NO_NET];
        args.extend(store);
        self.lxc().ensure(name, &args);
    }

    /// `lxcform clone ORIGIN NEW ARGS... -P PATH --json`.
    fn clone_run(&self, origin: &str, new: &str, args: &[&str]) -> Run {
        let mut all: Vec<OsString> = vec!["clone".into(), origin.into(), new.into()];
        all.extend(args.iter().map(OsString::from));
        all.extend(self.lxc().arg());
        all.push("--json".into());
        common::lxcform(all)
    }

    /// `clone_run` that must succeed.
    #[track_caller]
    fn clone(&self, origin: &str, new: &str, args: &[&str]) -> Outcome {
        self.clone_run(origin, new, args).ok().json()
    }

    /// `lxcform ensure NAME ARGS... -P PATH --json` that must succeed.
    #[track_caller]
    fn ensure(&self, name: &str, args: &[&str]) -> Outcome {
        self.lxc().ensure_run(name, args).ok().json()
    }

    /// What lxc-info says: `RUNNING`, `STOPPED`, `FROZEN` or `ABSENT`.
    fn state(&self, name: &str) -> String {
        self.lxc().lxc_state(name)
    }

    /// The init pid lxc-info reports (`None` when not running or absent).
    fn pid(&self, name: &str) -> Option<i64> {
        self.lxc().lxc_info(name).and_then(|(_, pid)| pid)
    }

    /// Drives `name` to `state` (`stopped`, `started`, `frozen`) and checks it with lxc-info.
    #[track_caller]
    fn set_state(&self, name: &str, state: &str) {
        self.ensure(name, &["--state", state]);
        let want = PRIOR.iter().find(|p| p.0 == state).expect("known state").1;
        assert_eq!(self.state(name), want, "{name} after --state {state}");
    }

    /// Runs `script` in `name` through `lxcform ensure --command`, keeping the state it has
    /// (a stopped container is started for it and stopped again); returns stdout.
    #[track_caller]
    fn run_in(&self, name: &str, script: &str) -> String {
        let before = self.state(name);
        let state = PRIOR
            .iter()
            .find(|p| p.1 == before)
            .unwrap_or_else(|| panic!("{name} is {before}"))
            .0;
        let out = self.ensure(name, &["--state", state, "--command", script]);
        let c = out.command.expect("a command ran");
        assert_eq!(c.rc, 0, "{script:?} in {name}: {c:?}");
        assert_eq!(self.state(name), before, "{name} keeps its state");
        c.stdout
    }

    /// The clone's `lxc.rootfs.path` value, from its config file.
    fn rootfs(&self, name: &str) -> String {
        let text = self.lxc().config_text(name);
        let lines = lines_with_key(&text, "lxc.rootfs.path");
        let line = lines
            .last()
            .unwrap_or_else(|| panic!("no rootfs in {text}"));
        line.split_once('=')
            .expect("key = value")
            .1
            .trim()
            .to_string()
    }

    /// Every path of the lxc_path with type, mode, size and content hash — not mtimes, and not
    /// the lock directory, whose lock files runs may add.
    fn tree(&self) -> BTreeMap<PathBuf, Entry> {
        snapshot_tree(self.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with(".lxcform-locks"))
            .map(|(p, e)| (p, Entry { mtime_ns: 0, ..e }))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !is_root() {
            return;
        }
        let path = self.path().as_os_str().to_os_string();
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        for name in names.iter().rev() {
            if self.path().join(name).join("config").is_file() {
                let r = run_program(
                    "lxc-destroy",
                    [
                        OsString::from("-P"),
                        path.clone(),
                        "-n".into(),
                        name.into(),
                        "-f".into(),
                    ],
                );
                if r.code != 0 {
                    eprintln!("cleanup: lxc-destroy {name}: {}", r.stderr.trim());
                }
            }
        }
    }
}

/// Whether live tests can run (root, busybox template, lxc tools); prints why not.
fn live(test: &str) -> bool {
    if !is_root() {
        common::skip(format_args!("SKIP: needs root ({test})"));
        return false;
    }
    !common::skip_live()
}

/// The trees differ only where `ignore` says; panics with the differences.
#[track_caller]
fn assert_same_tree_except(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    ignore: &dyn Fn(&Path) -> bool,
    context: &str,
) {
    let keep = |t: &BTreeMap<PathBuf, Entry>| -> BTreeMap<PathBuf, Entry> {
        t.iter()
            .filter(|(p, _)| !ignore(p))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    };
    common::assert_same_tree(&keep(before), &keep(after), context);
}

/// Loop devices whose backing file is under `dir`.
fn loop_devices_under(dir: &Path) -> Vec<String> {
    let r = run_program("losetup", ["-a"]);
    r.stdout
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Clone from every prior state, per store

/// One store combination.
struct Case<'a> {
    /// Create options of the origin.
    origin_store: &'a [&'a str],
    /// `lxcform clone` options, per prior state (stopped, running, frozen).
    clone_args: [&'a [&'a str]; 3],
    /// What the planned step says about the clone, e.g. `overlay snapshot`.
    method: &'a str,
    /// Prefix of the clone's `lxc.rootfs.path` (`overlay:`, `btrfs:`, `dir:`).
    rootfs_prefix: &'a str,
    /// The store snapshots atomically: a running origin is only frozen for the instant, so it
    /// keeps its init (same pid).
    keeps_init: bool,
    /// Files the origin writes into its rootfs later show in the clone. True for an overlay
    /// snapshot of a dir origin: the origin's rootfs *is* the clone's lower layer (lxc-copy
    /// makes the same thing). An overlay origin writes to its own upper layer instead.
    origin_writes_reach_clone: bool,
}

fn clone_from_every_state(test: &str, case: &Case<'_>) {
    let Some(lab) = Lab::on_or_off_btrfs(test, case) else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, case.origin_store, "stopped");
    let mut clones = Vec::new();
    for ((state, lxc_state, reported), args) in PRIOR.iter().zip(case.clone_args) {
        let c = lab.name(&format!("c-{state}"));
        lab.set_state(&o, state);
        let pid = lab.pid(&o);
        let out = lab.clone(&o, &c, args);
        let ctx = format!("clone {args:?} of a {state} origin: {out:#?}");
        assert!(out.changed, "{ctx}");
        assert_eq!(out.cloned, Some(true), "{ctx}");
        assert_eq!(out.steps.len(), 1, "{ctx}");
        assert!(
            out.steps[0].starts_with(&format!("clone to {c} ({}", case.method)),
            "{ctx}"
        );
        assert_eq!(
            lab.state(&o),
            *lxc_state,
            "origin returned to {state}; {ctx}"
        );
        assert_eq!(out.facts.state, *reported, "{ctx}");
        if case.keeps_init {
            assert_eq!(lab.pid(&o), pid, "only frozen, not restarted; {ctx}");
        }
        assert_eq!(lab.state(&c), "STOPPED", "the clone is left stopped; {ctx}");
        let rootfs = lab.rootfs(&c);
        assert!(
            rootfs.starts_with(case.rootfs_prefix) && rootfs.contains(&format!("/{c}/")),
            "the clone's rootfs {rootfs:?} is {} and its own; {ctx}",
            case.rootfs_prefix
        );

        let pid = lab.pid(&o);
        let again = lab.clone(&o, &c, args);
        assert!(!again.changed, "second run: {again:#?}");
        assert_eq!(again.cloned, Some(false), "second run: {again:#?}");
        assert!(again.steps.is_empty(), "second run: {again:#?}");
        assert_eq!(lab.state(&o), *lxc_state);
        assert_eq!(lab.pid(&o), pid, "second run leaves the origin alone");
        assert_eq!(lab.state(&c), "STOPPED");
        clones.push(c);
    }

    // The origin is frozen now; writes in it (and the clones started for theirs) keep their
    // states.
    for c in &clones {
        let mark = format!("/written-in-{c}");
        let out = lab.run_in(c, &format!("echo clone > {mark} && hostname && ls /"));
        assert!(
            out.starts_with(&format!("{c}\n")),
            "clone boots as {c}: {out}"
        );
        let seen = lab.run_in(&o, &format!("test -e {mark} && echo seen || echo unseen"));
        assert_eq!(seen, "unseen\n", "{mark} of {c} is not in the origin");
        let from_origin = format!("/written-in-origin-for-{c}");
        lab.run_in(&o, &format!("echo origin > {from_origin}"));
        let seen = lab.run_in(
            c,
            &format!("test -e {from_origin} && echo seen || echo unseen"),
        );
        let want = if case.origin_writes_reach_clone {
            "seen\n"
        } else {
            "unseen\n"
        };
        assert_eq!(seen, want, "{from_origin} of the origin in clone {c}");
        assert_eq!(lab.state(c), "STOPPED");
    }
    assert_eq!(lab.state(&o), "FROZEN");
}

impl Lab {
    fn on_or_off_btrfs(test: &str, case: &Case<'_>) -> Option<Lab> {
        if case.origin_store.contains(&"btrfs") {
            Lab::on_btrfs(test)
        } else {
            Lab::new(test)
        }
    }
}

#[test]
fn dir_origin_to_overlay_snapshot_from_every_state() {
    clone_from_every_state(
        "clone-dir-overlay",
        &Case {
            origin_store: &[],
            // -B overlay, -B overlayfs (a snapshot without -s) and -s alone all mean overlay.
            clone_args: [&["-s", "-B", "overlay"], &["-B", "overlayfs"], &["-s"]],
            method: "overlay snapshot",
            rootfs_prefix: "overlay:",
            keeps_init: false,
            origin_writes_reach_clone: true,
        },
    );
}

#[test]
fn overlay_origin_to_overlay_snapshot_from_every_state() {
    clone_from_every_state(
        "clone-overlay-overlay",
        &Case {
            origin_store: &["-B", "overlay"],
            clone_args: [
                &["-s", "-B", "overlay"],
                &["-s", "-B", "overlayfs"],
                &["-s"],
            ],
            method: "overlay snapshot",
            rootfs_prefix: "overlay:",
            keeps_init: false,
            origin_writes_reach_clone: false,
        },
    );
}

#[test]
fn btrfs_origin_to_btrfs_snapshot_from_every_state() {
    clone_from_every_state(
        "clone-btrfs-btrfs",
        &Case {
            origin_store: &["-B", "btrfs"],
            clone_args: [&["-s"], &["-s", "-B", "btrfs"], &["-s"]],
            method: "btrfs snapshot",
            rootfs_prefix: "btrfs:",
            keeps_init: true,
            origin_writes_reach_clone: false,
        },
    );
}

#[test]
fn dir_origin_to_dir_copy_from_every_state() {
    clone_from_every_state(
        "clone-dir-dir",
        &Case {
            origin_store: &[],
            clone_args: [&[], &["-B", "dir"], &[]],
            method: "dir copy",
            rootfs_prefix: "dir:",
            keeps_init: false,
            origin_writes_reach_clone: false,
        },
    );
}

#[test]
fn loop_origin_to_dir_copy_from_every_state() {
    clone_from_every_state(
        "clone-loop-dir",
        &Case {
            origin_store: &["-B", "loop", "--fs-size", "200M"],
            clone_args: [&["-B", "dir"], &["-B", "dir"], &[]],
            method: "dir copy",
            rootfs_prefix: "dir:",
            keeps_init: false,
            origin_writes_reach_clone: false,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The module's two forms

#[test]
fn state_clone_creates_the_origin_keeps_its_state_and_configures_only_the_clone() {
    let Some(lab) = Lab::new("clone-state-clone") else {
        return;
    };
    let o = lab.name("o");
    let c = lab.name("c");
    // The origin does not exist: it is created (and stays stopped); config and command go to
    // the clone, which is left stopped.
    let out = lab.ensure(
        &o,
        &[
            "--state",
            "clone",
            "--clone-name",
            &c,
            "-t",
            "busybox",
            NO_NET,
            "--config-line",
            "lxc.tty.max=1",
            "--command",
            "hostname; echo made > /clone-marker",
        ],
    );
    assert!(out.changed && out.cloned == Some(true), "{out:#?}");
    assert_eq!(out.steps.first().map(String::as_str), Some("create"));
    let cmd = out.command.as_ref().expect("the command ran");
    assert_eq!(
        (cmd.rc, cmd.stdout.as_str()),
        (0, format!("{c}\n").as_str())
    );
    assert_eq!(lab.state(&o), "STOPPED", "the origin keeps its (new) state");
    assert_eq!(lab.state(&c), "STOPPED", "the clone is left stopped");
    let clone_config = lab.lxc().config_text(&c);
    assert_eq!(
        lines_with_key(&clone_config, "lxc.tty.max"),
        ["lxc.tty.max = 1"]
    );
    let origin_config = lab.lxc().config_text(&o);
    assert!(
        !lines_with_key(&origin_config, "lxc.tty.max").contains(&"lxc.tty.max = 1"),
        "config applies to the clone only: {origin_config}"
    );
    assert_eq!(
        lines_with_key(&origin_config, "lxc.net.0.type"),
        ["lxc.net.0.type = veth"],
        "the origin keeps the default network"
    );

    // Again, without the command: nothing to do.
    let again = lab.ensure(
        &o,
        &[
            "--state",
            "clone",
            "--clone-name",
            &c,
            "-t",
            "busybox",
            NO_NET,
            "--config-line",
            "lxc.tty.max=1",
        ],
    );
    assert!(!again.changed, "{again:#?}");
    assert_eq!(again.cloned, Some(false));
    assert_eq!(lab.state(&o), "STOPPED");

    // A running origin is returned to running.
    lab.ensure(&o, &["--state", "started", NO_NET]);
    let c2 = lab.name("c2");
    let out = lab.ensure(
        &o,
        &["--state", "clone", "--clone-name", &c2, "--clone-snapshot"],
    );
    assert!(out.changed && out.cloned == Some(true), "{out:#?}");
    assert_eq!(lab.state(&o), "RUNNING");
    assert_eq!(out.facts.state, State::Running);
    assert_eq!(lab.state(&c2), "STOPPED");
    assert!(lab.rootfs(&c2).starts_with("overlay:"));
    let marker = lab.run_in(&o, "test -e /clone-marker && echo seen || echo unseen");
    assert_eq!(
        marker, "unseen\n",
        "the clone's command ran in the clone only"
    );
}

#[test]
fn clone_name_with_another_state_drives_the_origin_then_clones_once() {
    let Some(lab) = Lab::new("clone-name-states") else {
        return;
    };
    let o = lab.name("o");
    let c = lab.name("c");
    let started = [
        "--state",
        "started",
        "-t",
        "busybox",
        NO_NET,
        "--clone-name",
        &c,
        "--clone-snapshot",
    ];
    let out = lab.ensure(&o, &started);
    assert!(out.changed && out.cloned == Some(true), "{out:#?}");
    assert_eq!(lab.state(&o), "RUNNING", "the origin reaches its state");
    assert_eq!(lab.state(&c), "STOPPED");
    assert!(lab.rootfs(&c).starts_with("overlay:"));

    let pid = lab.pid(&o);
    let again = lab.ensure(&o, &started);
    assert!(!again.changed && again.cloned == Some(false), "{again:#?}");
    assert_eq!(lab.pid(&o), pid);

    // Another state with the same (existing) clone: only the origin changes.
    let frozen = lab.ensure(&o, &["--state", "frozen", "--clone-name", &c]);
    assert!(frozen.changed, "{frozen:#?}");
    assert_eq!(frozen.cloned, Some(false));
    assert_eq!(frozen.steps, ["freeze"]);
    assert_eq!(lab.state(&o), "FROZEN");
    assert_eq!(lab.state(&c), "STOPPED");

    // A new clone with state stopped: the origin is stopped first, then copied.
    let c2 = lab.name("c2");
    let stopped = lab.ensure(&o, &["--state", "stopped", "--clone-name", &c2]);
    assert_eq!(stopped.cloned, Some(true), "{stopped:#?}");
    assert_eq!(stopped.steps.first().map(String::as_str), Some("stop"));
    assert_eq!(lab.state(&o), "STOPPED");
    assert_eq!(lab.state(&c2), "STOPPED");
    assert!(lab.rootfs(&c2).starts_with("dir:"));
    let out = lab.run_in(&c2, "hostname");
    assert_eq!(out, format!("{c2}\n"));
}

/// `lxcform clone -B` names the clone's store; it is no statement about the origin's.
#[test]
fn the_clone_store_is_not_reported_as_an_ignored_origin_store() {
    let Some(lab) = Lab::new("clone-store-warning") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &[], "stopped");
    let c = lab.name("c");
    let out = lab.clone(&o, &c, &["-s", "-B", "overlay", "--check"]);
    assert!(out.changed && out.cloned == Some(true), "{out:#?}");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

// ---------------------------------------------------------------------------------------------
// Failures

/// Expects `run` to fail with a JSON error whose message contains `needle`.
#[track_caller]
fn assert_fails(run: &Run, needle: &str, context: &str) {
    assert_eq!(run.code, 1, "{context}: {run:#?}");
    let f: Failure = run.json();
    assert!(f.failed, "{context}: {f:?}");
    assert!(
        f.msg.contains(needle),
        "{context}: message {:?} does not say {needle:?}",
        f.msg
    );
}

#[test]
fn failed_clones_leave_the_origin_and_the_lxc_path_as_they_were() {
    let Some(lab) = Lab::new("clone-failures") else {
        return;
    };
    let run = lab.name("run");
    let stp = lab.name("stp");
    lab.origin(&run, &[], "started");
    lab.origin(&stp, &[], "stopped");
    // A directory in the clone's place that is not a container, with contents to keep.
    let occ = lab.name("occ");
    let occ_dir = lab.path().join(&occ);
    fs::create_dir_all(occ_dir.join("sub")).unwrap();
    fs::write(occ_dir.join("precious"), "keep me\n").unwrap();
    fs::set_permissions(occ_dir.join("precious"), fs::Permissions::from_mode(0o600)).unwrap();
    let x = lab.name("x");
    let pid = lab.pid(&run).expect("running");
    let before = lab.tree();
    let untouched = |context: &str| {
        assert_eq!(lab.state(&run), "RUNNING", "{context}");
        assert_eq!(
            lab.pid(&run),
            Some(pid),
            "{context}: the origin was not restarted"
        );
        assert_eq!(lab.state(&stp), "STOPPED", "{context}");
        assert!(
            !lab.path().join(&x).exists(),
            "{context}: no clone directory"
        );
        common::assert_same_tree(&before, &lab.tree(), context);
    };

    let refused: [(&[&str], &str, &str); 5] = [
        (&["-B", "zfs"], "zfs", "a store this host lacks (zfs)"),
        (&["-B", "lvm"], "lvm", "a store this host lacks (lvm)"),
        (
            &["-B", "btrfs"],
            "cannot copy a dir container onto btrfs",
            "a btrfs copy of a dir origin (liblxc's is broken)",
        ),
        (
            &["-s", "-B", "btrfs"],
            "not on btrfs",
            "a btrfs snapshot of a dir origin",
        ),
        (&["-s", "-B", "loop"], "not on loop", "a loop snapshot"),
    ];
    for (args, needle, what) in refused {
        for origin in [&run, &stp] {
            let r = lab.clone_run(origin, &x, args);
            assert_fails(&r, needle, what);
            untouched(what);
        }
    }
    for args in [&[][..], &["-s", "-B", "overlay"]] {
        let r = lab.clone_run(&run, &occ, args);
        assert_fails(&r, "not a container", "clone onto a plain directory");
        untouched("clone onto a plain directory");
    }
    let r = lab
        .lxc()
        .ensure_run(&run, &["--state", "started", "--clone-name", &occ]);
    assert_fails(
        &r,
        "not a container",
        "ensure --clone-name onto a plain directory",
    );
    untouched("ensure --clone-name onto a plain directory");
    let r = lab.lxc().ensure_run(
        &run,
        &["--state", "started", "--clone-name", &x, "-B", "zfs"],
    );
    assert_fails(&r, "zfs", "ensure --clone-name on zfs");
    untouched("ensure --clone-name on zfs");
    let missing = lab.name("missing");
    let r = lab.clone_run(&missing, &x, &[]);
    assert_eq!(r.code, 1, "{r:#?}");
    untouched("clone of a missing origin");
    assert!(!lab.path().join(&missing).exists());
    let check = lab.clone(&run, &x, &["--check"]);
    assert!(check.changed && check.cloned == Some(true), "{check:#?}");
    untouched("check mode");

    // A copy that fails inside liblxc, after it made the clone's directory and loop image: a
    // 1 MiB filesystem cannot hold the rootfs.
    let r = lab.clone_run(&stp, &x, &["-B", "loop", "--fs-size", "1M"]);
    assert_fails(&r, "cannot clone", "a loop clone too small for the rootfs");
    untouched("a loop clone too small for the rootfs (stopped origin)");
    assert!(
        loop_devices_under(lab.path()).is_empty(),
        "loop devices left"
    );
    // The same from the running origin, which is stopped for the copy and started again: its
    // rootfs sees a boot (syslog), the rest of the lxc_path must be as it was.
    let r = lab.clone_run(&run, &x, &["-B", "loop", "--fs-size", "1M"]);
    assert_fails(
        &r,
        "cannot clone",
        "a loop clone too small (running origin)",
    );
    assert_eq!(lab.state(&run), "RUNNING", "origin returned to running");
    assert!(!lab.path().join(&x).exists(), "no clone directory");
    let rootfs = PathBuf::from(&run).join("rootfs");
    assert_same_tree_except(
        &before,
        &lab.tree(),
        &|p| p.starts_with(&rootfs),
        "a loop clone too small (running origin)",
    );
    assert!(
        loop_devices_under(lab.path()).is_empty(),
        "loop devices left"
    );
    assert_eq!(
        fs::read_to_string(occ_dir.join("precious")).unwrap(),
        "keep me\n"
    );
}

/// A loop origin cannot be snapshotted: refused by the planner, before the origin is touched.
#[test]
fn a_snapshot_of_a_loop_origin_is_refused_before_anything_changes() {
    let Some(lab) = Lab::new("clone-loop-snapshot") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &["-B", "loop", "--fs-size", "200M"], "stopped");
    let x = lab.name("x");
    let before = lab.tree();
    for args in [&["-s"][..], &["-s", "-B", "overlay"], &["-B", "overlayfs"]] {
        let r = lab.clone_run(&o, &x, args);
        assert_fails(
            &r,
            "cannot be snapshotted",
            &format!("{args:?} of a stopped loop origin"),
        );
        common::assert_same_tree(&before, &lab.tree(), "refused loop snapshot");
    }
    lab.set_state(&o, "started");
    let pid = lab.pid(&o);
    let r = lab.clone_run(&o, &x, &["-s"]);
    assert_fails(
        &r,
        "cannot be snapshotted",
        "snapshot of a running loop origin",
    );
    assert_eq!(lab.state(&o), "RUNNING");
    assert_eq!(
        lab.pid(&o),
        pid,
        "the origin was not stopped for a refused clone"
    );
    assert!(!lab.path().join(&x).exists());
}

// ---------------------------------------------------------------------------------------------
// Signals and concurrency

/// Whether a process named `comm` runs below `root` in the process tree.
fn has_descendant(root: u32, comm: &str) -> bool {
    let mut parent = HashMap::new();
    let mut named = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
        if &stat[open + 1..close] == comm {
            named.push(pid);
        }
    }
    named.into_iter().any(|mut p| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == root => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    })
}

/// How many rsync processes have an argument under `dir`.
fn rsyncs_into(dir: &Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c == "rsync\n"))
                .filter(|e| {
                    fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_signal_during_a_full_copy_restores_the_origin_and_leaves_no_half_made_clone() {
    let Some(lab) = Lab::new("clone-signal") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &[], "started");
    // A larger rootfs, so that the copy (rsync, run by liblxc) takes a while.
    lab.run_in(
        &o,
        "dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null && sync",
    );
    for (sig, signo) in [("TERM", 15), ("INT", 2)] {
        let c = lab.name(&format!("c-{sig}"));
        let mut child = Command::new(BIN)
            .args(["clone", &o, &c, "--json", "-P"])
            .arg(lab.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lxcform");
        let start = Instant::now();
        let mut during_copy = false;
        while start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if has_descendant(child.id(), "rsync") {
                during_copy = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let sent = run_program("kill", [format!("-{sig}"), child.id().to_string()]);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let state = lab.state(&o);
        let clone_dir = lab.path().join(&c);
        println!(
            "SIG{sig} {} the copy: lxcform {:?} (signal {:?}); origin {state}; clone dir {}",
            if during_copy { "during" } else { "not during" },
            out.status.code(),
            out.status.signal(),
            if clone_dir.exists() {
                "present"
            } else {
                "absent"
            },
        );
        assert_eq!(
            state, "RUNNING",
            "SIG{sig}: origin restored; stderr: {stderr}"
        );
        if during_copy {
            assert_eq!(sent.code, 0, "kill: {sent:?}");
            // The clone was finished by liblxc but the run was told to stop: it is undone,
            // then the process ends of the signal it was sent.
            assert_eq!(out.status.signal(), Some(signo), "stderr: {stderr}");
            assert!(!clone_dir.exists(), "SIG{sig}: a half-made clone is left");
            assert_eq!(lab.state(&c), "ABSENT");
        } else if clone_dir.exists() {
            // The run had finished before the signal: the clone must be complete.
            assert!(out.status.success(), "stderr: {stderr}");
            assert_eq!(lab.state(&c), "STOPPED");
            assert_eq!(lab.run_in(&c, "hostname"), format!("{c}\n"));
        }
        assert_eq!(rsyncs_into(lab.path()), 0, "an rsync is left running");
    }
    assert_eq!(lab.lxc().lxc_ls(), [o.as_str()], "only the origin is left");
    let size = lab.run_in(&o, "wc -c < /big");
    assert_eq!(size.trim(), "209715200", "the origin's files are intact");
}

#[test]
fn two_runs_cloning_one_origin_at_once_take_turns() {
    let Some(lab) = Lab::new("clone-concurrent") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &[], "started");
    let c = lab.name("c");
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| lab.clone_run(&o, &c, &["-s", "-B", "overlay"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let outcomes: Vec<Outcome> = runs.into_iter().map(|r| r.ok().json()).collect();
    let made: Vec<bool> = outcomes.iter().map(|o| o.cloned == Some(true)).collect();
    assert_eq!(
        made.iter().filter(|m| **m).count(),
        1,
        "exactly one run made the clone: {outcomes:#?}"
    );
    for out in &outcomes {
        assert_eq!(out.changed, out.cloned == Some(true), "{out:#?}");
    }
    assert_eq!(lab.state(&o), "RUNNING");
    assert_eq!(lab.state(&c), "STOPPED");
    assert_eq!(lab.run_in(&c, "hostname"), format!("{c}\n"));
}

/// A run killed outright (SIGKILL) in the middle of a copy cannot clean up. The next run
/// finds what it left — the origin stopped for the copy, a half-made clone, both marked in the
/// lock directory — waits while the killed run's rsync still writes (reporting the clone as
/// being made), then starts the origin back and makes the clone anew, whole.
#[test]
fn a_run_killed_during_a_copy_is_recovered_by_the_next_one() {
    let Some(lab) = Lab::new("clone-kill") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &[], "started");
    lab.run_in(
        &o,
        "dd if=/dev/urandom of=/big bs=1M count=200 2>/dev/null && sync",
    );
    let c = lab.name("c");
    let args = |extra: &[&str]| {
        let mut a: Vec<OsString> = vec!["ensure".into(), o.clone().into(), "-P".into()];
        a.push(lab.path().into());
        a.extend(["--clone-name", &c, NO_NET, "--json"].map(OsString::from));
        a.extend(extra.iter().map(OsString::from));
        a
    };
    let mut child = Command::new(BIN)
        .args(args(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lxcform");
    let start = Instant::now();
    while !has_descendant(child.id(), "rsync") {
        assert!(start.elapsed() < Duration::from_secs(60), "no copy began");
        assert!(child.try_wait().unwrap().is_none(), "ended before the copy");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        lab.state(&o),
        "STOPPED",
        "stopped for the copy, and left so"
    );

    // While the killed run's rsync still writes into the clone, it is being made.
    let again = run_program(BIN, args(&[]));
    if rsyncs_into(&lab.path().join(&c)) > 0 {
        assert_eq!(again.code, 1, "{again:#?}");
        assert!(
            again.stdout.contains("is being created by another process"),
            "{again:#?}"
        );
    }
    let t0 = Instant::now();
    while rsyncs_into(&lab.path().join(&c)) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the orphaned rsync runs on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out: Outcome = run_program(BIN, args(&[])).ok().json();
    if again.code != 0 {
        assert_eq!(
            out.steps.first().map(String::as_str),
            Some("recover from a killed run (back to running)"),
            "{out:?}"
        );
        assert_eq!(out.cloned, Some(true), "{out:?}");
    }
    assert_eq!(lab.state(&o), "RUNNING", "the origin is back in its state");
    assert_eq!(lab.state(&c), "STOPPED");
    assert_eq!(
        lab.run_in(&c, "wc -c < /big").trim(),
        "209715200",
        "the clone is whole"
    );
    assert!(
        !lab.path()
            .join(".lxcform-locks")
            .join(format!("{c}.unfinished"))
            .exists()
            && !lab
                .path()
                .join(".lxcform-locks")
                .join(format!("{o}.quiesced"))
                .exists(),
        "the marks are gone"
    );
    let last: Outcome = run_program(BIN, args(&[])).ok().json();
    assert!(!last.changed, "{last:?}");
}

/// liblxc clones a btrfs container only as a subvolume snapshot beside it, whatever is asked:
/// a plain clone is that snapshot (said so in the steps), and a clone onto another store is
/// refused before anything changes rather than failing in liblxc.
#[test]
fn a_btrfs_origin_is_cloned_as_a_btrfs_snapshot_and_onto_nothing_else() {
    let Some(lab) = Lab::on_btrfs("clone-btrfs-only") else {
        return;
    };
    let o = lab.name("o");
    lab.origin(&o, &["-B", "btrfs"], "stopped");
    let x = lab.name("x");
    let before = lab.tree();
    for args in [
        &["-B", "dir"][..],
        &["-B", "overlay"],
        &["-s", "-B", "overlay"],
        &["-B", "loop"],
    ] {
        let r = lab.clone_run(&o, &x, args);
        assert_fails(&r, "only as a btrfs snapshot", &format!("{args:?}"));
        assert!(!lab.path().join(&x).exists(), "{args:?}");
        common::assert_same_tree(&before, &lab.tree(), &format!("{args:?}"));
    }
    let out = lab.clone(&o, &x, &[]);
    assert_eq!(
        out.steps,
        [format!("clone to {x} (btrfs snapshot)")],
        "{out:?}"
    );
    let rootfs = lab.rootfs(&x);
    assert!(rootfs.starts_with("btrfs:"), "{rootfs}");
}
