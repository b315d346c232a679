//! Bad input through the CLI: each case must fail with a clear message on stderr naming the
//! option and the value, exit 2 for invalid options (1 for runtime failures found before the
//! host is touched), and leave the lxc_path byte-for-byte as it was.
//!
//! The lxc_path of each case already holds one stopped container (made by lxcform when root;
//! written by hand otherwise), so "unchanged" means something: a run that wrote a lock file,
//! a config line or a half-made container would show up in the snapshot.

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use common::{
    assert_same_tree, is_root, lxcform, snapshot_tree, unique, Failure, TempLxcPath, NO_NET,
};

/// Exit code of invalid options.
const USAGE: i32 = 2;
/// Exit code of a failed run.
const FAILED: i32 = 1;

/// A temporary lxc_path holding one stopped container, `existing`.
struct Fixture {
    lxc: TempLxcPath,
    existing: String,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        let lxc = TempLxcPath::new(test);
        let existing = unique("existing");
        if is_root() {
            lxc.stopped_container(&existing);
        } else {
            // Without root no container can be made; a defined-looking one serves the snapshot.
            let dir = lxc.path().join(&existing);
            fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
            fs::write(
                dir.join("config"),
                format!(
                    "lxc.uts.name = {existing}\nlxc.rootfs.path = dir:{}/rootfs\n",
                    dir.display()
                ),
            )
            .unwrap();
        }
        Fixture { lxc, existing }
    }

    /// `ensure NAME -P PATH -t busybox --config-line=lxc.net.0.type=empty EXTRA...`.
    fn ensure(&self, name: impl AsRef<OsStr>, extra: &[&str]) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["ensure".into(), name.as_ref().into()];
        a.extend(self.lxc.arg());
        a.extend(["-t".into(), "busybox".into(), NO_NET.into()]);
        a.extend(extra.iter().map(OsString::from));
        a
    }

    /// Runs `args` and checks exit code, stderr and that nothing changed.
    #[track_caller]
    fn rejects(&self, args: Vec<OsString>, code: i32, needles: &[&str]) -> common::Run {
        let before = snapshot_tree(self.lxc.path());
        let pwned_before = Path::new("/tmp/pwned").exists();
        let r = lxcform(&args);
        assert_eq!(r.code, code, "exit code of {args:?}: {r:#?}");
        assert!(
            r.stdout.is_empty(),
            "nothing on stdout for {args:?}: {r:#?}"
        );
        assert!(
            !r.stderr.trim().is_empty(),
            "an error on stderr for {args:?}"
        );
        for needle in needles {
            assert!(
                r.stderr.contains(needle),
                "stderr for {args:?} should contain {needle:?}: {:?}",
                r.stderr
            );
        }
        assert!(
            !r.stderr.contains("panicked"),
            "a panic is not an error message: {r:#?}"
        );
        assert_same_tree(
            &before,
            &snapshot_tree(self.lxc.path()),
            &format!("{args:?}"),
        );
        assert_eq!(
            Path::new("/tmp/pwned").exists(),
            pwned_before,
            "nothing ran a shell"
        );
        if is_root() {
            assert_eq!(self.lxc.lxc_state(&self.existing), "STOPPED");
            assert_eq!(self.lxc.lxc_ls(), std::slice::from_ref(&self.existing));
        }
        r
    }
}

/// A bad name is rejected with exit 2, naming `name` and showing the value.
#[track_caller]
fn bad_name(test: &str, name: &str, shown: &str, extra: &[&str]) {
    let f = Fixture::new(test);
    f.rejects(f.ensure(name, extra), USAGE, &["name", shown]);
}

#[test]
fn name_with_a_slash_is_rejected() {
    bad_name("name-slash", "a/b", "\"a/b\"", &[]);
}

#[test]
fn name_dot_dot_with_state_absent_destroys_nothing() {
    bad_name("name-dotdot", "..", "\"..\"", &["--state", "absent"]);
}

#[test]
fn name_dot_is_rejected() {
    bad_name("name-dot", ".", "\".\"", &["--state", "absent"]);
}

#[test]
fn empty_name_is_rejected() {
    bad_name("name-empty", "", "must not be empty", &[]);
}

#[test]
fn name_with_a_semicolon_is_rejected() {
    bad_name(
        "name-semicolon",
        "a;touch /tmp/pwned",
        "a;touch /tmp/pwned",
        &[],
    );
}

