//! Live tests: real busybox containers in a temporary lxc_path, driven through the `lxcform`
//! binary and checked with `lxc-info`/`lxc-ls` (observers independent of lxcform) and with
//! `lxcform facts --json`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use common::{
    assert_same_tree, lines_with_key, lxcform, skip_live, snapshot_tree, snapshot_tree_except,
    unique, Failure, State, TempLxcPath, NO_NET,
};

/// The states a container can be in before a run.
const CURRENT: [State; 4] = [State::Absent, State::Stopped, State::Running, State::Frozen];

/// `lxc-info`'s name for a state.
fn lxc_name(s: State) -> &'static str {
    match s {
        State::Running => "RUNNING",
        State::Stopped => "STOPPED",
        State::Frozen => "FROZEN",
        State::Absent => "ABSENT",
    }
}

/// The `--state` that reaches a current state.
fn state_arg(s: State) -> &'static str {
    match s {
        State::Running => "started",
        State::Stopped => "stopped",
        State::Frozen => "frozen",
        State::Absent => "absent",
    }
}

/// Brings `name` into state `s` and checks that it got there.
fn set_up(lxc: &TempLxcPath, name: &str, s: State) {
    lxc.ensure(name, &["-t", "busybox", NO_NET, "--state", state_arg(s)]);
    assert_eq!(lxc.lxc_state(name), lxc_name(s), "setting up {name} {s:?}");
}

/// The pid lxc-info reports for `name` (None when it does not run).
fn lxc_pid(lxc: &TempLxcPath, name: &str) -> Option<i64> {
    lxc.lxc_info(name).and_then(|(_, pid)| pid)
}

/// Checks that lxc-info, `lxcform facts` and the outcome's facts all say `want`.
#[track_caller]
fn assert_state(lxc: &TempLxcPath, name: &str, want: State, outcome_facts: &common::Facts) {
    assert_eq!(lxc.lxc_state(name), lxc_name(want), "lxc-info of {name}");
    let facts = lxc.facts(name);
    assert_eq!(facts.name, name);
    assert_eq!(facts.state, want, "lxcform facts of {name}");
    assert_eq!(outcome_facts.state, want, "outcome facts of {name}");
    match want {
        State::Running | State::Frozen => {
            let pid = lxc_pid(lxc, name).expect("a running container has a pid");
            assert_eq!(facts.init_pid, pid, "facts init_pid is lxc-info's PID");
            assert_eq!(outcome_facts.init_pid, pid);
            assert!(facts.interfaces.contains(&"lo".to_string()), "{facts:?}");
        }
        State::Stopped | State::Absent => {
            assert_eq!(facts.init_pid, -1);
            assert_eq!(outcome_facts.init_pid, -1);
            assert!(facts.interfaces.is_empty() && facts.ips.is_empty());
        }
    }
    if want == State::Absent {
        let lock = lxc
            .path()
            .join(".lxcform-locks")
            .join(format!("{name}.lock"));
        assert!(
            !lock.exists(),
            "{} is left after the destroy",
            lock.display()
        );
    }
}

/// Runs every current state into `desired` and checks the steps, the resulting state, and
/// what a second identical run does.
fn transitions_to(desired: &str, want: State, steps: [&[&str]; 4]) {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new(desired);
    for (cur, expected_steps) in CURRENT.into_iter().zip(steps) {
        let name = unique(&format!("to-{desired}"));
        set_up(&lxc, &name, cur);
        let pid_before = lxc_pid(&lxc, &name);
        let args = ["-t", "busybox", NO_NET, "--state", desired];
        let first = lxc.ensure(&name, &args);
        assert_eq!(first.steps, expected_steps, "{cur:?} -> {desired}");
        assert_eq!(
            first.changed,
            !expected_steps.is_empty(),
            "{cur:?} -> {desired}"
        );
        assert_state(&lxc, &name, want, &first.facts);
        if desired == "restarted" {
            let pid = lxc_pid(&lxc, &name);
            assert!(
                pid.is_some() && pid != pid_before,
                "{cur:?} -> restarted: init_pid {pid_before:?} -> {pid:?}"
            );
        }

        let pid_first = lxc_pid(&lxc, &name);
        let second = lxc.ensure(&name, &args);
        if desired == "restarted" {
            // restarted restarts every time; that is what it is for.
            assert_eq!(second.steps, ["stop", "start"], "{cur:?}: second restarted");
            let pid = lxc_pid(&lxc, &name);
            assert!(
                pid.is_some() && pid != pid_first,
                "second restart: {pid_first:?} -> {pid:?}"
            );
        } else {
            assert!(
                !second.changed,
                "{cur:?} -> {desired}: second run {second:?}"
            );
            assert!(second.steps.is_empty());
            assert_eq!(lxc_pid(&lxc, &name), pid_first, "a no-op run keeps init");
        }
        assert_state(&lxc, &name, want, &second.facts);
        if want == State::Absent {
            assert!(!lxc.lxc_ls().contains(&name));
            assert!(
                !lxc.path().join(&name).exists(),
                "the container's directory is gone"
            );
        }
        lxc.ensure(&name, &["--state", "absent"]);
    }
}

