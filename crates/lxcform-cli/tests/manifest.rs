//! `lxcform plan` and the checks `apply` makes before it touches anything: the binary run as a
//! process on manifests whose containers do not exist (no container is made).

mod manifest_harness;

use std::path::Path;

use manifest_harness::{lxcform, Action, ConfigChange, Invalid, Plan, State, TempDir};

const BAD: &str = "defaults:
  template: busybox
  lxc_path: LXC
containers:
  - name: web1
    stat: started
  - name: web2
";

#[test]
fn unknown_keys_are_reported_with_file_line_and_column_and_nothing_changes() {
    let dir = TempDir::new("unknown");
    let lxc = dir.sub("lxc");
    let file = dir.manifest("m.yml", &BAD.replace("LXC", &lxc));
    for verb in ["plan", "apply"] {
        let r = lxcform(&[verb, &file]).code(2);
        assert!(
            r.stderr.contains(&format!(
                "{file}:6:5: unknown field `stat`, expected one of"
            )),
            "{r:#?}"
        );
        assert!(r.stderr.contains("nothing was changed"), "{r:#?}");
    }
    assert!(!Path::new(&lxc).exists(), "apply created the lxc_path");
}

#[test]
fn every_invalid_value_is_reported_before_anything_changes() {
    let dir = TempDir::new("invalid");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
containers:
  - name: good
  - name: web1
    state: running
  - name: web2
    container_config:
      - lxc.tty.max=2
      - lxc.nonsense.key=1
  - name: web3
    archive: perhaps
"
        ),
    );
    // A type error stops the YAML reader: it alone is reported.
    let r = lxcform(&["apply", &file, "--json"]).code(2);
    let inv: Invalid = r.json();
    assert!(inv.failed);
    assert_eq!(inv.problems.len(), 1, "{inv:#?}");
    assert!(inv.problems[0].starts_with(&format!("{file}:13:14: invalid boolean")));

    // With the types right, every invalid value is reported, each at its place.
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("perhaps", "yes");
    std::fs::write(&file, text).unwrap();
    let r = lxcform(&["plan", &file, "--json"]).code(2);
    let inv: Invalid = r.json();
    assert_eq!(inv.problems.len(), 3, "{inv:#?}");
    assert!(
        inv.problems[0].starts_with(&format!("{file}:7:12: web1: value of state must be one of")),
        "{inv:#?}"
    );
    assert!(
        inv.problems[1].starts_with(&format!(
            "{file}:11:9: web2: invalid container_config \"lxc.nonsense.key=1\""
        )),
        "{inv:#?}"
    );
    assert!(
        inv.problems[2].starts_with(&format!(
            "{file}:12:5: web3: missing required option: archive_path"
        )),
        "{inv:#?}"
    );
    lxcform(&["apply", &file]).code(2);
    assert!(!Path::new(&lxc).exists(), "apply created the lxc_path");
}

#[test]
fn plan_json_shows_creates_config_and_order() {
    let dir = TempDir::new("plan");
    let lxc = dir.sub("lxc");
    let file = dir.manifest(
        "m.yml",
        &format!(
            "defaults:
  template: busybox
  lxc_path: {lxc}
  container_config: [lxc.net.0.type=empty, lxc.tty.max=4]
containers:
  - name: web2
    container_config: [lxc.tty.max=1]
  - name: web1
    state: stopped
    clone_name: web2
    clone_snapshot: yes
    backing_store: overlayfs
  - name: gone
    state: absent
"
        ),
    );
    let r = lxcform(&["plan", &file, "--json"]).code(3);
    let plan: Plan = r.json();
    assert_eq!((plan.changes, plan.unchanged, plan.errors), (2, 1, 0));
    let [web2, web1, gone] = &plan.containers[..] else {
        panic!("{plan:#?}")
    };
    assert_eq!((web1.name.as_str(), web1.line), ("web1", 8));
    assert_eq!(web1.action, Action::Create);
    assert_eq!(web1.clone.as_deref(), Some("web2"));
    assert_eq!((web1.before, web1.after), (State::Absent, State::Stopped));
    assert_eq!(web1.steps[0], "create");
    assert!(
        web1.steps.last().unwrap().starts_with("clone to web2"),
        "{web1:#?}"
    );
    assert!(web1.config.contains(&ConfigChange::Add {
        key: "lxc.tty.max".into(),
        value: "4".into()
    }));
    // The clone's entry waits for the entry that makes it and is planned on its result.
    assert_eq!(web2.waits_for, ["web1"]);
    assert!(web2.predicted);
    assert_eq!(web2.before, State::Stopped);
    assert_eq!(
        web2.config,
        [ConfigChange::Replace {
            key: "lxc.tty.max".into(),
            value: "1".into(),
            old: "4".into()
        }]
    );
    assert_eq!(web2.after, State::Running);
    assert_eq!(gone.action, Action::None);
    assert!(!gone.changed);

    // Human output tells the same; `apply --check` is `plan`.
    let r = lxcform(&["apply", "--check", &file]).code(3);
    assert!(
        r.stdout.contains("Plan: 2 to change, 1 unchanged."),
        "{r:#?}"
    );
    assert!(!r.stdout.contains("\x1b["), "no colour off a terminal");
    assert!(!Path::new(&lxc).exists(), "plan created the lxc_path");
}

#[test]
fn an_empty_manifest_has_nothing_to_change() {
    let dir = TempDir::new("empty");
    let file = dir.manifest("m.yml", "containers: []\n");
    let plan: Plan = lxcform(&["plan", &file, "--json"]).code(0).json();
    assert_eq!(plan.containers.len(), 0);
    lxcform(&["apply", &file, "--detailed-exitcode"]).code(0);
}

#[test]
fn a_missing_manifest_is_an_error() {
    let r = lxcform(&["plan", "/nonexistent/lxcform.yml"]).code(2);
    assert!(
        r.stderr
            .contains("cannot read manifest /nonexistent/lxcform.yml"),
        "{r:#?}"
    );
}
