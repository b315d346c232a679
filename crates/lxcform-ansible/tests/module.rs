//! Binary tests of `lxc_container`: an args file in, exactly one JSON object out, parsed with
//! types defined here so that a change of the module's contract breaks a test.
//!
//! Live tests (a real busybox container in a temporary lxc_path) need root and the busybox
//! template; without them they print why and pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_lxc_container");

/// The module's result, as Ansible reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleResult {
    #[serde(default)]
    changed: bool,
    #[serde(default)]
    failed: bool,
    msg: Option<String>,
    lxc_container: Option<ContainerFacts>,
    rc: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
    diff: Option<AnsibleDiff>,
    #[serde(default)]
    warnings: Vec<String>,
    log: Option<Vec<String>>,
    invocation: Option<Invocation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContainerFacts {
    name: String,
    state: String,
    init_pid: i64,
    interfaces: Vec<String>,
    ips: Vec<String>,
    archive: Option<String>,
    cloned: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnsibleDiff {
    before: String,
    after: String,
    before_header: Option<String>,
    after_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invocation {
    module_args: Map<String, Value>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/tmp/{prefix}-{}-{n}", std::process::id()))
}

/// Runs the module with `args` as its args file; checks that stdout is one JSON object.
fn run(args: &Value) -> (ModuleResult, i32) {
    let file = unique("lxc_container-args");
    std::fs::write(&file, args.to_string()).unwrap();
    let out = Command::new(BIN).arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "exactly one line on stdout: {stdout:?}"
    );
    let result: ModuleResult = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not the module's JSON ({e}): {stdout:?}"));
    let code = out.status.code().unwrap_or(-1);
    assert_eq!(
        code == 0,
        !result.failed,
        "exit status {code} for {result:?}"
    );
    (result, code)
}

fn failure_msg(args: &Value) -> String {
    let (r, _) = run(args);
    assert!(r.failed, "expected a failure: {r:?}");
    r.msg.unwrap_or_default()
}

/// A temporary lxc_path whose containers are destroyed on drop.
struct LxcPath(PathBuf);

impl LxcPath {
    /// `None` (with the reason printed) when live tests cannot run here.
    fn new(test: &str) -> Option<LxcPath> {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
            .unwrap_or(false);
        if !root || !Path::new("/usr/share/lxc/templates/lxc-busybox").exists() {
            eprintln!("skipping {test}: needs root and the busybox LXC template");
            return None;
        }
        Some(LxcPath(unique("lxcform-ansible-test")))
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn exists(&self, name: &str) -> bool {
        self.0.join(name).join("config").exists()
    }
}

impl Drop for LxcPath {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.0) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                for tool in [&["lxc-stop", "-k"][..], &["lxc-destroy", "-f"][..]] {
                    let _ = Command::new(tool[0])
                        .args(&tool[1..])
                        .args(["-P", self.path(), "-n", &name])
                        .output();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn unknown_option_fails_like_ansible_module() {
    let msg = failure_msg(&json!({"name": "c1", "colour": "red", "_ansible_check_mode": true}));
    assert!(
        msg.starts_with("Unsupported parameters for (lxc_container) module: colour. Supported parameters include: archive, archive_compression,"),
        "{msg}"
    );
    // Internal keys Ansible may add are not options.
    let (r, _) = run(
        &json!({"name": "c1", "template": "busybox", "lxc_path": "/tmp/lxcform-none",
        "_ansible_check_mode": true, "_ansible_new_thing": 1, "_ansible_verbosity": 3}),
    );
    assert!(!r.failed, "{r:?}");
}

#[test]
fn booleans_are_coerced_like_ansible() {
    for v in [
        json!(true),
        json!("yes"),
        json!("True"),
        json!("1"),
        json!("on"),
        json!(1),
    ] {
        let (r, _) = run(
            &json!({"name": "c1", "template": "busybox", "lxc_path": "/tmp/lxcform-none",
            "container_log": v, "_ansible_check_mode": true}),
        );
        assert!(!r.failed, "{v}: {r:?}");
        assert_eq!(
            r.invocation.unwrap().module_args["container_log"],
            json!(true)
        );
    }
    let msg = failure_msg(&json!({"name": "c1", "container_log": "maybe"}));
    assert!(
        msg.starts_with("argument 'container_log' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean. Valid booleans include: "),
        "{msg}"
    );
    let msg = failure_msg(&json!({"name": "c1", "template": ["a"]}));
    assert!(
        msg.starts_with(
            "argument 'template' is of type list and we were unable to convert to str: "
        ),
        "{msg}"
    );
}

#[test]
fn bad_choices_name_the_option_and_the_choices() {
    let msg = failure_msg(&json!({"name": "c1", "state": "running"}));
    assert_eq!(
        msg,
        "value of state must be one of: started, stopped, restarted, absent, frozen, clone, got: running"
    );
    for (opt, bad) in [
        ("backing_store", "nfs"),
        ("archive_compression", "rar"),
        ("container_log_level", "trace"),
    ] {
        let msg = failure_msg(&json!({"name": "c1", opt: bad}));
        assert!(
            msg.starts_with(&format!("value of {opt} must be one of:")),
            "{msg}"
        );
        assert!(msg.ends_with(&format!("got: {bad}")), "{msg}");
    }
}

#[test]
fn bad_and_missing_names_fail_before_anything_runs() {
    for bad in ["a/b", "$(id)", "", "-x"] {
        let msg = failure_msg(&json!({"name": bad}));
        assert!(msg.contains("name"), "{bad:?}: {msg}");
    }
    assert_eq!(
        failure_msg(&json!({"state": "started"})),
        "missing required arguments: name"
    );
    assert_eq!(
        failure_msg(&json!({"name": null})),
        "missing required arguments: name"
    );
}

#[test]
fn archive_without_archive_path_fails_like_required_if() {
    assert_eq!(
        failure_msg(&json!({"name": "c1", "archive": "yes"})),
        "archive is True but all of the following are missing: archive_path"
    );
}

#[test]
fn ansible_module_args_shape_is_accepted() {
    let (r, code) = run(
        &json!({"ANSIBLE_MODULE_ARGS": {"name": "c1", "template": "busybox",
        "lxc_path": "/tmp/lxcform-none", "_ansible_check_mode": true}}),
    );
    assert_eq!(code, 0, "{r:?}");
    assert!(r.changed);
    assert_eq!(r.lxc_container.unwrap().state, "absent");
}

#[test]
fn defaults_are_the_documented_ones_and_store_defaults_fit_any_store() {
    // vg_name/fs_type/fs_size spelled out at their defaults must not fail with backing_store dir.
    let (r, _) = run(
        &json!({"name": "c1", "template": "busybox", "lxc_path": "~/lxcform-none",
        "vg_name": "lxc", "fs_type": "ext4", "fs_size": "5G", "_ansible_check_mode": true}),
    );
    assert!(!r.failed, "{r:?}");
    let args = r.invocation.unwrap().module_args;
    for (k, v) in [
        ("state", json!("started")),
        ("backing_store", json!("dir")),
        ("container_log_level", json!("INFO")),
        ("archive_compression", json!("gzip")),
        ("archive", json!(false)),
        ("clone_snapshot", json!(false)),
    ] {
        assert_eq!(args[k], v, "{k}");
    }
    let home = std::env::var("HOME").unwrap();
    assert_eq!(
        args["lxc_path"],
        json!(format!("{}/lxcform-none", home.trim_end_matches('/')))
    );
    // A real store-specific option for the wrong store is reported.
    let msg = failure_msg(&json!({"name": "c1", "vg_name": "vg0"}));
    assert!(
        msg.contains("vg_name cannot be used with backing_store dir"),
        "{msg}"
    );
}

/// Runs the module in check mode on a container that does not exist, with `extra` options.
fn check_run(extra: Value) -> ModuleResult {
    let mut args = json!({"name": "c1", "template": "busybox", "lxc_path": "/tmp/lxcform-none",
        "_ansible_check_mode": true});
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    run(&args).0
}

#[test]
fn no_log_returns_the_real_values() {
    // AnsibleModule only keeps a no_log invocation out of syslog; the result is the real one
    // (Ansible hides what it displays), so a registered result can be used.
    let r = check_run(
        json!({"name": "topsecret1", "container_config": ["lxc.tty.max=7"],
        "_ansible_no_log": "yes", "_ansible_diff": true}),
    );
    assert!(!r.failed, "{r:?}");
    assert_eq!(r.lxc_container.unwrap().name, "topsecret1");
    assert!(r.diff.unwrap().after.contains("lxc.tty.max = 7"));
    let args = r.invocation.unwrap().module_args;
    assert_eq!(args["name"], json!("topsecret1"));
    assert_eq!(args["lxc_path"], json!("/tmp/lxcform-none"));
    let msg = failure_msg(&json!({"name": "TOPSECRET/x", "_ansible_no_log": true}));
    assert!(msg.contains("TOPSECRET/x"), "{msg}");
}

#[test]
fn empty_strings_are_options_not_given() {
    // `"{{ x | default('') }}"`: the Python module leaves '' out of lxc-create and lxc-copy.
    for opt in [
        "clone_name",
        "config",
        "directory",
        "template_options",
        "container_command",
        "archive_path",
        "lv_name",
        "vg_name",
        "thinpool",
        "fs_type",
        "fs_size",
        "zfs_root",
    ] {
        let r = check_run(json!({ opt: "" }));
        assert!(!r.failed, "{opt}: {r:?}");
        // invocation shows the value as given, as AnsibleModule's does (lv_name: see below).
        if opt != "lv_name" {
            assert_eq!(r.invocation.unwrap().module_args[opt], json!(""), "{opt}");
        }
    }
    // Null is the same.
    let r = check_run(json!({"clone_name": null, "directory": null, "zfs_root": null}));
    assert!(!r.failed, "{r:?}");
    // All of them at once, with archive false: still nothing but a plain create.
    let r = check_run(
        json!({"clone_name": "", "config": "", "directory": "", "archive": false,
        "archive_path": "", "lv_name": "", "vg_name": "", "thinpool": "", "fs_size": "",
        "zfs_root": "", "container_config": ""}),
    );
    assert!(!r.failed && r.changed, "{r:?}");
    assert!(r.lxc_container.unwrap().cloned.is_none());
}

#[test]
fn an_empty_template_is_the_default_one() {
    let r = check_run(json!({"template": ""}));
    let msg = r.msg.unwrap_or_default();
    // Hosts without the ubuntu template refuse it by name; none refuse the empty string.
    assert!(!r.failed || msg.contains("\"ubuntu\""), "{msg}");
}

#[test]
fn an_empty_lxc_path_is_the_default_one() {
    // Checked without touching the default lxc_path: a later check of the spec reports.
    // (lxc_path is checked before the store options.)
    let msg = failure_msg(&json!({"name": "c1", "lxc_path": "", "vg_name": "vg0"}));
    assert!(
        msg.contains("vg_name cannot be used with backing_store dir"),
        "{msg}"
    );
}

#[test]
fn empty_strings_that_are_required_stay_required() {
    assert_eq!(
        failure_msg(&json!({"name": "c1", "archive": true, "archive_path": ""})),
        "archive is True but all of the following are missing: archive_path"
    );
    let msg = failure_msg(&json!({"name": "c1", "state": "clone", "clone_name": ""}));
    assert!(msg.contains("clone_name"), "{msg}");
    // A store option with a value is still refused for the wrong store.
    let msg = failure_msg(&json!({"name": "c1", "zfs_root": "tank/lxc"}));
    assert!(
        msg.contains("zfs_root cannot be used with backing_store dir"),
        "{msg}"
    );
    // The name, choices and bools are not free-form: '' is an error, as in the Python module.
    assert!(failure_msg(&json!({"name": ""})).contains("name"));
    assert!(failure_msg(&json!({"name": "c1", "state": ""})).starts_with("value of state"));
    assert!(failure_msg(&json!({"name": "c1", "archive": ""})).contains("not a valid boolean"));
}

#[test]
fn a_config_string_in_the_2015_form_is_a_list() {
    for config in [
        json!("['lxc.tty.max=6', 'lxc.pty.max=3']"),
        json!(r#"["lxc.tty.max=6", "lxc.pty.max=3"]"#),
        json!("lxc.tty.max=6\nlxc.pty.max=3\n"),
        json!(["lxc.tty.max=6\nlxc.pty.max=3"]),
    ] {
        let r = check_run(json!({"container_config": config, "_ansible_diff": true}));
        assert!(!r.failed, "{config}: {r:?}");
        let after = r.diff.unwrap().after;
        assert!(
            after.contains("lxc.tty.max = 6") && after.contains("lxc.pty.max = 3"),
            "{config}: {after}"
        );
    }
    let msg = failure_msg(&json!({"name": "c1", "container_config": "['lxc.tty.max=6' 'x']"}));
    assert!(
        msg.starts_with("argument 'container_config' is of type str and we were unable to convert to list: cannot read \"['lxc.tty.max=6' 'x']\""),
        "{msg}"
    );
}

#[test]
fn argument_failures_carry_the_invocation() {
    let (r, _) = run(
        &json!({"name": "c1", "container_log": "maybe", "lxc_path": "~root/p",
        "colour": "red", "_ansible_check_mode": true}),
    );
    assert!(r.failed, "{r:?}");
    let args = r.invocation.expect("invocation").module_args;
    // As AnsibleModule shows them: the refused value as typed, the others converted, the
    // defaults, unknown keys, and lv_name not yet defaulted to the name.
    assert_eq!(args["container_log"], json!("maybe"));
    assert_eq!(args["lxc_path"], json!("/root/p"));
    assert_eq!(args["colour"], json!("red"));
    assert_eq!(args["state"], json!("started"));
    assert_eq!(args["lv_name"], Value::Null);
    assert!(!args.contains_key("_ansible_check_mode"));
    // A run (even a failed one) shows lv_name as the Python module sets it: the name.
    for lv in [json!(null), json!("")] {
        let r = check_run(json!({ "lv_name": lv }));
        assert_eq!(r.invocation.unwrap().module_args["lv_name"], json!("c1"));
    }
    let (r, _) = run(&json!({"name": "c1", "vg_name": "vg0"}));
    assert!(r.failed);
    assert_eq!(r.invocation.unwrap().module_args["lv_name"], json!("c1"));
}

#[test]
fn argument_checks_run_in_ansible_module_order() {
    // required, types (in the Python module's argument_spec order), choices (same),
    // required_if, unsupported.
    for (args, start) in [
        (
            json!({"colour": "red", "state": "x"}),
            "missing required arguments: name",
        ),
        (
            json!({"name": "c1", "state": "x", "archive": true}),
            "value of state must be one of",
        ),
        (
            json!({"name": "c1", "colour": "red", "state": "x"}),
            "value of state must be one of",
        ),
        (
            json!({"name": "c1", "colour": "red", "archive": true}),
            "archive is True but",
        ),
        (
            json!({"name": "c1", "state": "x", "backing_store": "x"}),
            "value of backing_store",
        ),
        (
            json!({"name": "c1", "archive_compression": "x", "container_log_level": "x"}),
            "value of container_log_level",
        ),
        (
            json!({"name": "c1", "state": "x", "archive": "maybe"}),
            "argument 'archive'",
        ),
        (
            json!({"name": "c1", "container_log": "maybe", "container_config": {"a": 1}}),
            "argument 'container_config'",
        ),
        (
            json!({"name": "c1", "archive": "maybe", "clone_snapshot": "maybe"}),
            "argument 'clone_snapshot'",
        ),
        // The library's own checks come after all of AnsibleModule's.
        (
            json!({"name": "a/b", "state": "x"}),
            "value of state must be one of",
        ),
    ] {
        let msg = failure_msg(&args);
        assert!(msg.starts_with(start), "{args}: {msg}");
    }
    // Unknown options ignored on request: the next problem is reported.
    let msg = failure_msg(&json!({"name": "c1", "colour": "red", "state": "x",
        "_ansible_ignore_unknown_opts": true}));
    assert!(msg.starts_with("value of state"), "{msg}");
}

#[test]
fn check_mode_changes_nothing_on_the_host() {
    let Some(lxc) = LxcPath::new("check_mode_changes_nothing_on_the_host") else {
        return;
    };
    let args = |extra: Value| {
        let mut a = json!({"name": "chk1", "template": "busybox", "lxc_path": lxc.path(),
            "container_config": ["lxc.net.0.type=empty"]});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let (r, _) = run(&args(
        json!({"_ansible_check_mode": true, "_ansible_diff": true}),
    ));
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(r.lxc_container.as_ref().unwrap().state, "absent");
    let diff = r.diff.unwrap();
    assert!(diff.before.starts_with("state = absent"), "{diff:?}");
    assert!(diff.after.starts_with("state = running"), "{diff:?}");
    assert!(diff.after.contains("lxc.net.0.type = empty"), "{diff:?}");
    assert!(diff.before_header.is_some() && diff.after_header.is_some());
    assert!(!lxc.exists("chk1"), "check mode created the container");

    // Create it stopped for real (the template's output must not reach stdout: run() checks).
    let (r, _) = run(&args(json!({"state": "stopped"})));
    assert!(r.changed && !r.failed, "{r:?}");
    assert!(lxc.exists("chk1"));
    let (r, _) = run(&args(json!({"state": "stopped"})));
    assert!(!r.changed, "second run changed: {r:?}");

    // Check mode start: reports a change, the container stays stopped.
    let (r, _) = run(&args(
        json!({"_ansible_check_mode": true, "_ansible_diff": true,
        "container_config": ["lxc.net.0.type=empty", "lxc.tty.max=3"]}),
    ));
    assert!(r.changed, "{r:?}");
    let diff = r.diff.unwrap();
    assert!(diff.before.starts_with("state = stopped"), "{diff:?}");
    assert!(diff.after.contains("lxc.tty.max = 3") && !diff.before.contains("lxc.tty.max = 3"));
    let (r, _) = run(&args(
        json!({"state": "stopped", "_ansible_check_mode": true}),
    ));
    assert!(!r.changed, "{r:?}");
    assert_eq!(r.lxc_container.unwrap().state, "stopped");
    let config = std::fs::read_to_string(lxc.0.join("chk1/config")).unwrap();
    assert!(
        !config.contains("lxc.tty.max = 3"),
        "check mode wrote the config"
    );

    // Absent in check mode: the container stays.
    let (r, _) = run(&args(
        json!({"state": "absent", "_ansible_check_mode": true}),
    ));
    assert!(r.changed, "{r:?}");
    assert!(lxc.exists("chk1"));
    let (r, _) = run(&args(json!({"state": "absent"})));
    assert!(r.changed && !lxc.exists("chk1"), "{r:?}");
}

#[test]
fn command_results_are_returned_and_a_failing_command_fails() {
    let Some(lxc) = LxcPath::new("command_results_are_returned_and_a_failing_command_fails") else {
        return;
    };
    let base = json!({"name": "cmd1", "template": "busybox", "lxc_path": lxc.path(),
        "container_config": "lxc.net.0.type=empty", "state": "stopped"});
    let with = |cmd: &str| {
        let mut a = base.clone();
        a["container_command"] = json!(cmd);
        a
    };
    let (r, _) = run(&with("echo out; echo err >&2"));
    assert!(r.changed && !r.failed, "{r:?}");
    assert_eq!(
        (r.rc, r.stdout.as_deref(), r.stderr.as_deref()),
        (Some(0), Some("out\n"), Some("err\n"))
    );
    let c = r.lxc_container.unwrap();
    assert_eq!((c.state.as_str(), c.init_pid), ("stopped", -1));
    assert!(c.interfaces.is_empty() && c.ips.is_empty(), "{c:?}");
    assert!(c.archive.is_none() && c.cloned.is_none());
    let (r, code) = run(&with("echo partial; exit 3"));
    assert_eq!(code, 1);
    assert!(r.failed && r.rc == Some(3), "{r:?}");
    assert_eq!(r.stdout.as_deref(), Some("partial\n"));
    assert!(r.msg.unwrap().contains("exited with status 3"));
    assert!(r.lxc_container.is_some() && r.log.is_none() && r.warnings.is_empty());
}

/// Options, types and defaults documented in `lxc_container.yml`, read with a small scanner
/// (the file keeps two-space indentation): `(name, type, default)`.
fn documented_options() -> Vec<(String, String, Option<String>)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lxc_container.yml")).unwrap();
    let mut out: Vec<(String, String, Option<String>)> = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if line == "  options:" {
            inside = true;
            continue;
        }
        if !inside || text.is_empty() {
            continue;
        }
        if indent <= 2 {
            break;
        }
        if indent == 4 {
            out.push((text.trim_end_matches(':').into(), String::new(), None));
        } else if indent == 6 {
            let last = out.last_mut().unwrap();
            if let Some(t) = text.strip_prefix("type: ") {
                last.1 = t.into();
            } else if let Some(d) = text.strip_prefix("default: ") {
                last.2 = Some(d.into());
            }
        }
    }
    out
}

#[test]
fn documentation_options_match_the_parser() {
    let doc = documented_options();
    let mut names: Vec<&str> = doc.iter().map(|o| o.0.as_str()).collect();
    names.sort_unstable();
    // The parser's list, as it reports it for an unknown option.
    let msg = failure_msg(&json!({"name": "c1", "zzz": 1}));
    let supported = msg
        .split("Supported parameters include: ")
        .nth(1)
        .unwrap()
        .trim_end_matches('.');
    assert_eq!(names.join(", "), supported);
    let mut library = lxcform::spec::OPTION_NAMES.to_vec();
    library.sort_unstable();
    assert_eq!(names, library);

    // Defaults: what the parser fills in for a task that sets only a name.
    let (r, _) = run(&json!({"name": "c1", "template": "busybox",
        "lxc_path": "/tmp/lxcform-none", "_ansible_check_mode": true}));
    let params = r.invocation.unwrap().module_args;
    for (name, ty, default) in &doc {
        let parsed = &params[name.as_str()];
        let expected = match (name.as_str(), default) {
            ("name", _) => json!("c1"),
            // Documented as defaulting to the name; the Python module fills it in so.
            ("lv_name", _) => json!("c1"),
            ("template", _) => json!("busybox"),
            ("lxc_path", _) => json!("/tmp/lxcform-none"),
            (_, None) => Value::Null,
            (_, Some(d)) if ty == "bool" => json!(d == "true"),
            (_, Some(d)) => json!(d),
        };
        assert_eq!(parsed, &expected, "default of {name}");
    }

    // Types: each documented type converts as it should.
    for (name, ty, _) in &doc {
        let (value, expected) = match ty.as_str() {
            "bool" => (json!("yes"), json!(true)),
            "path" => (json!("~root/p"), json!("/root/p")),
            "list" => (json!("lxc.tty.max=1"), json!(["lxc.tty.max=1"])),
            "str" => (json!(5), json!("5")),
            other => panic!("{name}: undocumented type {other:?}"),
        };
        let mut args = json!({"name": "c1", "lxc_path": "/tmp/lxcform-none",
            "archive_path": "/tmp/lxcform-none", "_ansible_check_mode": true});
        args[name.as_str()] = value;
        let (r, _) = run(&args);
        if let Some(inv) = r.invocation {
            assert_eq!(inv.module_args[name.as_str()], expected, "{name}: {ty}");
        } else {
            panic!("{name}: {:?}", r.msg);
        }
    }
}

/// Runs the module with `args` and extra environment, returning its result once its stdout
/// reaches end-of-file, and how long that took.
fn run_env(args: &Value, env: &[(&str, &str)]) -> (ModuleResult, std::time::Duration) {
    let file = unique("lxc_container-args");
    std::fs::write(&file, args.to_string()).unwrap();
    let started = std::time::Instant::now();
    // `timeout` bounds a hang: without it a regression would stall the whole suite.
    let out = Command::new("timeout")
        .arg("60")
        .arg(BIN)
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let took = started.elapsed();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let r = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not the module's JSON ({e}): {stdout:?} {:?}", out.status));
    (r, took)
}

/// What the module starts inside the container behaves as it would under `lxc-attach`: it
/// gets the module's environment (as the Python module's `attach_wait` passes it, so a task's
/// `environment:` reaches it) and SIGPIPE's default action (Rust ignores SIGPIPE, and an
/// ignored signal survives exec: `yes | head -1` would never end).
#[test]
fn container_command_gets_the_environment_and_default_sigpipe() {
    let Some(lxc) = LxcPath::new("container_command_gets_the_environment_and_default_sigpipe")
    else {
        return;
    };
    let args = json!({"name": "env1", "template": "busybox", "lxc_path": lxc.path(),
        "container_config": "lxc.net.0.type=empty", "state": "stopped",
        "container_command": "echo \"proxy=$http_proxy\"; yes | head -1; grep SigIgn /proc/self/status"});
    let (r, _) = run_env(&args, &[("http_proxy", "http://proxy.example:3128")]);
    assert!(!r.failed, "{r:?}");
    let stdout = r.stdout.unwrap_or_default();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("proxy=http://proxy.example:3128"));
    assert_eq!(lines.next(), Some("y"));
    let ignored = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    let mask = u64::from_str_radix(ignored, 16).unwrap_or(u64::MAX);
    const SIGPIPE: u32 = 13;
    assert_eq!(mask & (1 << (SIGPIPE - 1)), 0, "SIGPIPE ignored: {stdout}");
}

/// What a template leaves running must not hold the caller's stdout open: the module's
/// copies of its standard descriptors are close-on-exec, so Ansible reads the result as
/// soon as the module ends, not when the template's leftovers do.
#[test]
fn a_template_leftover_does_not_hold_the_modules_stdout_open() {
    let Some(lxc) = LxcPath::new("a_template_leftover_does_not_hold_the_modules_stdout_open")
    else {
        return;
    };
    std::fs::create_dir_all(&lxc.0).unwrap();
    let template = lxc.0.join("lxc-lingering");
    std::fs::write(
        &template,
        "#!/bin/sh\n(sleep 29.871 </dev/null >/dev/null 2>&1 &)\nexec /usr/share/lxc/templates/lxc-busybox \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &template,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let args = json!({"name": "linger1", "template": template, "lxc_path": lxc.path(),
        "container_config": "lxc.net.0.type=empty", "state": "stopped"});
    let (r, took) = run_env(&args, &[]);
    assert!(r.changed && !r.failed, "{r:?}");
    let _ = Command::new("pkill").args(["-f", "sleep 29.871"]).status();
    assert!(
        took < std::time::Duration::from_secs(20),
        "stdout stayed open for {took:?}, as long as the template's leftover"
    );
}

/// A descriptor the module's caller left open does not reach `container_command` inside the
/// container (liblxc's attach does not close what its caller holds).
#[test]
fn an_inherited_descriptor_does_not_reach_the_container() {
    use std::os::unix::process::CommandExt;
    let Some(lxc) = LxcPath::new("an_inherited_descriptor_does_not_reach_the_container") else {
        return;
    };
    let args = json!({"name": "fd1", "template": "busybox", "lxc_path": lxc.path(),
        "container_config": "lxc.net.0.type=empty", "state": "stopped",
        "container_command": "ls /proc/self/fd | tr '\\n' ' '"});
    let file = unique("lxc_container-args");
    std::fs::write(&file, args.to_string()).unwrap();
    let dir = std::fs::File::open("/").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg(&file);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    // SAFETY: between fork and exec only dup2 runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 77) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_file(&file);
    let r: ModuleResult = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!r.failed, "{r:?}");
    let fds = r.stdout.unwrap_or_default();
    assert!(
        !fds.split_whitespace().any(|f| f == "77"),
        "the host's / reached the container as fd 77: {fds}"
    );
}

/// Stopped by a signal (Ansible's timeout, say), the module still answers with one JSON
/// object — where it stopped, what the command did — and then ends by the signal.
#[test]
fn a_signal_is_answered_in_json_then_ends_the_module() {
    use std::os::unix::process::ExitStatusExt;
    let Some(lxc) = LxcPath::new("a_signal_is_answered_in_json_then_ends_the_module") else {
        return;
    };
    let args = json!({"name": "sig1", "template": "busybox", "lxc_path": lxc.path(),
        "container_config": "lxc.net.0.type=empty", "state": "stopped",
        "container_command": "sleep 2; echo slept"});
    let file = unique("lxc_container-args");
    std::fs::write(&file, args.to_string()).unwrap();
    let child = Command::new(BIN)
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let running = || {
        Command::new("lxc-info")
            .args(["-P", lxc.path(), "-n", "sig1", "-sH"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"RUNNING"))
    };
    while !running() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill with a child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    let r: ModuleResult = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r.failed, "{r:?}");
    assert!(
        r.msg
            .as_deref()
            .unwrap_or_default()
            .contains("stopped by SIGTERM before stop"),
        "{r:?}"
    );
    assert_eq!(r.stdout.as_deref(), Some("slept\n"), "{r:?}");
}