const CREATE: &str = "create";
const WRITE1: &str = "write config (1 change)";

#[test]
fn every_state_reaches_started() {
    transitions_to(
        "started",
        State::Running,
        [&[CREATE, WRITE1, "start"], &["start"], &[], &["unfreeze"]],
    );
}

#[test]
fn every_state_reaches_stopped() {
    transitions_to(
        "stopped",
        State::Stopped,
        [&[CREATE, WRITE1], &[], &["stop"], &["stop"]],
    );
}

#[test]
fn restarted_boots_a_new_init_from_every_state() {
    transitions_to(
        "restarted",
        State::Running,
        [
            &[CREATE, WRITE1, "start"],
            &["start"],
            &["stop", "start"],
            &["stop", "start"],
        ],
    );
}

#[test]
fn every_state_reaches_frozen() {
    transitions_to(
        "frozen",
        State::Frozen,
        [
            &[CREATE, WRITE1, "start", "freeze"],
            &["start", "freeze"],
            &["freeze"],
            &[],
        ],
    );
}

#[test]
fn every_state_reaches_absent() {
    transitions_to(
        "absent",
        State::Absent,
        [
            &[],
            &["destroy"],
            &["stop", "destroy"],
            &["stop", "destroy"],
        ],
    );
}

#[test]
fn single_valued_key_is_replaced_in_place_and_duplicates_are_collapsed() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-in-place");
    let name = unique("cfg-in-place");
    lxc.stopped_container(&name);
    let original = lxc.config_text(&name);
    assert_eq!(
        lines_with_key(&original, "lxc.tty.max"),
        ["lxc.tty.max = 5"],
        "the template's line"
    );

    let o = lxc.ensure(
        &name,
        &[
            "--state",
            "stopped",
            NO_NET,
            "--config-line",
            "lxc.tty.max=2",
        ],
    );
    assert_eq!(o.steps, [WRITE1]);
    let replaced = lxc.config_text(&name);
    assert_eq!(
        replaced,
        original.replace("lxc.tty.max = 5", "lxc.tty.max = 2"),
        "only that line changed, in its place"
    );

    let again = lxc.ensure(
        &name,
        &[
            "--state",
            "stopped",
            NO_NET,
            "--config-line",
            "lxc.tty.max=2",
        ],
    );
    assert!(!again.changed, "{again:?}");
    assert_eq!(
        lxc.config_text(&name),
        replaced,
        "a second run leaves the file alone"
    );

    // A hand-added duplicate (which LXC would let override the first) is removed.
    fs::write(
        lxc.config_file(&name),
        format!("{replaced}lxc.tty.max = 7\n"),
    )
    .unwrap();
    let o = lxc.ensure(
        &name,
        &[
            "--state",
            "stopped",
            NO_NET,
            "--config-line",
            "lxc.tty.max=2",
        ],
    );
    assert!(o.changed);
    assert_eq!(lxc.config_text(&name), replaced);
    assert_eq!(lxc.lxc_state(&name), "STOPPED");
}

#[test]
fn ipv4_address_and_gateway_keys_never_match_each_other() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-exact-key");
    let name = unique("cfg-exact-key");
    lxc.stopped_container(&name);
    let gw = "--config-line=lxc.net.0.ipv4.gateway=10.0.3.1";
    let addr = "--config-line=lxc.net.0.ipv4.address=10.0.3.77/24";
    lxc.ensure(&name, &["--state", "stopped", NO_NET, gw]);
    let o = lxc.ensure(&name, &["--state", "stopped", NO_NET, addr]);
    assert_eq!(o.steps, [WRITE1]);
    let text = lxc.config_text(&name);
    assert_eq!(
        lines_with_key(&text, "lxc.net.0.ipv4.gateway"),
        ["lxc.net.0.ipv4.gateway = 10.0.3.1"]
    );
    assert_eq!(
        lines_with_key(&text, "lxc.net.0.ipv4.address"),
        ["lxc.net.0.ipv4.address = 10.0.3.77/24"]
    );
    for arg in [gw, addr] {
        let o = lxc.ensure(&name, &["--state", "stopped", NO_NET, arg]);
        assert!(!o.changed, "{arg}: {o:?}");
    }
    assert_eq!(lxc.config_text(&name), text);
}

