//! Reading a manifest: YAML through serde-saphyr into span-aware raw options, defaults merged
//! under each container, then [`SpecArgs::validate`] with every error placed in the file.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};

use super::{order, Entry, Manifest, ManifestError, Position, Problem};
use crate::config_file;
use crate::spec::{SpecArgs, SpecError};

impl Position {
    fn of(l: &Location) -> Position {
        Position {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// Declares the scalar options once: the raw struct, its names and its JSON form.
macro_rules! raw_options {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// The options of one container (or of `defaults`) as written, each with its place.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawOptions {
            $($field: Option<Spanned<$ty>>,)*
            container_config: Option<Vec<Spanned<String>>>,
        }

        impl RawOptions {
            /// Every option name a manifest entry takes.
            #[cfg(test)]
            const NAMES: &'static [&'static str] = &[$(stringify!($field),)* "container_config"];

            /// The scalar options given, as (name, JSON value, place).
            fn scalars(&self) -> Vec<(&'static str, Value, Position)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    out.push((stringify!($field), Value::from(v.value.clone()), Position::of(&v.referenced)));
                })*
                out
            }
        }
    };
}

raw_options! {
    name: String,
    template: String,
    template_options: String,
    config: String,
    backing_store: String,
    lv_name: String,
    vg_name: String,
    thinpool: String,
    fs_type: String,
    fs_size: String,
    directory: String,
    zfs_root: String,
    lxc_path: String,
    container_log: bool,
    container_log_level: String,
    container_command: String,
    state: String,
    clone_name: String,
    clone_snapshot: bool,
    archive: bool,
    archive_path: String,
    archive_compression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    defaults: Option<Spanned<RawOptions>>,
    containers: Vec<Spanned<RawOptions>>,
}

/// Options no default can give: they say which container an entry is.
const NOT_DEFAULTS: [&str; 2] = ["name", "clone_name"];

/// Where each merged option came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Entry,
    Defaults,
}