#[test]
fn name_with_command_substitution_runs_nothing() {
    let marker = std::env::temp_dir().join(format!("lxcform-pwned-{}", unique("subst")));
    let name = format!("$(touch {})", marker.display());
    bad_name("name-subst", &name, &name, &[]);
    bad_name(
        "name-subst-pwned",
        "$(touch /tmp/pwned)",
        "$(touch /tmp/pwned)",
        &[],
    );
    assert!(!marker.exists(), "the name was run by a shell");
}

#[test]
fn name_with_backticks_runs_nothing() {
    let marker = std::env::temp_dir().join(format!("lxcform-pwned-{}", unique("backtick")));
    let name = format!("`touch {}`", marker.display());
    bad_name("name-backtick", &name, &name, &[]);
    assert!(!marker.exists(), "the name was run by a shell");
}

#[test]
fn name_with_a_space_is_rejected() {
    bad_name("name-space", "a b", "\"a b\"", &[]);
}

#[test]
fn name_starting_with_a_dash_is_rejected() {
    let f = Fixture::new("name-dash");
    let mut args = f.ensure("placeholder", &["--"]);
    args.remove(1);
    args.push("-x".into());
    f.rejects(
        args,
        USAGE,
        &["name", "\"-x\"", "must start with a letter, a digit or '_'"],
    );
}

#[test]
fn name_of_300_characters_is_rejected() {
    let long = "x".repeat(300);
    bad_name("name-long", &long, "300 bytes", &[]);
}

#[test]
fn name_with_a_control_character_is_shown_escaped_once() {
    // Shown as Rust escapes it, once: "a\u{1}b" (not "a\\u{1}b").
    bad_name("name-ctrl", "a\u{1}b", "\"a\\u{1}b\"", &[]);
}

#[test]
fn name_that_is_not_utf8_names_the_argument_and_the_bytes() {
    let f = Fixture::new("name-utf8");
    let name = OsString::from_vec(b"a\xffb".to_vec());
    let r = f.rejects(f.ensure(&name, &[]), USAGE, &["a\\xFFb"]);
    assert!(r.stderr.to_lowercase().contains("name"), "{r:#?}");
}

#[test]
fn facts_with_a_bad_name_is_rejected() {
    let f = Fixture::new("facts-name");
    let mut args: Vec<OsString> = vec!["facts".into(), "../etc".into()];
    args.extend(f.lxc.arg());
    f.rejects(args, USAGE, &["name", "\"../etc\""]);
}

#[test]
fn unknown_state_lists_the_states() {
    let f = Fixture::new("state");
    f.rejects(
        f.ensure(&f.existing, &["--state", "running"]),
        USAGE,
        &["state", "running", "started, stopped, restarted"],
    );
}

#[test]
fn unknown_state_with_json_is_a_json_failure() {
    let f = Fixture::new("state-json");
    let before = snapshot_tree(f.lxc.path());
    let mut args = f.ensure(&f.existing, &["--state", "bogus"]);
    args.push("--json".into());
    let r = lxcform(&args);
    assert_eq!(r.code, USAGE, "{r:#?}");
    let fail: Failure = r.json();
    assert!(fail.failed);
    assert!(
        fail.msg.contains("state") && fail.msg.contains("bogus"),
        "{fail:?}"
    );
    assert!(fail.command.is_none());
    assert_same_tree(&before, &snapshot_tree(f.lxc.path()), "--json");
}

#[test]
fn unknown_backing_store_lists_the_stores() {
    let f = Fixture::new("store");
    f.rejects(
        f.ensure(&f.existing, &["-B", "nfs"]),
        USAGE,
        &["backing_store", "nfs", "overlayfs"],
    );
}

#[test]
fn config_line_without_equals_is_rejected() {
    let f = Fixture::new("cfg-noeq");
    f.rejects(
        f.ensure(&f.existing, &["--config-line", "lxc.tty.max"]),
        USAGE,
        &["container_config", "\"lxc.tty.max\"", "key=value"],
    );
}

#[test]
fn unknown_config_key_is_rejected() {
    let f = Fixture::new("cfg-nosuch");
    f.rejects(
        f.ensure(&f.existing, &["--config-line", "lxc.nosuch=1"]),
        USAGE,
        &["container_config", "lxc.nosuch"],
    );
}