#[test]
fn facts_report_the_addresses_of_a_running_container() {
    if skip_live() {
        return;
    }
    if !Path::new("/sys/class/net/lxcbr0").exists() {
        common::skip(format_args!("SKIP: bridge lxcbr0 does not exist"));
        return;
    }
    let lxc = TempLxcPath::new("facts-ip");
    let name = unique("facts-ip");
    let ip = format!("10.0.3.{}", 100 + std::process::id() % 100);
    let ip6 = format!("fd42::{:x}", 100 + std::process::id() % 100);
    let o = lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            "--config-line=lxc.net.0.type=veth",
            "--config-line=lxc.net.0.link=lxcbr0",
            // Not busybox's init: its rcS runs udhcpc, which deconfigures eth0 (racing facts).
            "--config-line=lxc.init.cmd=/bin/sleep 3600",
            &format!("--config-line=lxc.net.0.ipv4.address={ip}/24"),
            &format!("--config-line=lxc.net.0.ipv6.address={ip6}/64"),
        ],
    );
    assert_eq!(o.facts.state, State::Running);
    assert!(o.facts.ips.contains(&ip), "{o:?}");
    assert!(o.facts.ips.contains(&ip6), "{o:?}");
    // As liblxc's get_ips: not lo's, and no link-local IPv6 (non-zero scope).
    assert!(
        !o.facts
            .ips
            .iter()
            .any(|a| a == "127.0.0.1" || a == "::1" || a.starts_with("fe80:")),
        "{o:?}"
    );
    assert!(o.facts.interfaces.contains(&"eth0".to_string()), "{o:?}");
    assert_eq!(lxc.facts(&name).ips, o.facts.ips);
}

#[test]
fn config_is_written_before_the_first_start() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-before-start");
    let name = unique("cfg-before-start");
    let o = lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "--config-line=lxc.environment=LXCFORM_MARK=first-boot",
            "--command",
            "cat /proc/1/environ",
        ],
    );
    assert_eq!(
        o.steps,
        [CREATE, "write config (2 changes)", "start", "run command"]
    );
    let cmd = o.command.expect("command result");
    assert!(
        cmd.stdout
            .split('\0')
            .any(|v| v == "LXCFORM_MARK=first-boot"),
        "init booted with the config: {cmd:?}"
    );
    assert!(lines_with_key(&lxc.config_text(&name), "lxc.environment")
        .contains(&"lxc.environment = LXCFORM_MARK=first-boot"));
}

#[test]
fn running_container_restarts_only_when_its_config_changes() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-restart");
    let name = unique("cfg-restart");
    let cfg = "--config-line=lxc.tty.max=2";
    lxc.ensure(&name, &["-t", "busybox", NO_NET, cfg]);
    let pid = lxc_pid(&lxc, &name).expect("running");
    let text = lxc.config_text(&name);

    let same = lxc.ensure(&name, &[NO_NET, cfg]);
    assert!(!same.changed, "{same:?}");
    assert_eq!(
        lxc_pid(&lxc, &name),
        Some(pid),
        "unchanged config: init_pid stays"
    );
    assert_eq!(lxc.config_text(&name), text);

    let changed = lxc.ensure(&name, &[NO_NET, "--config-line=lxc.tty.max=3"]);
    assert_eq!(changed.steps, ["stop", WRITE1, "start"]);
    let new_pid = lxc_pid(&lxc, &name).expect("running again");
    assert_ne!(new_pid, pid, "changed config: restarted");
    assert_eq!(changed.facts.init_pid, new_pid);
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
}

#[test]
fn command_rc_stdout_and_stderr_are_reported() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-ok");
    let name = unique("cmd-ok");
    let o = lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "--command",
            "echo out; echo err >&2; test -x /bin/sh",
        ],
    );
    let c = o.command.expect("command result");
    assert_eq!(
        (c.rc, c.stdout.as_str(), c.stderr.as_str()),
        (0, "out\n", "err\n")
    );
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
    assert!(o.changed, "a command run is a change");

    // The text output shows the same.
    let mut args: Vec<std::ffi::OsString> = vec!["ensure".into(), name.clone().into()];
    args.extend(lxc.arg());
    args.extend(["--command".into(), "echo hello-text".into()]);
    let r = lxcform(args).ok();
    assert!(r.stdout.contains("command exited with 0"), "{r:?}");
    assert!(r.stdout.contains("stdout: hello-text"), "{r:?}");
}

