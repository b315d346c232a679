//! Live `lxcform apply`: real busybox containers in temporary lxc_paths, checked with
//! `lxc-info` (an observer independent of lxcform) and `plan --json`.

mod manifest_harness;

use std::fs;
use std::path::Path;
use std::time::Duration;

use manifest_harness::{
    lxcform, send, skip_live, spawn, wait_until, Plan, Status, Summary, TempDir,
};

/// `(name, extra options)` of the ten containers, with the state `lxc-info` must then report.
fn ten(btrfs: Option<&str>) -> (String, Vec<(&'static str, &'static str)>) {
    let mut entries = String::new();
    let mut expect = Vec::new();
    let mut add = |name: &'static str, options: String, state: &'static str| {
        entries.push_str(&format!("  - name: {name}\n{options}"));
        expect.push((name, state));
    };
    add("dir-run", String::new(), "RUNNING");
    add("dir-stop", "    state: stopped\n".into(), "STOPPED");
    add("dir-frozen", "    state: frozen\n".into(), "FROZEN");
    add(
        "dir-tty",
        "    container_config: [lxc.tty.max=2]\n".into(),
        "RUNNING",
    );
    add(
        "ovl-run",
        "    backing_store: overlayfs\n".into(),
        "RUNNING",
    );
    add(
        "ovl-stop",
        "    backing_store: overlay\n    state: stopped\n".into(),
        "STOPPED",
    );
    add(
        "loop-run",
        "    backing_store: loop\n    fs_size: 128M\n".into(),
        "RUNNING",
    );
    add(
        "cmd-run",
        "    container_command: \"true\"\n    state: stopped\n".into(),
        "STOPPED",
    );
    add("never", "    state: absent\n".into(), "ABSENT");
    match btrfs {
        Some(path) => add(
            "btrfs-run",
            format!("    backing_store: btrfs\n    lxc_path: {path}\n"),
            "RUNNING",
        ),
        None => add("dir-run2", String::new(), "RUNNING"),
    }
    (entries, expect)
}

fn lxc_path_of(dir: &TempDir, btrfs: Option<&str>, name: &str) -> String {
    match (name, btrfs) {
        ("btrfs-run", Some(p)) => p.to_string(),
        _ => dir.sub("lxc"),
    }
}

#[test]
fn ten_containers_converge_then_a_second_apply_changes_nothing_and_an_edit_changes_one() {
    if skip_live() {
        return;
    }
    let mut dir = TempDir::new("ten");
    let btrfs = dir.btrfs("btrfs");
    let (entries, expect) = ten(btrfs.as_deref());
    let head = format!(
        "defaults:\n  template: busybox\n  lxc_path: {}\n  container_config:\n    - lxc.net.0.type=empty\ncontainers:\n",
        dir.sub("lxc")
    );
    let file = dir.manifest("m.yml", &format!("{head}{entries}"));

    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    assert_eq!(plan.changes, 9, "{plan:#?}");

    // `container_command` makes every run of cmd-run a change, so the first run uses it and
    // the rest of the test drops it.
    let r = lxcform(&[
        "apply",
        &file,
        "--json",
        "--jobs",
        "3",
        "--detailed-exitcode",
    ])
    .code(3);
    let first: Summary = r.json();
    assert_eq!(
        (first.changed, first.ok, first.failed),
        (9, 1, 0),
        "{first:#?}"
    );
    assert!(
        r.stderr.contains("[10/10]"),
        "plain progress lines: {}",
        r.stderr
    );
    for (name, state) in &expect {
        let p = lxc_path_of(&dir, btrfs.as_deref(), name);
        assert_eq!(TempDir::lxc_state(&p, name), *state, "{name}");
    }
    let tty = fs::read_to_string(Path::new(&dir.sub("lxc")).join("dir-tty/config")).unwrap();
    assert_eq!(tty.matches("lxc.tty.max").count(), 1, "{tty}");
    assert!(tty.contains("lxc.tty.max = 2"), "{tty}");

    let text = fs::read_to_string(&file)
        .unwrap()
        .replace("    container_command: \"true\"\n", "");
    fs::write(&file, &text).unwrap();
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(0).json();
    assert_eq!((plan.changes, plan.unchanged), (0, 10), "{plan:#?}");
    let again: Summary = lxcform(&["apply", &file, "--json", "--detailed-exitcode"])
        .code(0)
        .json();
    assert_eq!((again.changed, again.ok), (0, 10), "{again:#?}");

    // One container's config edited: only it changes.
    let configs = |dir: &TempDir| -> Vec<(String, String)> {
        expect
            .iter()
            .filter(|(n, _)| *n != "never")
            .map(|(n, _)| {
                let p = Path::new(&lxc_path_of(dir, btrfs.as_deref(), n))
                    .join(n)
                    .join("config");
                (n.to_string(), fs::read_to_string(p).unwrap())
            })
            .collect()
    };
    let before = configs(&dir);
    fs::write(&file, text.replace("lxc.tty.max=2", "lxc.tty.max=3")).unwrap();
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    let changed: Vec<&str> = plan
        .containers
        .iter()
        .filter(|c| c.changed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(changed, ["dir-tty"]);
    let edited: Summary = lxcform(&["apply", &file, "--json"]).code(0).json();
    assert_eq!((edited.changed, edited.ok), (1, 9), "{edited:#?}");
    assert_eq!(edited.of("dir-tty").status, Status::Changed);
    let after = configs(&dir);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        if name == "dir-tty" {
            assert!(
                a.contains("lxc.tty.max = 3") && !a.contains("lxc.tty.max = 2"),
                "{a}"
            );
        } else {
            assert_eq!(a, b, "{name}'s config changed");
        }
    }
    assert_eq!(TempDir::lxc_state(&dir.sub("lxc"), "dir-tty"), "RUNNING");
}