#[test]
fn config_key_outside_lxc_namespace_is_rejected() {
    let f = Fixture::new("cfg-prefix");
    f.rejects(
        f.ensure(&f.existing, &["--config-line", "foo=bar"]),
        USAGE,
        &["container_config", "foo=bar"],
    );
}

#[test]
fn invalid_gateway_value_is_rejected_before_it_is_written() {
    let f = Fixture::new("cfg-gateway");
    f.rejects(
        f.ensure(
            &f.existing,
            &["--config-line", "lxc.net.0.ipv4.gateway=10.0.0.x"],
        ),
        USAGE,
        &["container_config", "10.0.0.x", "gateway"],
    );
}

#[test]
fn single_valued_key_given_twice_is_rejected() {
    let f = Fixture::new("cfg-twice");
    f.rejects(
        f.ensure(
            &f.existing,
            &["--config-line=lxc.tty.max=1", "--config-line=lxc.tty.max=2"],
        ),
        USAGE,
        &["container_config", "lxc.tty.max", "single-valued"],
    );
}

#[test]
fn config_line_with_a_newline_cannot_inject_a_second_line() {
    let f = Fixture::new("cfg-newline");
    f.rejects(
        f.ensure(
            &f.existing,
            &["--config-line", "lxc.tty.max=1\nlxc.init.cmd=/bin/pwn"],
        ),
        USAGE,
        &["container_config", "several lines"],
    );
}

#[test]
fn store_option_for_another_store_is_rejected() {
    let f = Fixture::new("vg-on-dir");
    f.rejects(
        f.ensure("newone", &["-B", "dir", "--vg-name", "vg0"]),
        USAGE,
        &["vg_name", "backing_store dir"],
    );
}

#[test]
fn garbage_fs_size_is_rejected() {
    let f = Fixture::new("fs-size");
    f.rejects(
        f.ensure("newone", &["-B", "loop", "--fs-size", "lots"]),
        USAGE,
        &["fs_size", "\"lots\""],
    );
    f.rejects(
        f.ensure("newone", &["-B", "loop", "--fs-size", "0"]),
        USAGE,
        &["fs_size", "\"0\""],
    );
}

#[test]
fn archive_without_archive_path_is_rejected() {
    let f = Fixture::new("archive-path");
    f.rejects(
        f.ensure(&f.existing, &["--archive"]),
        USAGE,
        &["archive_path"],
    );
}

#[test]
fn unknown_archive_compression_is_rejected() {
    let f = Fixture::new("archive-compression");
    f.rejects(
        f.ensure(
            &f.existing,
            &[
                "--archive",
                "--archive-path",
                "/tmp",
                "--archive-compression",
                "rar",
            ],
        ),
        USAGE,
        &["archive_compression", "rar"],
    );
}

#[test]
fn unknown_log_level_is_rejected() {
    let f = Fixture::new("log-level");
    f.rejects(
        f.ensure(
            &f.existing,
            &["--container-log", "--container-log-level", "trace"],
        ),
        USAGE,
        &["container_log_level", "trace"],
    );
}

#[test]
fn unterminated_quote_in_template_options_is_rejected() {
    let f = Fixture::new("template-options");
    f.rejects(
        f.ensure("newone", &["--template-options", "--release 'open"]),
        USAGE,
        &["template_options", "--release 'open"],
    );
}

#[test]
fn empty_template_is_rejected() {
    let f = Fixture::new("template-empty");
    let mut args = f.ensure("newone", &[]);
    args[5] = "".into();
    f.rejects(args, USAGE, &["template", "must not be empty"]);
}

#[test]
fn bad_clone_name_is_rejected() {
    let f = Fixture::new("clone-name");
    f.rejects(
        f.ensure(&f.existing, &["--clone-name", "a/b"]),
        USAGE,
        &["clone_name", "\"a/b\""],
    );
}

#[test]
fn unknown_flag_is_bad_usage() {
    let f = Fixture::new("flag");
    f.rejects(
        f.ensure(&f.existing, &["--nosuchflag"]),
        USAGE,
        &["--nosuchflag"],
    );
}

// Runtime failures found before the host is touched: exit 1, lxc_path unchanged.

#[test]
fn missing_template_fails_before_the_host_is_touched() {
    let f = Fixture::new("template-missing");
    let mut args = f.ensure("newone", &[]);
    args[5] = "lxcform-no-such-template".into();
    f.rejects(
        args,
        FAILED,
        &["template", "\"lxcform-no-such-template\"", "not found"],
    );
}