#[test]
fn failing_command_exits_1_with_its_output_and_the_container_ends_stopped() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-fail");
    let name = unique("cmd-fail");
    let script = "echo out; echo err >&2; exit 3";
    let r = lxc.ensure_run(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "--state",
            "stopped",
            "--command",
            script,
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let f: Failure = r.json();
    assert!(f.failed);
    assert!(f.msg.contains(&name) && f.msg.contains('3'), "{f:?}");
    let c = f.command.expect("the failed command's output is reported");
    assert_eq!(
        (c.rc, c.stdout.as_str(), c.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert_eq!(
        lxc.lxc_state(&name),
        "STOPPED",
        "the declared state is still reached"
    );

    // Without --json: the error on stderr, the output reported.
    let mut args: Vec<std::ffi::OsString> = vec!["ensure".into(), name.clone().into()];
    args.extend(lxc.arg());
    args.extend([
        "--state".into(),
        "stopped".into(),
        "--command".into(),
        script.into(),
    ]);
    let r = lxcform(args);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("exited with status 3"), "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("out") && all.contains("err"), "{r:?}");
    assert_eq!(lxc.lxc_state(&name), "STOPPED");
}

#[test]
fn a_failed_start_quotes_liblxc_once_and_keeps_stderr_clean() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("start-fail");
    let name = unique("start-fail");
    let bad_mount = "--config-line=lxc.mount.entry=/nonexistent-lxcform-src mnt none bind 0 0";
    let r = lxc.ensure_run(&name, &["-t", "busybox", NO_NET, bad_mount]);
    assert_eq!(r.code, 1, "{r:?}");
    let f: Failure = r.json();
    assert!(f.failed && f.msg.contains(&name), "{f:?}");
    assert!(
        f.log.iter().any(|l| l.contains("nonexistent-lxcform-src")),
        "liblxc's reason is in the log: {f:?}"
    );
    // liblxc would also echo its ERROR lines to stderr ("lxcform: NAME: file.c: func: line").
    assert_eq!(r.stderr, "", "with --json everything is in the JSON");

    let mut args: Vec<std::ffi::OsString> = vec!["ensure".into(), name.clone().into()];
    args.extend(lxc.arg());
    args.push(bad_mount.into());
    let r = lxcform(args);
    assert_eq!(r.code, 1, "{r:?}");
    let echoed = format!("lxcform: {name}: ");
    assert!(!r.stderr.contains(&echoed), "liblxc's own echo: {r:?}");
    assert!(r.stderr.contains("nonexistent-lxcform-src"), "{r:?}");
}

#[test]
fn check_mode_changes_nothing_yet_reports_the_change() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("check");
    let name = unique("check");

    // Absent: nothing is created, not even a lock file.
    let before = snapshot_tree(lxc.path());
    let o = lxc.ensure(
        &name,
        &["-t", "busybox", NO_NET, "--check", "--command", "touch /x"],
    );
    assert!(o.changed);
    assert_eq!(o.steps, [CREATE, WRITE1, "start", "run command"]);
    assert_eq!(o.facts.state, State::Absent);
    assert!(o.command.is_none(), "no command runs in check mode");
    assert!(lxc.lxc_ls().is_empty(), "lxc-ls shows nothing new");
    assert_same_tree(
        &before,
        &snapshot_tree(lxc.path()),
        "check mode on an absent container",
    );

    // Running: neither stopped, nor reconfigured, nor destroyed.
    lxc.ensure(&name, &["-t", "busybox", NO_NET]);
    let pid = lxc_pid(&lxc, &name);
    // The running container's own rootfs is its business (its syslogd writes there).
    let rootfs = Path::new(&name).join("rootfs");
    let outside_rootfs = |p: &Path| p == rootfs;
    let before = snapshot_tree_except(lxc.path(), outside_rootfs);
    for (args, steps) in [
        (vec!["--state", "stopped"], vec!["stop"]),
        (vec!["--state", "frozen"], vec!["freeze"]),
        (vec!["--state", "restarted"], vec!["stop", "start"]),
        (
            vec!["--config-line=lxc.tty.max=1"],
            vec!["stop", WRITE1, "start"],
        ),
        (vec!["--state", "absent"], vec!["stop", "destroy"]),
    ] {
        let mut args = args.clone();
        args.extend([NO_NET, "--check"]);
        let o = lxc.ensure(&name, &args);
        assert!(o.changed, "{args:?}");
        assert_eq!(o.steps, steps, "{args:?}");
        assert_eq!(o.facts.state, State::Running, "{args:?}: facts as they are");
        assert_eq!(lxc.lxc_state(&name), "RUNNING", "{args:?}");
        assert_eq!(lxc_pid(&lxc, &name), pid, "{args:?}");
    }
    assert_same_tree(
        &before,
        &snapshot_tree_except(lxc.path(), outside_rootfs),
        "check mode on a running container",
    );
    assert_eq!(lxc.lxc_ls(), std::slice::from_ref(&name));
}