#[test]
fn one_impossible_container_fails_while_the_rest_converge() {
    if skip_live() {
        return;
    }
    let dir = TempDir::new("fail");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  container_config: [lxc.net.0.type=empty]
containers:
  - name: ok1
  - name: impossible
    template: no-such-template
  - name: ok2
    state: stopped
  - name: impossible
    clone_name: never-made
  - name: never-made
  - name: ok3
"
        ),
    );
    // A container not in the manifest is left alone.
    lxcform(&[
        "ensure",
        "bystander",
        "-P",
        &lxc,
        "-t",
        "busybox",
        "--state",
        "stopped",
        "--config-line",
        "lxc.net.0.type=empty",
    ])
    .code(0);
    let bystander = Path::new(&lxc).join("bystander/config");
    let before = fs::read_to_string(&bystander).unwrap();
    let r = lxcform(&["apply", &file, "--jobs", "2"]).code(1);
    assert_eq!(fs::read_to_string(&bystander).unwrap(), before);
    assert_eq!(TempDir::lxc_state(&lxc, "bystander"), "STOPPED");
    assert!(
        r.stdout
            .contains("Apply: 3 changed, 0 ok, 1 failed, 2 skipped"),
        "{r:#?}"
    );
    let failed_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("impossible") && l.contains("failed"))
        .unwrap_or_else(|| panic!("{r:#?}"));
    assert!(
        failed_line.contains("template \"no-such-template\" not found"),
        "{failed_line}"
    );
    for (name, state) in [
        ("ok1", "RUNNING"),
        ("ok2", "STOPPED"),
        ("ok3", "RUNNING"),
        ("impossible", "ABSENT"),
        ("never-made", "ABSENT"),
    ] {
        assert_eq!(TempDir::lxc_state(&lxc, name), state, "{name}");
    }
    assert!(
        !Path::new(&lxc).join("impossible").exists(),
        "a failed create leaves nothing"
    );

    let s: Summary = lxcform(&["apply", &file, "--json"]).code(1).json();
    assert_eq!((s.ok, s.failed, s.skipped), (3, 1, 2), "{s:#?}");
    let skipped = s.of("never-made");
    assert_eq!(skipped.status, Status::Skipped);
    assert_eq!(
        skipped.error.as_deref(),
        Some("waits for impossible -> never-made")
    );

    // The plan says so beforehand: the template is missing, and what waits for it is skipped.
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(1).json();
    assert_eq!((plan.changes, plan.errors), (0, 3), "{plan:#?}");
    let errors: Vec<&str> = plan
        .containers
        .iter()
        .filter_map(|c| c.error.as_deref())
        .collect();
    assert!(
        errors[0].contains("template \"no-such-template\" not found"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("would be skipped: waits for impossible"),
        "{errors:?}"
    );
    assert!(
        errors[2].contains("would be skipped: waits for impossible -> never-made"),
        "{errors:?}"
    );
}

