//! Harness for the CLI's live and bad-input tests.
//!
//! Tests drive the built `lxcform` binary as a process (liblxc forks in start, create and
//! attach, which must not happen from cargo's multi-threaded test harness). Each test owns a
//! temporary lxc_path ([`TempLxcPath`]) whose `Drop` destroys every container in it and removes
//! it, even when the test panics, so tests can run in parallel threads.
//!
//! The JSON output is parsed into types defined here, separately from the library's, with
//! `deny_unknown_fields`: a change of the contract breaks a test.

// Each test binary uses a part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lxcform");

/// Where liblxc's templates live.
const BUSYBOX_TEMPLATE: &str = "/usr/share/lxc/templates/lxc-busybox";

/// Longest a single CLI run may take before the test fails (a hang is a bug, not a wait).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------------------------
// JSON contract (`lxcform ... --json`), defined independently of the library.

/// A container state as the CLI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
    Frozen,
    Absent,
}

/// `facts`: `{name, state, init_pid, interfaces, ips}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub name: String,
    pub state: State,
    pub init_pid: i64,
    pub interfaces: Vec<String>,
    pub ips: Vec<String>,
}

/// `command`: `{rc, stdout, stderr}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandOut {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One side of a diff: `{state, config}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub state: State,
    pub config: String,
}

/// `diff`: `{before, after}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diff {
    pub before: Snapshot,
    pub after: Snapshot,
}

/// A successful `ensure --json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub changed: bool,
    pub steps: Vec<String>,
    pub facts: Facts,
    #[serde(default)]
    pub diff: Option<Diff>,
    #[serde(default)]
    pub command: Option<CommandOut>,
    pub warnings: Vec<String>,
}

/// A failed run with `--json`: `{failed, msg, log, command?}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub failed: bool,
    pub msg: String,
    pub log: Vec<String>,
    #[serde(default)]
    pub command: Option<CommandOut>,
}

// ---------------------------------------------------------------------------------------------
// Skipping

/// Whether this process runs as root (read from /proc, no libc needed).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Whether an executable is on PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Returns `true` (after printing why) when live tests cannot run here.
#[must_use]
pub fn skip_live() -> bool {
    if !is_root() {
        skip(format_args!("SKIP: live tests need root"));
        return true;
    }
    if !Path::new(BUSYBOX_TEMPLATE).is_file() {
        skip(format_args!(
            "SKIP: live tests need the busybox template ({BUSYBOX_TEMPLATE})"
        ));
        return true;
    }
    for p in ["lxc-info", "lxc-ls", "lxc-destroy"] {
        if !have_program(p) {
            skip(format_args!("SKIP: live tests need {p} (package lxc)"));
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Names

/// A name unique to this process, call and test: `<test>-<pid>-<n>`, at most 60 characters,
/// valid as a container name.
pub fn unique(test: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let suffix = format!("-{}-{n}", std::process::id());
    let clean: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let keep = 60usize.saturating_sub(suffix.len()).min(clean.len());
    format!("{}{suffix}", &clean[..keep])
        .trim_start_matches('-')
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Running things

/// What a process did.
#[derive(Debug, Clone)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// `(code, stdout, stderr)`.
    pub fn parts(&self) -> (i32, &str, &str) {
        (self.code, &self.stdout, &self.stderr)
    }

    /// Panics with everything the process said unless it exited 0.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success; {self:#?}");
        self
    }

    /// Parses stdout as JSON of type `T`, panicking with the output on mismatch.
    #[track_caller]
    pub fn json<T: for<'de> Deserialize<'de>>(&self) -> T {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not the expected JSON ({e}); {self:#?}",
                self = self
            )
        })
    }
}

/// Runs a program with `LC_ALL=C`, killing it after [`RUN_TIMEOUT`].
pub fn run_program<I, S>(program: impl AsRef<OsStr>, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_program_within(program, args, RUN_TIMEOUT)
}