#[test]
fn diff_shows_state_and_config_before_and_after() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("diff");
    let name = unique("diff");
    lxc.stopped_container(&name);

    let o = lxc.ensure(
        &name,
        &[NO_NET, "--config-line=lxc.tty.max=3", "--diff", "--check"],
    );
    let d = o.diff.expect("diff with --diff");
    assert_eq!(
        (d.before.state, d.after.state),
        (State::Stopped, State::Running)
    );
    assert!(d.before.config.contains("lxc.tty.max = 5\n"), "{d:?}");
    assert!(d.after.config.contains("lxc.tty.max = 3\n"), "{d:?}");
    assert!(!d.after.config.contains("lxc.tty.max = 5"), "{d:?}");
    assert_eq!(
        lxc.lxc_state(&name),
        "STOPPED",
        "--check --diff changed nothing"
    );

    // Text form, for real this time.
    let mut args: Vec<std::ffi::OsString> = vec!["ensure".into(), name.clone().into()];
    args.extend(lxc.arg());
    args.extend([
        NO_NET.into(),
        "--config-line=lxc.tty.max=3".into(),
        "--diff".into(),
    ]);
    let r = lxcform(args).ok();
    for line in [
        "- state = stopped",
        "+ state = running",
        "- lxc.tty.max = 5",
        "+ lxc.tty.max = 3",
    ] {
        assert!(
            r.stdout.lines().any(|l| l == line),
            "missing {line:?} in {r:?}"
        );
    }
    assert_eq!(lxc.lxc_state(&name), "RUNNING");

    // No --diff, no diff.
    let o = lxc.ensure(&name, &[NO_NET]);
    assert!(o.diff.is_none());
}

#[test]
fn concurrent_ensures_of_one_container_take_turns() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("concurrent");
    // Several rounds: a run that looks while another is half-way through create (directory
    // there, config not yet) must wait for it, not fail; the window is narrow.
    let mut names = Vec::new();
    for _ in 0..3 {
        let name = unique("concurrent");
        let runs: Vec<common::Run> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..5)
                .map(|_| s.spawn(|| lxc.ensure_run(&name, &["-t", "busybox", NO_NET])))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("runner thread"))
                .collect()
        });
        let outcomes: Vec<common::Outcome> = runs.iter().map(|r| r.clone().ok().json()).collect();
        let creators = outcomes
            .iter()
            .filter(|o| o.steps.iter().any(|s| s == CREATE))
            .count();
        assert_eq!(creators, 1, "exactly one run creates: {outcomes:#?}");
        for o in &outcomes {
            if !o.steps.iter().any(|s| s == CREATE) {
                assert!(!o.changed, "the others find it done: {o:?}");
            }
            assert_eq!(o.facts.state, State::Running);
        }
        assert_eq!(lxc.lxc_state(&name), "RUNNING");
        names.push(name);
    }
    let mut listed = lxc.lxc_ls();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);
}

#[test]
fn facts_and_list_report_absent_and_existing_containers() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("facts-list");
    let gone = unique("facts-gone");
    let f = lxc.facts(&gone);
    assert_eq!((f.state, f.init_pid), (State::Absent, -1));
    assert!(lxc.lxc_ls().is_empty(), "facts creates nothing");

    let a = unique("facts-a");
    let b = unique("facts-b");
    lxc.stopped_container(&a);
    lxc.ensure(&b, &["-t", "busybox", NO_NET, "--state", "frozen"]);
    let mut args: Vec<std::ffi::OsString> = vec!["list".into()];
    args.extend(lxc.arg());
    args.push("--json".into());
    let mut all: Vec<common::Facts> = lxcform(args).ok().json();
    all.sort_by(|x, y| x.name.cmp(&y.name));
    let mut want = vec![(a.clone(), State::Stopped), (b.clone(), State::Frozen)];
    want.sort();
    assert_eq!(
        all.iter()
            .map(|f| (f.name.clone(), f.state))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(lxc.facts(&b).init_pid, lxc_pid(&lxc, &b).unwrap());
}

#[test]
fn command_in_a_frozen_container_runs_and_leaves_it_frozen() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-frozen");
    let name = unique("cmd-frozen");
    lxc.ensure(&name, &["-t", "busybox", NO_NET, "--state", "frozen"]);
    let pid = lxc_pid(&lxc, &name);
    let o = lxc.ensure(
        &name,
        &[NO_NET, "--state", "frozen", "--command", "echo thawed"],
    );
    assert_eq!(o.steps, ["unfreeze", "run command", "freeze"]);
    assert_eq!(o.command.expect("command result").stdout, "thawed\n");
    assert_eq!(lxc.lxc_state(&name), "FROZEN");
    assert_eq!(lxc_pid(&lxc, &name), pid, "thawed, not restarted");
}

