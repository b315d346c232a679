//! How `lxcform` reads a manifest: empty manifests, defaults that apply only where they mean
//! something, problems placed at the option, relative paths taken from the manifest's
//! directory (planned from another directory, and applied with real busybox containers).

mod manifest_harness;

use std::path::Path;

use manifest_harness::{lxcform, run, skip_live, Invalid, Plan, TempDir, BIN};

/// Runs `lxcform` in `cwd` (through `env -C`, so that the harness's timeout holds).
fn lxcform_in(cwd: &str, args: &[&str]) -> manifest_harness::Run {
    let mut all = vec!["-C", cwd, BIN];
    all.extend_from_slice(args);
    run("env", &all)
}

#[test]
fn an_empty_or_all_commented_manifest_plans_nothing() {
    let dir = TempDir::new("load-empty");
    for (i, text) in [
        "",
        "# containers to come\n",
        "containers:\n#  - name: web1\n#  - name: web2\n",
        "defaults:\n  template: busybox\n",
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.manifest(&format!("m{i}.yml"), text);
        let plan: Plan = lxcform(&["plan", &file, "--json"]).code(0).json();
        assert!(plan.containers.is_empty(), "{text:?}: {plan:#?}");
        lxcform(&["apply", &file, "--detailed-exitcode"]).code(0);
    }
    // An unknown key is still an error.
    let file = dir.manifest("bad.yml", "containres: []\n");
    let r = lxcform(&["plan", &file]).code(2);
    assert!(
        r.stderr
            .contains(&format!("{file}:1:1: unknown field `containres`")),
        "{r:#?}"
    );
}

#[test]
fn store_options_of_defaults_apply_only_to_stores_that_take_them() {
    let dir = TempDir::new("load-store");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  backing_store: loop
  fs_size: 1G
  vg_name: vg0
containers:
  - name: on-loop
  - name: on-dir
    backing_store: dir
  - name: on-overlay
    backing_store: overlayfs
"
        ),
    );
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    assert_eq!((plan.changes, plan.errors), (3, 0), "{plan:#?}");
    assert!(!Path::new(&lxc).exists(), "plan created the lxc_path");
}

#[test]
fn problems_point_at_the_option_and_say_when_it_is_a_default() {
    let dir = TempDir::new("load-place");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  lxc_path: {lxc}
  archive_compression: rar
containers:
  - name: web1
    vg_name: foo
  - name: \"\"
  - name: web2
    clone_name: web3
  - name: web4
    clone_name: web3
"
        ),
    );
    let inv: Invalid = lxcform(&["plan", &file, "--json"]).code(2).json();
    let expect = [
        "3:24: web2 (from defaults): value of archive_compression must be one of",
        "6:14: web1: vg_name cannot be used with backing_store dir",
        "7:11: containers[1]: invalid name \"\"",
    ];
    assert_eq!(inv.problems.len(), expect.len(), "{inv:#?}");
    for (p, e) in inv.problems.iter().zip(expect) {
        assert!(p.starts_with(&format!("{file}:{e}")), "{p:?} is not {e:?}");
    }

    // Without the value problems, the clone made twice shows.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("  archive_compression: rar\n", "")
        .replace("    vg_name: foo\n", "")
        .replace("name: \"\"", "name: web5");
    let file = dir.manifest("m2.yml", &text);
    let inv: Invalid = lxcform(&["plan", &file, "--json"]).code(2).json();
    assert_eq!(
        inv.problems,
        [format!(
            "{file}:8:5: web4 -> web3: clone web3 is already made by the entry at line 6"
        )]
    );

    // And with them too.
    let file = dir.manifest("m3.yml", &text.replace("name: web5", "name: a/b"));
    let inv: Invalid = lxcform(&["plan", &file, "--json"]).code(2).json();
    assert_eq!(inv.problems.len(), 2, "{inv:#?}");
    assert!(
        inv.problems[1].contains("clone web3 is already made"),
        "{inv:#?}"
    );
}