/// Runs a program with `LC_ALL=C`, stdin closed, killing it (and failing the test) after
/// `timeout`.
pub fn run_program_within<I, S>(program: impl AsRef<OsStr>, args: I, timeout: Duration) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = program.as_ref().to_os_string();
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let child = Command::new(&program)
        .args(&args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
    let (status, stdout, stderr) = wait_within(child, &format!("{program:?} {args:?}"), timeout);
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Waits for `child`, reading its stdout and stderr where they are piped (empty otherwise);
/// kills it and fails the test, naming it `what`, after `timeout`.
pub fn wait_within(
    mut child: std::process::Child,
    what: &str,
    timeout: Duration,
) -> (std::process::ExitStatus, String, String) {
    fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut b);
            }
            String::from_utf8_lossy(&b).into_owned()
        })
    }
    let out_reader = drain(child.stdout.take());
    let err_reader = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    (status, stdout, stderr)
}

/// Writes an executable script (a template, a hook) at `path`.
#[track_caller]
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Runs `lxcform` with these arguments.
pub fn lxcform<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_program(BIN, args)
}

// ---------------------------------------------------------------------------------------------
// Temporary lxc_path

/// A temporary lxc_path. Dropping it destroys every container in it (through `lxcform ensure
/// --state absent`, falling back to `lxc-stop -k` and `lxc-destroy -f`) and removes it.
#[derive(Debug)]
pub struct TempLxcPath {
    path: PathBuf,
}

impl TempLxcPath {
    /// A new empty lxc_path under the system temp directory.
    pub fn new(test: &str) -> TempLxcPath {
        TempLxcPath::new_in(&std::env::temp_dir(), test)
    }

    /// A new empty lxc_path under `parent`.
    pub fn new_in(parent: &Path, test: &str) -> TempLxcPath {
        let path = parent.join(format!("lxcform-test-{}", unique(test)));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempLxcPath { path }
    }