#[test]
fn command_killed_by_a_signal_reports_128_plus_the_signal() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-signal");
    let name = unique("cmd-signal");
    let r = lxc.ensure_run(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "--command",
            "echo before; kill -9 $$",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    let f: Failure = r.json();
    let c = f.command.expect("command result");
    assert_eq!((c.rc, c.stdout.as_str()), (137, "before\n"));
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
}

#[test]
fn command_output_larger_than_a_pipe_is_captured_whole() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-big");
    let name = unique("cmd-big");
    // Both streams well past a pipe's 64 KiB, written interleaved: a reader that drains one
    // stream before the other would deadlock.
    let script = "i=0; while [ $i -lt 3000 ]; do echo 0123456789012345678901234567890123456789; \
                  echo abcdefghijabcdefghijabcdefghijabcdefghij >&2; i=$((i+1)); done";
    let o = lxc.ensure(&name, &["-t", "busybox", NO_NET, "--command", script]);
    let c = o.command.expect("command result");
    assert_eq!((c.stdout.len(), c.stderr.len()), (3000 * 41, 3000 * 41));
}

#[test]
fn longest_name_works_in_an_lxc_path_that_does_not_exist_yet() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("long-name");
    // Dropped before `lxc`, which removes the directories above it.
    let deeper = TempLxcPath::at(lxc.path().join("not/yet"));
    let name = format!("{}{}", unique("long"), "x".repeat(64))
        .chars()
        .take(64)
        .collect::<String>();
    let o = deeper.ensure(&name, &["-t", "busybox", NO_NET, "--command", "hostname"]);
    assert_eq!(
        o.command.expect("command result").stdout,
        format!("{name}\n")
    );
    assert_eq!(deeper.lxc_state(&name), "RUNNING");
    deeper.ensure(&name, &["--state", "absent"]);
    assert_eq!(deeper.lxc_state(&name), "ABSENT");
}

#[test]
fn list_of_an_lxc_path_that_does_not_exist_is_empty() {
    if skip_live() {
        return;
    }
    // As lxc-ls and `lxcform facts` see it: no directory, no containers.
    let lxc = TempLxcPath::new("list-missing");
    let missing = lxc.path().join("not-there");
    let r = lxcform([
        OsStr::new("list"),
        OsStr::new("-P"),
        missing.as_os_str(),
        OsStr::new("--json"),
    ])
    .ok();
    let all: Vec<common::Facts> = r.json();
    assert!(all.is_empty(), "{all:?}");
    assert!(!missing.exists(), "list creates nothing");
}

#[test]
fn a_signal_during_a_create_ends_the_run_by_it_and_leaves_no_container() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("sig-create");
    for (signal, number) in [("-INT", 2), ("-TERM", 15)] {
        let name = unique("sig-create");
        let mut args: Vec<std::ffi::OsString> = vec!["ensure".into(), name.clone().into()];
        args.extend(lxc.arg());
        args.extend(["-t".into(), "busybox".into(), NO_NET.into()]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_lxcform"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The signal goes to lxcform alone, not to the template it runs: the create finishes,
        // and the run must notice before its next step.
        let t0 = Instant::now();
        while !lxc.path().join(&name).exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the create never began"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let kill = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(number), "{signal}: {status:?}");
        assert_eq!(lxc.lxc_state(&name), "ABSENT", "{signal}");
        assert!(
            !lxc.path().join(&name).exists(),
            "{signal}: nothing half-made"
        );
    }
}