#[test]
fn a_template_that_is_not_executable_fails_before_the_host_is_touched() {
    let f = Fixture::new("template-noexec");
    let template = std::env::temp_dir().join(format!("lxcform-noexec-{}", unique("t")));
    fs::write(&template, "#!/bin/sh\nexit 0\n").unwrap();
    let mut args = f.ensure("newone", &[]);
    args[5] = template.clone().into();
    f.rejects(args, FAILED, &["cannot run the template", "not executable"]);
    let _ = fs::remove_file(&template);
}

#[test]
fn btrfs_store_outside_btrfs_fails_before_the_host_is_touched() {
    if !is_root() {
        common::skip(format_args!("SKIP: needs root"));
        return;
    }
    let f = Fixture::new("btrfs-not-btrfs");
    f.rejects(
        f.ensure("newone", &["-B", "btrfs"]),
        FAILED,
        &["backing_store btrfs", "not on a btrfs filesystem"],
    );
}

#[test]
fn lvm_store_without_device_mapper_fails_before_the_host_is_touched() {
    if !is_root() {
        common::skip(format_args!("SKIP: needs root"));
        return;
    }
    if Path::new("/dev/mapper/control").exists() {
        common::skip(format_args!("SKIP: the host has device-mapper"));
        return;
    }
    let f = Fixture::new("lvm-no-dm");
    f.rejects(
        f.ensure("newone", &["-B", "lvm", "--vg-name", "vg0"]),
        FAILED,
        &["backing_store lvm", "device-mapper"],
    );
}

#[test]
fn missing_config_file_fails_before_the_host_is_touched() {
    if !is_root() {
        common::skip(format_args!("SKIP: needs root"));
        return;
    }
    let f = Fixture::new("config-missing");
    let missing = f.lxc.path().join("no-such.conf");
    f.rejects(
        f.ensure("newone", &["--config", missing.to_str().unwrap()]),
        FAILED,
        &["config", missing.to_str().unwrap()],
    );
}

#[test]
fn apply_jobs_must_be_a_whole_number_of_at_least_one() {
    let f = Fixture::new("apply-jobs");
    let manifest = f.lxc.path().join("m.yml");
    fs::write(
        &manifest,
        format!(
            "containers:\n  - name: {}\n    template: busybox\n    lxc_path: {}\n",
            unique("jobs"),
            f.lxc.path().display()
        ),
    )
    .unwrap();
    for (jobs, why) in [
        ("0", "must be at least 1"),
        ("-1", "must be a whole number"),
        ("two", "must be a whole number"),
    ] {
        let args: Vec<OsString> = vec![
            "apply".into(),
            manifest.clone().into(),
            format!("--jobs={jobs}").into(),
        ];
        f.rejects(args, USAGE, &["--jobs", &format!("'{jobs}'"), why]);
    }
}

#[test]
fn apply_jobs_as_a_separate_argument_is_a_value_told_what_it_must_be() {
    let f = Fixture::new("apply-jobs-sep");
    let manifest = f.lxc.path().join("m.yml");
    fs::write(
        &manifest,
        format!(
            "containers:\n  - name: {}\n    template: busybox\n    lxc_path: {}\n",
            unique("jobs"),
            f.lxc.path().display()
        ),
    )
    .unwrap();
    // `-1` is the value of --jobs, not an unknown option; a whole number too large for
    // usize is too large, not "not a whole number".
    let too_large = format!("is too large (at most {})", usize::MAX);
    for (flag, jobs, why) in [
        ("--jobs", "-1", "must be a whole number, at least 1"),
        ("-j", "-1", "must be a whole number, at least 1"),
        (
            "--jobs",
            "-99999999999999999999999",
            "must be a whole number",
        ),
        ("--jobs", "0", "must be at least 1"),
        ("--jobs", "99999999999999999999999", too_large.as_str()),
        ("-j", "18446744073709551616", too_large.as_str()),
    ] {
        let args: Vec<OsString> = vec![
            "apply".into(),
            manifest.clone().into(),
            flag.into(),
            jobs.into(),
        ];
        let r = f.rejects(args, USAGE, &["--jobs", &format!("'{jobs}'"), why]);
        assert!(!r.stderr.contains("unexpected argument"), "{r:#?}");
    }
}
