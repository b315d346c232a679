//! What the CLI writes, and what it does when it cannot: stdout on a full disk (`/dev/full`)
//! or a pipe nobody reads, a signal on top of that, and the text `apply` prints about failed
//! and skipped entries.

mod common;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{lxcform, skip_live, unique, TempLxcPath, BIN, NO_NET};

/// Exit code of a failed run.
const FAILED: i32 = 1;

/// The one message a failed write to stdout gives.
const FULL: &str = "lxcform: cannot write to stdout: No space left on device";

/// Longest a run may take.
const TIMEOUT: Duration = Duration::from_secs(300);

/// How a run with a given stdout ended.
#[derive(Debug)]
struct Ended {
    status: ExitStatus,
    stderr: String,
}

impl Ended {
    /// Panics unless it exited with `code`, said [`FULL`] exactly once and did not panic.
    #[track_caller]
    fn full_disk(&self, code: i32) {
        assert_eq!(self.status.code(), Some(code), "{self:#?}");
        self.said_full_once();
    }

    #[track_caller]
    fn said_full_once(&self) {
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        assert_eq!(self.stderr.matches(FULL).count(), 1, "{self:#?}");
    }
}

/// `/dev/full` to write to: every write fails with ENOSPC.
fn dev_full() -> Stdio {
    File::options()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
        .into()
}

/// Starts `lxcform ARGS` with this stdout, stderr piped, stdin closed.
fn start<S: AsRef<OsStr>>(args: &[S], stdout: Stdio) -> Child {
    Command::new(BIN)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lxcform")
}

/// Waits for a child started by [`start`], reading its stderr; kills it after [`TIMEOUT`].
fn wait(child: Child) -> Ended {
    let (status, _, stderr) = common::wait_within(child, "lxcform", TIMEOUT);
    Ended { status, stderr }
}

/// Runs `lxcform ARGS` with stdout on `/dev/full`.
fn to_full_disk<S: AsRef<OsStr>>(args: &[S]) -> Ended {
    wait(start(args, dev_full()))
}

/// A manifest in `lxc`'s directory: busybox containers without network in `lxc`.
fn manifest(lxc: &TempLxcPath, entries: &str) -> String {
    let file = lxc.path().join("m.yml");
    fs::write(
        &file,
        format!(
            "defaults:\n  template: busybox\n  lxc_path: {}\n  container_config: [lxc.net.0.type=empty]\ncontainers:\n{entries}",
            lxc.path().display()
        ),
    )
    .unwrap();
    file.display().to_string()
}

#[test]
fn plan_list_and_help_on_a_full_disk_say_so_once_and_exit_1() {
    let lxc = TempLxcPath::new("full-plan");
    let file = manifest(&lxc, &format!("  - name: {}\n", unique("planned")));
    let path = lxc.path().display().to_string();
    // plan (3: changes pending, text and JSON), list (0: nothing there), help, version.
    for args in [
        vec!["plan", &file],
        vec!["plan", &file, "--json"],
        vec!["apply", &file, "--check"],
        vec!["list", "-P", &path],
        vec!["list", "-P", &path, "--json"],
        vec!["--help"],
        vec!["--version"],
    ] {
        let r = to_full_disk(&args);
        assert_eq!(r.status.code(), Some(FAILED), "{args:?}: {r:#?}");
        r.said_full_once();
    }
    // A bad manifest keeps its exit code (2) on a full disk.
    fs::write(&file, "containers: [{nme: x}]\n").unwrap();
    to_full_disk(&["plan", &file, "--json"]).full_disk(2);
}

#[test]
fn apply_ensure_and_facts_on_a_full_disk_do_their_work_and_exit_1() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("full-apply");
    let (one, two) = (unique("full-one"), unique("full-two"));
    let file = manifest(
        &lxc,
        &format!("  - name: {one}\n    state: stopped\n  - name: {two}\n    state: stopped\n"),
    );
    to_full_disk(&["apply", &file, "--jobs", "2"]).full_disk(FAILED);
    assert_eq!(lxc.lxc_state(&one), "STOPPED");
    assert_eq!(lxc.lxc_state(&two), "STOPPED");
    // Nothing to change, and --json: the same.
    to_full_disk(&["apply", &file, "--json"]).full_disk(FAILED);

    let path = lxc.path().display().to_string();
    let three = unique("full-three");
    to_full_disk(&[
        "ensure", &three, "-P", &path, "-t", "busybox", NO_NET, "--state", "stopped",
    ])
    .full_disk(FAILED);
    assert_eq!(lxc.lxc_state(&three), "STOPPED");
    to_full_disk(&["facts", &one, "-P", &path]).full_disk(FAILED);
    to_full_disk(&["facts", &one, "-P", &path, "--json"]).full_disk(FAILED);
}