/// A config change reaches liblxc once: its in-memory config is replaced, not added to, so
/// hooks do not run twice and a clone's config holds each line once (liblxc's `load_config`
/// parses into the config it already has).
#[test]
fn a_written_config_is_loaded_once_so_hooks_run_once_and_clones_get_each_line_once() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-once");
    let name = unique("cfg-once");
    let hook = lxc.path().join("hook.sh");
    let runs = lxc.path().join("hook.runs");
    common::write_script(
        &hook,
        &format!("#!/bin/sh\necho \"$LXC_NAME\" >> {}\n", runs.display()),
    );
    let hook_line = format!("lxc.hook.pre-start={}", hook.display());
    let hook_runs = || {
        fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };

    lxc.ensure(
        &name,
        &["-t", "busybox", NO_NET, "--config-line", &hook_line],
    );
    assert_eq!(hook_runs(), 1, "the first start ran the hook once");

    // Running: a changed line restarts it, with the config read from the file once.
    let o = lxc.ensure(
        &name,
        &[
            NO_NET,
            "--config-line",
            &hook_line,
            "--config-line",
            "lxc.tty.max=3",
        ],
    );
    assert_eq!(o.steps, ["stop", WRITE1, "start"]);
    assert_eq!(
        hook_runs(),
        2,
        "the restart ran the hook once more, not twice"
    );

    // A clone made in the same run as a config change gets the new config, each line once.
    let clone = format!("{name}-c");
    lxc.ensure_run(
        &name,
        &[
            "--state",
            "stopped",
            NO_NET,
            "--config-line",
            "lxc.tty.max=4",
            "--clone-name",
            &clone,
        ],
    )
    .ok();
    let config = lxc.config_text(&clone);
    assert_eq!(lines_with_key(&config, "lxc.tty.max"), ["lxc.tty.max = 4"]);
    assert_eq!(
        lines_with_key(&config, "lxc.hook.pre-start").len(),
        1,
        "{config}"
    );
    let origin = lxc.config_text(&name);
    let mounts = |c: &str| lines_with_key(c, "lxc.mount.entry").len();
    assert_eq!(mounts(&config), mounts(&origin), "{config}");
    lxc.ensure(&clone, &["--state", "absent"]);
    lxc.ensure(&name, &["--state", "absent"]);
}

/// A container's own `lxc.log.file` gets liblxc's log of what lxcform does to it, at its own
/// `lxc.log.level`, as under `lxc-start` (lxcform's capture of liblxc's log for its error
/// messages must not take it over).
#[test]
fn a_containers_own_log_file_gets_its_log() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("own-log");
    let name = unique("own-log");
    let own = lxc.path().join("own.log");
    let file_line = format!("lxc.log.file={}", own.display());
    lxc.ensure(
        &name,
        &[
            "-t",
            "busybox",
            NO_NET,
            "--config-line",
            &file_line,
            "--config-line",
            "lxc.log.level=INFO",
        ],
    );
    let text = fs::read_to_string(&own).unwrap_or_default();
    assert!(
        text.lines().any(|l| l.contains(" INFO ")),
        "no INFO lines of the start in {}: {text:?}",
        own.display()
    );
    lxc.ensure(&name, &["--state", "absent"]);
}

/// What a create cut off by SIGKILL (or a crash) leaves — the template's rootfs and config
/// with liblxc's `partial` marker, which nobody holds any more — is removed and the container
/// made anew; liblxc itself would refuse to start it forever ("Ongoing container creation
/// detected"). While another process holds the marker (a create running now), nothing is
/// touched.
#[test]
fn an_interrupted_create_is_removed_and_made_anew_and_an_ongoing_one_is_left_alone() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("partial");
    let name = unique("partial");
    lxc.stopped_container(&name);
    let marker = lxc.path().join(&name).join("partial");
    fs::write(&marker, "").unwrap();

    // Held (as by a create under way, here with flock, liblxc's fallback): left alone.
    // `-o`: the lock is flock's own, not the sleep's, and goes with it when it is killed.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&marker)
        .args(["sleep", "10"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let busy = lxc.ensure_run(&name, &["-t", "busybox", NO_NET]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(busy.code, 1, "{busy:#?}");
    let failure: Failure = busy.json();
    assert!(
        failure.msg.contains("is being created by another process"),
        "{failure:?}"
    );
    assert!(marker.exists(), "an ongoing create's marker was touched");

    // Nobody holds it: an interrupted create.
    let o = lxc.ensure(&name, &["-t", "busybox", NO_NET]);
    assert_eq!(
        o.steps,
        ["remove an interrupted create", CREATE, WRITE1, "start"]
    );
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
    assert!(!marker.exists());
    let again = lxc.ensure(&name, &["-t", "busybox", NO_NET]);
    assert!(!again.changed, "{again:?}");
    lxc.ensure(&name, &["--state", "absent"]);
}

/// `container_command` with `state: absent` is ignored with a warning, as the Python module
/// ignores it: the container is destroyed, nothing is run.
#[test]
fn a_command_with_state_absent_is_ignored_with_a_warning() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-absent");
    let name = unique("cmd-absent");
    lxc.stopped_container(&name);
    let o = lxc.ensure(&name, &["--state", "absent", "--command", "exit 9"]);
    assert_eq!(o.steps, ["destroy"]);
    assert_eq!(
        o.warnings,
        ["container_command is ignored with state absent"]
    );
    assert!(o.command.is_none(), "{o:?}");
    assert_eq!(lxc.lxc_state(&name), "ABSENT");
}

/// `ensure` stopped by a signal finishes its current step, says where it stopped (the same
/// JSON as any failure), then ends by the signal.
#[test]
fn ensure_stopped_by_a_signal_reports_then_ends_by_it() {
    use std::os::unix::process::ExitStatusExt;
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("ensure-sig");
    let name = unique("ensure-sig");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args(["ensure", &name])
        .args(lxc.arg())
        .args(["-t", "busybox", NO_NET, "--state", "stopped"])
        .args(["--command", "sleep 2; echo slept", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while lxc.lxc_state(&name) != "RUNNING" {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(15), "{out:?}");
    let failure: Failure =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no report ({e}): {out:?}"));
    assert!(
        failure.msg.ends_with("stopped by SIGTERM before stop"),
        "{failure:?}"
    );
    assert_eq!(
        failure.command.as_ref().map(|c| c.stdout.as_str()),
        Some("slept\n"),
        "the step under way finished"
    );
    assert_eq!(
        lxc.lxc_state(&name),
        "RUNNING",
        "the steps after it did not run"
    );
}

/// A config change that fails after the container was stopped for it (here: the config file
/// is immutable, so the new one cannot replace it) leaves the container as it was: running,
/// with its config, not stopped halfway.
#[test]
fn a_failed_config_change_brings_the_stopped_container_back() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cfg-fail");
    let name = unique("cfg-fail");
    lxc.ensure(&name, &["-t", "busybox", NO_NET]);
    let config = lxc.config_file(&name);
    let before = lxc.config_text(&name);
    /// Takes the immutable flag off again, even when the test fails.
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            let _ = common::run_program("chattr", [OsStr::new("-i"), self.0.as_os_str()]);
        }
    }
    let chattr = common::run_program("chattr", [OsStr::new("+i"), config.as_os_str()]);
    if chattr.code != 0 {
        common::skip(format_args!(
            "SKIP: chattr +i does not work here: {}",
            chattr.stderr
        ));
        return;
    }
    let _mutable = Mutable(&config);
    let r = lxc.ensure_run(&name, &[NO_NET, "--config-line", "lxc.tty.max=3"]);
    assert_eq!(r.code, 1, "{r:#?}");
    let failure: Failure = r.json();
    assert!(failure.msg.contains("write config"), "{failure:?}");
    assert_eq!(lxc.lxc_state(&name), "RUNNING", "brought back");
    drop(_mutable);
    assert_eq!(lxc.config_text(&name), before);
    lxc.ensure(&name, &["--state", "absent"]);
}