#[test]
fn an_invalid_default_is_reported_with_no_containers() {
    let dir = TempDir::new("load-defaults");
    let file = dir.manifest("m.yml", "defaults:\n  state: runing\ncontainers: []\n");
    let r = lxcform(&["apply", &file]).code(2);
    assert!(
        r.stderr
            .contains(&format!("{file}:2:10: value of state must be one of")),
        "{r:#?}"
    );
}

#[test]
fn yaml_problems_are_told_in_the_users_words() {
    let dir = TempDir::new("load-words");
    let file = dir.manifest(
        "m.yml",
        "containers:\n  - name: a\n    vg_name: x\n    vg_name: y\n",
    );
    let r = lxcform(&["plan", &file]).code(2);
    assert!(
        r.stderr
            .contains(&format!("{file}:4:5: duplicate key vg_name")),
        "{r:#?}"
    );
    let file = dir.manifest("m2.yml", "containers: []\n---\ncontainers: []\n");
    let r = lxcform(&["plan", &file]).code(2);
    assert!(
        r.stderr.contains(&format!(
            "{file}:3:1: the file holds more than one YAML document"
        )),
        "{r:#?}"
    );
    for internal in ["Policy", "Options", "from_str"] {
        assert!(!r.stderr.contains(internal), "{r:#?}");
    }
}

#[test]
fn absent_containers_take_no_config_or_command_from_defaults() {
    let dir = TempDir::new("load-absent");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  container_config: [lxc.net.0.type=empty]
  container_command: echo hello
containers:
  - name: gone1
    state: absent
  - name: gone2
    state: absent
  - name: on
    container_log: 1
"
        ),
    );
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(3).json();
    let [gone1, gone2, on] = &plan.containers[..] else {
        panic!("{plan:#?}")
    };
    for gone in [gone1, gone2] {
        assert!(gone.warnings.is_empty(), "{gone:#?}");
        assert!(!gone.changed, "{gone:#?}");
    }
    assert!(on.changed, "{on:#?}");
}

#[test]
fn relative_paths_are_the_manifest_directorys_whatever_the_working_directory() {
    let dir = TempDir::new("load-relative");
    let elsewhere = dir.sub("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let file = dir.manifest(
        "m.yml",
        "defaults:\n  template: busybox\n  lxc_path: lp\ncontainers:\n  - name: a\n",
    );
    let want = std::fs::canonicalize(dir.path()).unwrap().join("lp");
    for (cwd, f) in [
        ("/", file.as_str()),
        (elsewhere.as_str(), "../m.yml"),
        (&*dir.path().display().to_string(), "m.yml"),
    ] {
        let plan: Plan = lxcform_in(cwd, &["plan", f, "--json"]).code(3).json();
        assert_eq!(plan.containers[0].lxc_path, want, "in {cwd}");
    }
}

#[test]
fn a_relative_lxc_path_is_applied_and_planned_from_another_directory() {
    if skip_live() {
        return;
    }
    let dir = TempDir::new("load-live");
    let elsewhere = dir.sub("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let name = format!("mfrel-{}", std::process::id());
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: lp
  container_config: [lxc.net.0.type=empty]
containers:
  - name: {name}
"
        ),
    );
    lxcform_in(&elsewhere, &["apply", "../m.yml"]).code(0);
    // lxc-info must name the lxc_path as lxcform does (liblxc's sockets are named after it).
    let lp = std::fs::canonicalize(dir.path()).unwrap().join("lp");
    let lp = lp.to_str().unwrap();
    assert_eq!(TempDir::lxc_state(lp, &name), "RUNNING");
    assert!(
        !Path::new(&elsewhere).join("lp").exists(),
        "lxc_path taken from the working directory"
    );
    // From another directory, the same container: nothing to do.
    let plan: Plan = lxcform_in("/", &["plan", &file, "--json"]).code(0).json();
    assert_eq!((plan.changes, plan.unchanged), (0, 1), "{plan:#?}");
    // The CLI spells `../lp` from `elsewhere` as the manifest does: it sees it running.
    let facts = lxcform_in(&elsewhere, &["facts", &name, "-P", "../lp", "--json"]).code(0);
    assert!(facts.stdout.contains("\"running\""), "{facts:#?}");
    lxcform_in(&elsewhere, &["ensure", &name, "-P", "../lp/", "--json"]).code(0);
}