#[test]
fn apply_stopped_by_sighup_on_a_full_disk_still_ends_by_sighup() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("full-hup");
    let names: Vec<String> = (0..4).map(|i| unique(&format!("hup{i}"))).collect();
    let entries: String = names.iter().map(|n| format!("  - name: {n}\n")).collect();
    let file = manifest(&lxc, &entries);
    let child = start(&["apply", &file, "--jobs", "1"], dev_full());
    let t0 = Instant::now();
    while !names.iter().any(|n| lxc.path().join(n).exists()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let r = wait(child);
    assert_eq!(r.status.signal(), Some(1), "ends by SIGHUP: {r:#?}");
    r.said_full_once();
    assert!(r.stderr.contains("stopping on SIGHUP"), "{r:#?}");
    // The entry that was running was finished or undone, not left half-made.
    for n in &names {
        let state = lxc.lxc_state(n);
        assert!(state == "RUNNING" || state == "ABSENT", "{n}: {state}");
        if state == "ABSENT" {
            assert!(!lxc.path().join(n).exists(), "{n} half-made");
        }
    }
}

#[test]
fn apply_whose_readers_went_away_still_converges_every_container() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("epipe");
    let names: Vec<String> = (0..2).map(|i| unique(&format!("epipe{i}"))).collect();
    let entries: String = names
        .iter()
        .map(|n| format!("  - name: {n}\n    state: stopped\n"))
        .collect();
    let file = manifest(&lxc, &entries);
    // `lxcform apply m.yml 2>&1 | true`: stdout and stderr a pipe whose reader has gone. One
    // at a time, so that the second container starts only after the first progress line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(BIN)
        .args(["apply", &file, "--jobs", "1"])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap();
    // Quiet, as a pipeline expects: ended by SIGPIPE.
    assert_eq!(status.signal(), Some(13), "{status:?}");
    for n in &names {
        assert_eq!(lxc.lxc_state(n), "STOPPED", "{n}");
    }
}

/// `lxcform apply FILE` (text), stdout and stderr captured.
fn apply_text(file: &str) -> common::Run {
    lxcform([
        OsString::from("apply"),
        file.into(),
        "--jobs".into(),
        "1".into(),
    ])
}

/// The lines from the one starting with `start` to the next that is not indented further.
fn block<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(start));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {start:?} in {text}"));
    let mut out = vec![first];
    out.extend(lines.take_while(|l| l.starts_with("    ")));
    out
}

#[test]
fn a_failed_command_shows_its_status_and_output_under_the_entry() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("cmd-text");
    let name = unique("cmd-text");
    let file = manifest(
        &lxc,
        &format!(
            "  - name: {name}\n    state: stopped\n    container_command: \"echo out-text; echo err-text >&2; exit 7\"\n"
        ),
    );
    let r = apply_text(&file);
    assert_eq!(r.code, FAILED, "{r:#?}");
    // The summary: the entry's line, then the command's status and output under it.
    let summary = block(&r.stdout, &name);
    assert!(summary[0].contains("failed"), "{summary:#?}");
    let under: Vec<&str> = summary[1..].iter().map(|l| l.trim()).collect();
    assert_eq!(
        under,
        [
            "command exited with 7",
            "stdout: out-text",
            "stderr: err-text"
        ],
        "{r:#?}"
    );
    // The progress line on stderr, the same.
    let progress = block(&r.stderr, "[1/1]");
    assert!(progress[0].contains(&format!("{name}: failed")), "{r:#?}");
    let under: Vec<&str> = progress[1..].iter().map(|l| l.trim()).collect();
    assert_eq!(
        under,
        [
            "command exited with 7",
            "stdout: out-text",
            "stderr: err-text"
        ],
        "{r:#?}"
    );
    assert_eq!(lxc.lxc_state(&name), "STOPPED");
}

#[test]
fn a_skipped_entry_says_skipped_once_then_why() {
    if skip_live() {
        return;
    }
    let lxc = TempLxcPath::new("skip-text");
    let (bad, later) = (unique("skip-bad"), unique("skip-later"));
    let file = manifest(
        &lxc,
        &format!(
            "  - name: {bad}\n    template: no-such-template\n    clone_name: {later}\n  - name: {later}\n"
        ),
    );
    let r = apply_text(&file);
    assert_eq!(r.code, FAILED, "{r:#?}");
    // It waits for the entry that makes it: `bad -> later`.
    let progress = format!("{later}: skipped: waits for {bad} -> {later}");
    assert!(r.stderr.contains(&progress), "{r:#?}");
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&later))
        .unwrap_or_else(|| panic!("{r:#?}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[1], "skipped", "{row}");
    assert!(
        row.ends_with(&format!("  waits for {bad} -> {later}")),
        "{row}"
    );
    assert!(!format!("{}{}", r.stdout, r.stderr).contains("skipped: skipped"));
    assert!(!Path::new(&lxc.path().join(&later)).exists());
}