#[test]
fn a_clone_waits_for_its_origin() {
    if skip_live() {
        return;
    }
    let dir = TempDir::new("clone");
    let lxc = dir.sub("lxc");
    // The clone's entry comes first, and more jobs than entries are allowed: only the wait
    // keeps it from being created from the template before base is cloned into it.
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  container_config: [lxc.net.0.type=empty]
containers:
  - name: web
    container_config: [lxc.tty.max=3]
  - name: base
    state: stopped
    container_command: echo made-in-base > /marker
    clone_name: web
  - name: other
"
        ),
    );
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    assert_eq!(plan.containers[0].waits_for, ["base"]);
    assert!(plan.containers[0].predicted);

    let s: Summary = lxcform(&["apply", &file, "--json", "--jobs", "4"])
        .code(0)
        .json();
    assert_eq!((s.changed, s.failed), (3, 0), "{s:#?}");
    let marker = Path::new(&lxc).join("web/rootfs/marker");
    assert_eq!(
        fs::read_to_string(&marker).unwrap_or_else(|e| panic!("{}: {e}; {s:#?}", marker.display())),
        "made-in-base\n"
    );
    assert_eq!(TempDir::lxc_state(&lxc, "web"), "RUNNING");
    assert_eq!(TempDir::lxc_state(&lxc, "base"), "STOPPED");
    let config = fs::read_to_string(Path::new(&lxc).join("web/config")).unwrap();
    assert!(config.contains("lxc.tty.max = 3"), "{config}");
}

#[test]
fn a_signal_stops_the_run_between_containers_and_leaves_nothing_half_made() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    if skip_live() {
        return;
    }
    let dir = TempDir::new("signal");
    let lxc = dir.sub("lxc");
    let names = ["sig1", "sig2", "sig3", "sig4", "sig5", "sig6"];
    let entries: String = names.iter().map(|n| format!("  - name: {n}\n")).collect();
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  container_config: [lxc.net.0.type=empty]
containers:
{entries}"
        ),
    );
    // Inherited by the children: finds them after the parent has gone. (The monitors of the
    // containers the run started inherit it too; they are not `lxcform` processes.)
    let mark = format!("LXCFORM_TEST_RUN={}", dir.path().display());
    let marked = || -> Vec<String> {
        let Ok(procs) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter(|p| {
                let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
                let argv1 = cmdline.split(|&b| b == 0).nth(1).unwrap_or_default();
                (argv1 == b"apply" || argv1 == b"__converge")
                    && fs::read(p.path().join("environ"))
                        .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == mark.as_bytes()))
            })
            .map(|p| p.file_name().to_string_lossy().into_owned())
            .collect()
    };
    for (signal, number) in [("-INT", 2), ("-TERM", 15)] {
        let child = Command::new(manifest_harness::BIN)
            .args(["apply", &file, "--jobs", "2", "--json"])
            .env("LXCFORM_TEST_RUN", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the first containers are being made, stop the run.
        let t0 = Instant::now();
        while !names.iter().any(|n| Path::new(&lxc).join(n).exists()) {
            assert!(t0.elapsed() < Duration::from_secs(60), "nothing started");
            std::thread::sleep(Duration::from_millis(5));
        }
        let kill = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(number),
            "{signal}: ends by the signal, after its summary: {out:?}"
        );
        let s: Summary = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{signal}: no summary ({e}): {out:?}"));
        assert_eq!(s.interrupted, Some(number), "{s:#?}");
        assert_eq!(s.containers.len(), names.len());
        assert!(
            s.skipped >= 1,
            "entries after the signal never start: {s:#?}"
        );
        for c in &s.containers {
            // Every container is either made as declared or not there at all.
            let state = TempDir::lxc_state(&lxc, &c.name);
            match c.status {
                Status::Changed | Status::Ok => assert_eq!(state, "RUNNING", "{c:#?}"),
                Status::Skipped => assert_eq!(state, "ABSENT", "{c:#?}"),
                Status::Failed => {
                    assert!(state == "ABSENT" || state == "RUNNING", "{state}: {c:#?}");
                    // The first signal does not reach templates: no create is cut short.
                    assert!(
                        c.error
                            .as_deref()
                            .unwrap_or_default()
                            .contains("stopped by"),
                        "{c:#?}"
                    );
                    // The child reported before it ended by the signal: what stopped it, and
                    // the state it left.
                    assert_eq!(c.signal, Some(number), "{c:#?}");
                    assert_eq!(c.state.to_uppercase(), state, "{c:#?}");
                    if state == "ABSENT" {
                        assert!(!Path::new(&lxc).join(&c.name).exists(), "{c:#?}");
                    }
                }
            }
        }
        // No child keeps working after the parent is gone.
        assert_eq!(
            marked(),
            Vec::<String>::new(),
            "processes of the stopped run"
        );
        // The next run finishes the job.
        let s: Summary = lxcform(&["apply", &file, "--json"]).code(0).json();
        assert_eq!(s.failed + s.skipped, 0, "{s:#?}");
        assert_eq!(s.interrupted, None);
        for n in names {
            assert_eq!(TempDir::lxc_state(&lxc, n), "RUNNING", "{n}");
        }
        for n in names {
            lxcform(&["ensure", n, "-P", &lxc, "--state", "absent"]).code(0);
        }
    }
}