    /// A guard for an lxc_path that is not created here (for runs that must make it).
    pub fn at(path: PathBuf) -> TempLxcPath {
        assert!(!path.exists(), "{} exists", path.display());
        TempLxcPath { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `-P PATH` as arguments.
    pub fn arg(&self) -> [OsString; 2] {
        ["-P".into(), self.path.as_os_str().to_os_string()]
    }

    /// The config file of container `name`.
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.path.join(name).join("config")
    }

    /// The config file's text.
    pub fn config_text(&self, name: &str) -> String {
        let p = self.config_file(name);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Runs `lxcform ensure NAME -P PATH ARGS... --json`, expecting success.
    #[track_caller]
    pub fn ensure(&self, name: &str, args: &[&str]) -> Outcome {
        self.ensure_run(name, args).ok().json()
    }

    /// Runs `lxcform ensure NAME -P PATH ARGS... --json` and returns what happened.
    pub fn ensure_run(&self, name: &str, args: &[&str]) -> Run {
        let mut all: Vec<OsString> = vec!["ensure".into(), name.into()];
        all.extend(self.arg());
        all.extend(args.iter().map(OsString::from));
        all.push("--json".into());
        lxcform(all)
    }

    /// `lxcform facts NAME -P PATH --json`.
    #[track_caller]
    pub fn facts(&self, name: &str) -> Facts {
        let mut all: Vec<OsString> = vec!["facts".into(), name.into()];
        all.extend(self.arg());
        all.push("--json".into());
        lxcform(all).ok().json()
    }

    /// What `lxc-info` (an observer independent of lxcform) says: the state in upper case
    /// (`RUNNING`, `STOPPED`, `FROZEN`) with the init pid, or `None` when the container does
    /// not exist.
    pub fn lxc_info(&self, name: &str) -> Option<(String, Option<i64>)> {
        let r = run_program(
            "lxc-info",
            [
                OsStr::new("-P"),
                self.path.as_os_str(),
                OsStr::new("-n"),
                OsStr::new(name),
                OsStr::new("-s"),
                OsStr::new("-p"),
            ],
        );
        if r.code != 0 {
            assert!(
                r.stderr.contains("doesn't exist"),
                "lxc-info failed unexpectedly: {r:#?}"
            );
            return None;
        }
        let field = |key: &str| {
            r.stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        let state = field("State:").unwrap_or_else(|| panic!("no State in {r:#?}"));
        let pid = field("PID:").map(|p| p.parse().expect("numeric pid"));
        Some((state, pid))
    }

    /// The state `lxc-info` reports (`RUNNING` …, or `ABSENT`).
    pub fn lxc_state(&self, name: &str) -> String {
        self.lxc_info(name)
            .map_or_else(|| "ABSENT".to_string(), |(s, _)| s)
    }

    /// Container names `lxc-ls` lists in this lxc_path.
    pub fn lxc_ls(&self) -> Vec<String> {
        let r = run_program(
            "lxc-ls",
            [OsStr::new("-P"), self.path.as_os_str(), OsStr::new("-1")],
        )
        .ok();
        r.stdout.split_whitespace().map(str::to_string).collect()
    }

    /// Makes `name` a stopped busybox container without network (for fixtures).
    #[track_caller]
    pub fn stopped_container(&self, name: &str) {
        self.ensure(name, &["-t", "busybox", "--state", "stopped", NO_NET]);
        assert_eq!(self.lxc_state(name), "STOPPED");
    }

    /// Every container directory in this lxc_path.
    fn containers(&self) -> Vec<String> {
        fs::read_dir(&self.path)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.path().join("config").is_file())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The config line tests use where networking is not under test.
pub const NO_NET: &str = "--config-line=lxc.net.0.type=empty";

impl Drop for TempLxcPath {
    fn drop(&mut self) {
        if is_root() {
            let p = self.path.as_os_str();
            for name in self.containers() {
                let r = lxcform([
                    OsStr::new("ensure"),
                    OsStr::new(&name),
                    OsStr::new("-P"),
                    p,
                    OsStr::new("--state"),
                    OsStr::new("absent"),
                ]);
                if r.code != 0 {
                    eprintln!("cleanup: lxcform could not destroy {name}: {r:?}");
                    let n = OsStr::new(&name);
                    let _ = run_program(
                        "lxc-stop",
                        [OsStr::new("-P"), p, OsStr::new("-n"), n, OsStr::new("-k")],
                    );
                    let _ = run_program(
                        "lxc-destroy",
                        [OsStr::new("-P"), p, OsStr::new("-n"), n, OsStr::new("-f")],
                    );
                }
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("cleanup: cannot remove {}: {e}", self.path.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A btrfs filesystem on a loopback image

/// A btrfs filesystem on a loop-mounted image, with an lxc_path inside it. Dropping it destroys
/// the containers, unmounts and deletes the image.
#[derive(Debug)]
pub struct BtrfsLxcPath {
    // Declared first so that it drops first: containers go before the filesystem does.
    lxc: Option<TempLxcPath>,
    dir: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

impl BtrfsLxcPath {
    /// Makes and mounts a 1 GiB btrfs image; `Err` says why it cannot be done here.
    pub fn new(test: &str) -> Result<BtrfsLxcPath, String> {
        if !have_program("mkfs.btrfs") {
            return Err("mkfs.btrfs (btrfs-progs) is not installed".into());
        }
        let dir = std::env::temp_dir().join(format!("lxcform-btrfs-{}", unique(test)));
        let mnt = dir.join("mnt");
        fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let mut this = BtrfsLxcPath {
            lxc: None,
            dir: dir.clone(),
            mnt: mnt.clone(),
            mounted: false,
        };
        let img = dir.join("img");
        let steps: [(&str, Vec<&OsStr>); 3] = [
            (
                "truncate",
                vec![OsStr::new("-s"), OsStr::new("1G"), img.as_os_str()],
            ),
            ("mkfs.btrfs", vec![OsStr::new("-q"), img.as_os_str()]),
            (
                "mount",
                vec![
                    OsStr::new("-o"),
                    OsStr::new("loop"),
                    img.as_os_str(),
                    mnt.as_os_str(),
                ],
            ),
        ];
        for (program, args) in steps {
            let r = run_program(program, args);
            if r.code != 0 {
                return Err(format!("{program} failed: {}", r.stderr.trim()));
            }
        }
        this.mounted = true;
        this.lxc = Some(TempLxcPath::new_in(&mnt, test));
        Ok(this)
    }

    /// The lxc_path on btrfs.
    pub fn lxc(&self) -> &TempLxcPath {
        self.lxc.as_ref().expect("set in new")
    }

    /// The mount point.
    pub fn mount_point(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for BtrfsLxcPath {
    fn drop(&mut self) {
        drop(self.lxc.take());
        if self.mounted {
            let mut unmounted = false;
            for _ in 0..50 {
                if run_program("umount", [self.mnt.as_os_str()]).code == 0 {
                    unmounted = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !unmounted {
                eprintln!("cleanup: lazy unmount of {}", self.mnt.display());
                let _ = run_program("umount", [OsStr::new("-l"), self.mnt.as_os_str()]);
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup: cannot remove {}: {e}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tree snapshots

/// One entry of a tree: type, mode, size, mtime, and a hash of the content (files) or the
/// target (symlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i128,
    pub hash: u64,
}

/// Every path under a directory (itself included) with its [`Entry`]; symlinks are not
/// followed.
pub fn snapshot_tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    snapshot_tree_except(root, |_| false)
}

/// [`snapshot_tree`] without the subtrees for which `skip(relative path)` is true (e.g. the
/// rootfs of a running container, where its syslogd writes).
pub fn snapshot_tree_except(root: &Path, skip: impl Fn(&Path) -> bool) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &skip, &mut out);
    out
}

fn walk(root: &Path, p: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut BTreeMap<PathBuf, Entry>) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    let ft = md.file_type();
    let mut h = DefaultHasher::new();
    let kind = if ft.is_symlink() {
        h.write(fs::read_link(p).expect("readlink").as_os_str().as_bytes());
        "symlink"
    } else if ft.is_file() {
        h.write(&fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())));
        "file"
    } else if ft.is_dir() {
        "dir"
    } else {
        h.write_u64(md.rdev());
        "special"
    };
    let rel = p.strip_prefix(root).expect("under root").to_path_buf();
    if skip(&rel) {
        return;
    }
    out.insert(
        rel,
        Entry {
            kind,
            mode: md.permissions().mode(),
            size: if ft.is_dir() { 0 } else { md.len() },
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            hash: h.finish(),
        },
    );
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = fs::read_dir(p)
            .unwrap_or_else(|e| panic!("read dir {}: {e}", p.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        children.sort();
        for c in children {
            walk(root, &c, skip, out);
        }
    }
}

/// Panics with the differences when two snapshots differ.
#[track_caller]
pub fn assert_same_tree(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    context: &str,
) {
    let mut diffs = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => diffs.push(format!("removed: {}", p.display())),
            Some(a) if a != b => diffs.push(format!("changed: {} {b:?} -> {a:?}", p.display())),
            Some(_) => {}
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("added: {}", p.display()));
    }
    assert!(
        diffs.is_empty(),
        "{context}: the lxc_path changed:\n  {}",
        diffs.join("\n  ")
    );
}

/// The lines of a config file whose key is `key`.
pub fn lines_with_key<'a>(config: &'a str, key: &str) -> Vec<&'a str> {
    config
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with('#') && t.split_once('=').is_some_and(|(k, _)| k.trim() == key)
        })
        .collect()
}

/// Says why a test is skipped, on the real stderr: the harness captures `println!`, and a
/// skip must show in CI's output.
pub fn skip(why: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{why}");
}