/// `ensure` killed outright during a create leaves the template running on its own. While it
/// runs, the container is one being made by another process, not one to remove and make anew
/// (that would race the template); once it is done, the half-made container is replaced.
#[test]
fn an_orphaned_template_is_waited_for_not_raced() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("orphan");
    let name = unique("orphan");
    let template = lxc.path().join("lxc-slow");
    common::write_script(
        &template,
        "#!/bin/sh\nsleep 3\nexec /usr/share/lxc/templates/lxc-busybox \"$@\"\n",
    );
    let template = template.display().to_string();
    let mut child = std::process::Command::new(common::BIN)
        .args(["ensure", &name])
        .args(lxc.arg())
        .args(["-t", &template, NO_NET, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = lxc.path().join(&name).join("partial");
    let t0 = std::time::Instant::now();
    while !partial.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "no create began"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let busy = lxc.ensure_run(&name, &["-t", "busybox", NO_NET]);
    assert_eq!(busy.code, 1, "{busy:#?}");
    assert!(
        busy.stdout.contains("is being created by another process"),
        "{busy:#?}"
    );
    // Once the orphaned template is done, its half-made container is replaced.
    let t0 = std::time::Instant::now();
    let o = loop {
        let r = lxc.ensure_run(&name, &["-t", "busybox", NO_NET]);
        if r.code == 0 {
            break r.json::<common::Outcome>();
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(60), "{r:#?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        o.steps.first().map(String::as_str),
        Some("remove an interrupted create"),
        "{o:?}"
    );
    assert_eq!(lxc.lxc_state(&name), "RUNNING");
    let config = lxc.config_text(&name);
    assert_eq!(lines_with_key(&config, "lxc.uts.name").len(), 1, "{config}");
}

/// A create that fails is undone with its lock file: nothing of the container is left.
#[test]
fn a_failed_create_leaves_no_lock_file() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("create-fail");
    let name = unique("create-fail");
    let template = lxc.path().join("lxc-failing");
    common::write_script(&template, "#!/bin/sh\necho no >&2\nexit 1\n");
    let r = lxc.ensure_run(&name, &["-t", &template.display().to_string(), NO_NET]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(!lxc.path().join(&name).exists());
    let lock = lxc
        .path()
        .join(".lxcform-locks")
        .join(format!("{name}.lock"));
    assert!(!lock.exists(), "{} is left", lock.display());
}