/// A child killed outright (SIGKILL, the OOM killer) cannot clean up: its entry fails, what it
/// ran (the template) is killed with it instead of running on, and the next run removes the
/// half-made container and makes it anew.
#[test]
fn a_killed_child_fails_its_entry_and_the_next_run_makes_the_container_anew() {
    use std::process::Command;
    use std::time::Instant;
    if skip_live() {
        return;
    }
    let dir = TempDir::new("sigkill");
    let lxc = dir.sub("lxc");
    // A template that takes its time, recognisable by its sleep's argument.
    let template = dir.path().join("lxc-slow");
    let nap = "47.123";
    manifest_harness::write_script(
        &template,
        &format!("#!/bin/sh\nsleep {nap}\nexec /usr/share/lxc/templates/lxc-busybox \"$@\"\n"),
    );
    let manifest = |template: &str| {
        format!(
            "defaults:\n  lxc_path: {lxc}\n  container_config: [lxc.net.0.type=empty]\ncontainers:\n  - name: slow1\n    template: {template}\n"
        )
    };
    let file = dir.manifest("m.yml", &manifest(&template.display().to_string()));
    let sleeping = || {
        Command::new("pgrep")
            .args(["-f", &format!("sleep {nap}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };

    let started = Instant::now();
    let apply = spawn(&["apply", &file, "--json"]);
    wait_until("the template", Duration::from_secs(60), sleeping);
    // While the create runs, liblxc holds its `partial` marker (an OFD lock): another run
    // sees a container being made, not one to make or replace.
    let busy: Plan = lxcform(&["plan", &file, "--json"]).code(1).json();
    assert!(
        busy.containers[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("is being created by another process"),
        "{busy:#?}"
    );
    let kill = Command::new("pkill")
        .args(["-KILL", "-P", &apply.id().to_string(), "-f", "__converge"])
        .status()
        .unwrap();
    assert!(kill.success(), "no child to kill");
    let out = apply.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "apply waited for the template of its killed child"
    );
    assert!(!sleeping(), "the killed child's template runs on");
    let s: Summary =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no summary ({e}): {out:?}"));
    let r = s.of("slow1");
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert!(
        r.error.as_deref().unwrap_or_default().contains("SIGKILL"),
        "{r:#?}"
    );

    // What it left is found and replaced.
    let file = dir.manifest("m2.yml", &manifest("busybox"));
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    assert_eq!(
        plan.containers[0].steps.first().map(String::as_str),
        Some("remove an interrupted create"),
        "{plan:#?}"
    );
    let s: Summary = lxcform(&["apply", &file, "--json"]).code(0).json();
    assert_eq!(s.of("slow1").status, Status::Changed, "{s:#?}");
    assert_eq!(TempDir::lxc_state(&lxc, "slow1"), "RUNNING");
}

/// The first signal lets a running step finish (here `container_command`, which does not see
/// it); a second one reaches what the step runs, and interrupts it. The run ends by the first.
#[test]
fn a_first_signal_lets_the_step_finish_and_a_second_interrupts_it() {
    use std::os::unix::process::ExitStatusExt;
    if skip_live() {
        return;
    }
    let dir = TempDir::new("signal2");
    let lxc = dir.sub("lxc");
    let run = |name: &str, signals: &[&str]| {
        let file = dir.busybox_manifest(
            &format!("{name}.yml"),
            &lxc,
            &format!("  - name: {name}\n    container_command: \"sleep 2; echo done\"\n"),
        );
        let child = spawn(&["apply", &file, "--json"]);
        // Once the command runs inside (the container is up), signal.
        wait_until("start", Duration::from_secs(60), || {
            TempDir::lxc_state(&lxc, name) == "RUNNING"
        });
        std::thread::sleep(Duration::from_millis(300));
        for signal in signals {
            send(signal, child.id());
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.signal(), Some(2), "ends by the first: {out:?}");
        let s: Summary = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no summary ({e}): {out:?}"));
        (s, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (s, stderr) = run("once1", &["-INT"]);
    let r = s.of("once1");
    assert_eq!(r.status, Status::Changed, "the step finished: {r:#?}");
    assert_eq!(
        r.command.as_ref().map(|c| c.stdout.as_str()),
        Some("done\n")
    );
    assert_eq!(r.signal, Some(2), "{r:#?}");
    assert!(stderr.contains("stopping on SIGINT"), "{stderr}");

    let (s, stderr) = run("twice1", &["-INT", "-TERM"]);
    let r = s.of("twice1");
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert_eq!(
        r.command.as_ref().map(|c| c.rc),
        Some(143),
        "SIGTERM ended it: {r:#?}"
    );
    assert!(
        stderr.contains("stopping on SIGTERM: passed to what"),
        "{stderr}"
    );
}

/// A signal while a child waits for another run's lock stops it there, at once and with
/// nothing changed, rather than after that run lets go.
#[test]
fn a_signal_stops_a_child_waiting_for_another_runs_lock() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;
    if skip_live() {
        return;
    }
    let dir = TempDir::new("lockwait");
    let lxc = dir.sub("lxc");
    let file = dir.busybox_manifest("m.yml", &lxc, "  - name: w1\n");
    let locks = Path::new(&lxc).join(".lxcform-locks");
    fs::create_dir_all(&locks).unwrap();
    // Another run holds w1's lock (flock -o: the lock is flock's own, gone when it is killed).
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(locks.join("w1.lock"))
        .args(["sleep", "20"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let apply = spawn(&["apply", &file, "--json"]);
    std::thread::sleep(Duration::from_millis(1500));
    send("-INT", apply.id());
    let out = apply.wait_with_output().unwrap();
    let took = t0.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        took < Duration::from_secs(10),
        "waited for the lock: {took:?}"
    );
    assert_eq!(out.status.signal(), Some(2), "{out:?}");
    let s: Summary =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no summary ({e}): {out:?}"));
    let r = s.of("w1");
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert_eq!(
        r.error.as_deref(),
        Some("container \"w1\": stopped by SIGINT before taking its lock"),
        "{r:#?}"
    );
    assert_eq!(TempDir::lxc_state(&lxc, "w1"), "ABSENT");
}