/// One container's options with the defaults merged in.
#[derive(Debug)]
struct Merged {
    args: Map<String, Value>,
    places: Vec<(&'static str, Position, From)>,
    lines: Vec<(String, Position, From)>,
    at: Position,
}

fn config_key(line: &str) -> Option<String> {
    let key = line.split_once('=')?.0.trim();
    Some(config_file::modern_key(key).unwrap_or_else(|| key.to_string()))
}

fn merge(defaults: Option<&RawOptions>, entry: &Spanned<RawOptions>) -> Merged {
    let mut m = Merged {
        args: Map::new(),
        places: Vec::new(),
        lines: Vec::new(),
        at: Position::of(&entry.referenced),
    };
    let own = entry.value.scalars();
    for (option, value, at) in defaults.map(RawOptions::scalars).unwrap_or_default() {
        if !own.iter().any(|(o, ..)| *o == option) {
            m.args.insert(option.into(), value);
            m.places.push((option, at, From::Defaults));
        }
    }
    for (option, value, at) in own {
        m.args.insert(option.into(), value);
        m.places.push((option, at, From::Entry));
    }
    let own_lines = entry.value.container_config.as_deref().unwrap_or_default();
    let set_here: BTreeSet<String> = own_lines
        .iter()
        .filter_map(|l| config_key(&l.value))
        .collect();
    let default_lines = defaults.and_then(|d| d.container_config.as_deref());
    for l in default_lines.unwrap_or_default() {
        let overridden = config_key(&l.value)
            .is_some_and(|k| set_here.contains(&k) && !config_file::is_multi_valued(&k));
        if !overridden {
            m.lines
                .push((l.value.clone(), Position::of(&l.referenced), From::Defaults));
        }
    }
    for l in own_lines {
        m.lines
            .push((l.value.clone(), Position::of(&l.referenced), From::Entry));
    }
    if defaults.is_some_and(|d| d.container_config.is_some())
        || entry.value.container_config.is_some()
    {
        let lines = m.lines.iter().map(|(l, ..)| Value::from(l.as_str()));
        m.args
            .insert("container_config".into(), Value::Array(lines.collect()));
    }
    m
}

/// Where an invalid option's value is: the option's own place (in the entry or in
/// `defaults`), else the entry's start.
fn place_of(err: &SpecError, m: &Merged) -> (Position, From) {
    let option = match err {
        SpecError::Choice { option, .. } | SpecError::Invalid { option, .. } => *option,
        SpecError::Missing(_) | SpecError::Conflict(_) => return (m.at, From::Entry),
    };
    if let (SpecError::Invalid { value, .. }, "container_config") = (err, option) {
        if let Some((_, at, from)) = m
            .lines
            .iter()
            .find(|(l, ..)| l.escape_debug().to_string() == *value)
        {
            return (*at, *from);
        }
    }
    m.places
        .iter()
        .find(|(o, ..)| *o == option)
        .map_or((m.at, From::Entry), |(_, at, from)| (*at, *from))
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Checks a manifest's text; `path` names it in errors. Reports every problem it finds.
pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    let invalid = |problems: Vec<Problem>| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let options = serde_saphyr::options! { with_snippet: false };
    let raw: RawManifest = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let at = e
            .location()
            .map_or(Position { line: 1, column: 1 }, |l| Position::of(&l));
        let message = serde_saphyr::MessageFormatter::format_message(
            &serde_saphyr::DefaultMessageFormatter,
            &e,
        );
        invalid(vec![Problem {
            at,
            container: None,
            message: message.into_owned(),
        }])
    })?;

    let mut problems = Vec::new();
    let defaults = raw.defaults.as_ref().map(|d| &d.value);
    if let Some(d) = defaults {
        for (option, _, at) in d.scalars() {
            if NOT_DEFAULTS.contains(&option) {
                problems.push(Problem {
                    at,
                    container: None,
                    message: format!("{option} cannot be a default: it names one container"),
                });
            }
        }
    }
    let mut entries = Vec::new();
    for (i, raw_entry) in raw.containers.iter().enumerate() {
        let m = merge(defaults, raw_entry);
        let label = match m.args.get("name") {
            Some(Value::String(n)) => n.clone(),
            _ => format!("containers[{i}]"),
        };
        let args = Value::Object(m.args.clone());
        let spec = serde_json::from_value::<SpecArgs>(args.clone())
            .map_err(|e| SpecError::Conflict(format!("internal: {e}")))
            .and_then(SpecArgs::validate);
        match spec {
            Ok(spec) => entries.push(Entry {
                at: m.at,
                spec,
                args,
                waits_for: Vec::new(),
            }),
            Err(e) => {
                let (at, from) = place_of(&e, &m);
                let container = match from {
                    From::Entry => label,
                    From::Defaults => format!("{label} (from defaults)"),
                };
                problems.push(Problem {
                    at,
                    container: Some(container),
                    message: e.to_string(),
                });
            }
        }
    }
    if problems.is_empty() {
        match order::waits(&entries) {
            Ok(waits) => {
                for (e, w) in entries.iter_mut().zip(waits) {
                    e.waits_for = w;
                }
            }
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.at);
        problems.dedup_by(|a, b| a.at == b.at && a.message == b.message);
        return Err(invalid(problems));
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DesiredState, OPTION_NAMES};

    fn ok(text: &str) -> Manifest {
        parse(text, Path::new("m.yml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("m.yml")) {
            Err(e @ ManifestError::Invalid { .. }) => {
                e.to_string().lines().map(String::from).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn every_module_option_is_a_manifest_option() {
        let mut ours: Vec<&str> = RawOptions::NAMES.to_vec();
        let mut module: Vec<&str> = OPTION_NAMES.to_vec();
        ours.sort_unstable();
        module.sort_unstable();
        assert_eq!(ours, module);
    }

    #[test]
    fn defaults_merge_under_each_container() {
        let m = ok("
defaults:
  template: busybox
  lxc_path: /tmp/mf
  state: stopped
  container_config:
    - lxc.net.0.type=empty
    - lxc.tty.max=4
    - lxc.cap.drop=sys_admin
containers:
  - name: a
  - name: b
    state: started
    container_config:
      - lxc.tty.max = 1
      - lxc.cap.drop=mknod
");
        let [a, b] = &m.entries[..] else {
            panic!("two entries")
        };
        assert_eq!(a.spec.template, "busybox");
        assert_eq!(a.spec.state, DesiredState::Stopped);
        assert_eq!(a.spec.lxc_path, Path::new("/tmp/mf"));
        assert_eq!(b.spec.state, DesiredState::Started);
        let lines: Vec<String> = b.spec.container_config.iter().map(|l| l.render()).collect();
        assert_eq!(
            lines,
            [
                "lxc.net.0.type = empty",
                "lxc.cap.drop = sys_admin",
                "lxc.tty.max = 1",
                "lxc.cap.drop = mknod"
            ]
        );
        assert_eq!(a.spec.container_config.len(), 3);
        assert_eq!(
            b.at,
            Position {
                line: 12,
                column: 5
            }
        );
    }

    #[test]
    fn unknown_keys_are_placed() {
        assert_eq!(
            problems("containers:\n  - name: a\n    stat: started\n"),
            ["m.yml:3:5: unknown field `stat`, expected one of name, template, template_options, config, backing_store, lv_name, vg_name, thinpool, fs_type, fs_size, directory, zfs_root, lxc_path, container_log, container_log_level, container_command, state, clone_name, clone_snapshot, archive, archive_path, archive_compression, container_config"]
        );
        let p = problems("defaults:\n  templat: busybox\ncontainers: []\n");
        assert!(
            p[0].starts_with("m.yml:2:3: unknown field `templat`"),
            "{p:?}"
        );
        let p = problems("container:\n  - name: a\n");
        assert!(
            p[0].starts_with("m.yml:1:1: unknown field `container`"),
            "{p:?}"
        );
    }

    #[test]
    fn wrong_types_are_placed() {
        let p = problems("containers:\n  - name: a\n    archive: maybe\n");
        assert_eq!(p, ["m.yml:3:14: invalid boolean"]);
        let p = problems("containers:\n  - name: [a]\n");
        assert_eq!(p, ["m.yml:2:11: expected string scalar"]);
    }

    #[test]
    fn ansible_booleans_and_numbers_are_accepted() {
        let m = ok("containers:\n  - name: no\n    lxc_path: /tmp/x\n    container_log: yes\n    backing_store: loop\n    fs_size: 1073741824\n");
        let s = &m.entries[0].spec;
        assert_eq!(s.name, "no");
        assert!(s.container_log.is_some());
        assert_eq!(s.storage.fs_size, Some(1 << 30));
    }

    #[test]
    fn every_invalid_value_is_reported_at_its_place() {
        let p = problems(
            "defaults:
  lxc_path: /tmp/x
  backing_store: nfs
containers:
  - name: ok1
    backing_store: dir
  - name: a/b
    backing_store: dir
  - name: c
    backing_store: dir
    state: running
  - name: d
  - name: e
    backing_store: dir
    container_config:
      - lxc.tty.max=1
      - nonsense
",
        );
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(
            p[0].starts_with(
                "m.yml:3:18: d (from defaults): value of backing_store must be one of"
            ),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("m.yml:7:11: a/b: invalid name \"a/b\""),
            "{p:?}"
        );
        assert!(p[2].starts_with("m.yml:11:12: c: value of state"), "{p:?}");
        assert!(
            p[3].starts_with("m.yml:17:9: e: invalid container_config \"nonsense\""),
            "{p:?}"
        );
    }

    #[test]
    fn name_cannot_be_a_default() {
        let p = problems("defaults:\n  name: x\n  clone_name: y\ncontainers: []\n");
        assert_eq!(
            p,
            [
                "m.yml:2:9: name cannot be a default: it names one container",
                "m.yml:3:15: clone_name cannot be a default: it names one container"
            ]
        );
    }

    #[test]
    fn yaml_syntax_errors_are_placed() {
        let p = problems("containers:\n  - name: a\n   bad: indent\n");
        assert!(p[0].starts_with("m.yml:3:4: "), "{p:?}");
        let p = problems("");
        assert!(p[0].starts_with("m.yml:1:1: "), "{p:?}");
    }

    #[test]
    fn an_empty_list_is_a_manifest_with_nothing_to_do() {
        assert!(ok("containers: []\n").entries.is_empty());
    }

    #[test]
    fn the_child_gets_the_merged_options() {
        let m = ok("defaults:\n  template: busybox\ncontainers:\n  - name: a\n    lxc_path: /tmp/x\n    archive: no\n");
        assert_eq!(
            m.entries[0].args,
            serde_json::json!({"template": "busybox", "name": "a", "lxc_path": "/tmp/x", "archive": false})
        );
    }
}
