//! Reading a manifest: YAML through serde-saphyr into span-aware raw options, defaults merged
//! under each container (where they apply), then [`SpecArgs::validate`] with every error
//! placed in the file.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use serde_saphyr::{Location, MessageFormatter, Spanned};

use super::{order, Entry, Manifest, ManifestError, Position, Problem};
use crate::config_file;
use crate::spec::{SpecArgs, SpecError};
use crate::store::{self, Store, StoreOption};

impl Position {
    fn of(l: &Location) -> Position {
        Position {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// A boolean as Ansible takes one: `true`/`false`, `yes`/`no`, `on`/`off`, `y`/`n`, `t`/`f`
/// in any case, and `1`/`0` (Ansible's `boolean()`); a manifest written for Ansible works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flag(bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        struct Visitor;
        const WORDS: &str = "use true/false, yes/no, on/off or 1/0";
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Flag, E> {
                match v {
                    0 | 1 => Ok(Flag(v == 1)),
                    _ => Err(E::custom(format!("invalid boolean {v}; {WORDS}"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Flag, E> {
                match v {
                    0 | 1 => Ok(Flag(v == 1)),
                    _ => Err(E::custom(format!("invalid boolean {v}; {WORDS}"))),
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Flag, E> {
                if v == 0.0 || v == 1.0 {
                    Ok(Flag(v == 1.0))
                } else {
                    Err(E::custom(format!("invalid boolean {v}; {WORDS}")))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Flag, E> {
                crate::spec::parse_bool(v)
                    .map(Flag)
                    .ok_or_else(|| E::custom(format!("invalid boolean {v:?}; {WORDS}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl std::convert::From<Flag> for Value {
    fn from(f: Flag) -> Value {
        Value::Bool(f.0)
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
    container_log: Flag,
    container_log_level: String,
    container_command: String,
    state: String,
    clone_name: String,
    clone_snapshot: Flag,
    archive: Flag,
    archive_path: String,
    archive_compression: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    defaults: Option<Spanned<RawOptions>>,
    // `containers:` with every entry commented out is null: no containers, as `[]` is.
    #[serde(default)]
    containers: Option<Vec<Spanned<RawOptions>>>,
}

/// Options no default can give: they say which container an entry is.
const NOT_DEFAULTS: [&str; 2] = ["name", "clone_name"];

/// Options naming a file or directory. A relative one is taken from the manifest's directory,
/// so that a manifest means the same containers whatever directory lxcform runs in (and
/// liblxc, which cannot start a container in a relative lxc_path, is given an absolute one).
/// `template` is a path only when it contains a `/` (else it names a template).
const PATH_OPTIONS: [&str; 4] = ["lxc_path", "config", "directory", "archive_path"];

/// The store-specific options; which store takes which is [`store::StoreInfo::options`].
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

/// What decides which defaults apply to one entry.
struct Fit {
    /// The entry's store; `None` when `backing_store` is no store (validation reports that,
    /// and every default is kept).
    store: Option<Store>,
    /// Whether the entry makes a clone.
    clone: bool,
    /// Whether the entry's state is absent.
    absent: bool,
}

impl Fit {
    fn of(args: &Map<String, Value>) -> Fit {
        let text = |option: &str| args.get(option).and_then(Value::as_str);
        Fit {
            store: text("backing_store").map_or(Some(Store::Dir), Store::parse),
            clone: args.contains_key("clone_name"),
            absent: text("state") == Some("absent"),
        }
    }

    /// Whether a default for `option` applies. A store's options apply to entries on that
    /// store, and `fs_size` to every entry making a clone too (it sizes a block-backed
    /// clone): the rule of [`SpecArgs::validate`], so that no default it accepts is dropped.
    /// An absent container has no config to write and nothing to run a command in.
    fn takes(&self, option: &str) -> bool {
        if let Some(o) = StoreOption::parse(option) {
            return self.store.is_none_or(|s| s.info().options.contains(&o))
                || (o == StoreOption::FsSize && self.clone);
        }
        !(self.absent && matches!(option, "container_config" | "container_command"))
    }
}

fn config_key(line: &str) -> Option<String> {
    let key = line.split_once('=')?.0.trim();
    Some(config_file::modern_key(key).unwrap_or_else(|| key.to_string()))
}

/// The manifest's directory, absolute: relative paths in it are taken from there. Its real
/// path when it exists, so that `../m.yml` and `m.yml` mean the same containers.
fn manifest_dir(path: &Path) -> PathBuf {
    let Some(dir) = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return PathBuf::new();
    };
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// Makes the value of a path option absolute, from `base` (see [`PATH_OPTIONS`]).
fn resolve(option: &str, value: &mut Value, base: &Path) {
    let Value::String(s) = value else { return };
    let is_path = PATH_OPTIONS.contains(&option) || (option == "template" && s.contains('/'));
    // `~` is the home directory (validation expands it); an empty value is reported as such.
    let home = s == "~" || s.starts_with("~/");
    if !is_path || home || s.is_empty() || Path::new(s.as_str()).is_absolute() {
        return;
    }
    // Spelled as the CLI and the module spell a path given relative to the current directory.
    if let Some(j) = crate::spec::absolute_in(base, Path::new(s.as_str())).to_str() {
        *s = j.to_string();
    }
}

fn merge(defaults: Option<&RawOptions>, entry: &Spanned<RawOptions>, base: &Path) -> Merged {
    let own = entry.value.scalars();
    let mut scalars: Vec<(&'static str, Value, Position, From)> = Vec::new();
    for (option, value, at) in defaults.map(RawOptions::scalars).unwrap_or_default() {
        // Defaults for `name` or `clone_name` are reported; merged, they would rename entries.
        if !own.iter().any(|(o, ..)| *o == option) && !NOT_DEFAULTS.contains(&option) {
            scalars.push((option, value, at, From::Defaults));
        }
    }
    scalars.extend(own.into_iter().map(|(o, v, at)| (o, v, at, From::Entry)));
    for (option, value, ..) in &mut scalars {
        resolve(option, value, base);
    }
    let fit = Fit::of(
        &scalars
            .iter()
            .map(|(o, v, ..)| ((*o).to_string(), v.clone()))
            .collect(),
    );
    // What the entry itself sets is kept, right or wrong for it: validation judges that.
    scalars.retain(|(option, _, _, from)| *from == From::Entry || fit.takes(option));

    let mut m = Merged {
        args: Map::new(),
        places: Vec::new(),
        lines: Vec::new(),
        at: Position::of(&entry.referenced),
    };
    for (option, value, at, from) in scalars {
        m.args.insert(option.into(), value);
        m.places.push((option, at, from));
    }
    let own_lines = entry.value.container_config.as_deref();
    let set_here: BTreeSet<String> = own_lines
        .unwrap_or_default()
        .iter()
        .filter_map(|l| config_key(&l.value))
        .collect();
    let default_lines = defaults
        .and_then(|d| d.container_config.as_deref())
        .filter(|_| fit.takes("container_config"));
    for l in default_lines.unwrap_or_default() {
        let overridden = config_key(&l.value)
            .is_some_and(|k| set_here.contains(&k) && !config_file::is_multi_valued(&k));
        if !overridden {
            m.lines
                .push((l.value.clone(), Position::of(&l.referenced), From::Defaults));
        }
    }
    for l in own_lines.unwrap_or_default() {
        m.lines
            .push((l.value.clone(), Position::of(&l.referenced), From::Entry));
    }
    if default_lines.is_some() || own_lines.is_some() {
        let lines = m.lines.iter().map(|(l, ..)| Value::from(l.as_str()));
        m.args
            .insert("container_config".into(), Value::Array(lines.collect()));
    }
    m
}

/// Where an invalid option's value is: the option's own place (in the entry or in
/// `defaults`), else the entry's start.
fn place_of(err: &SpecError, m: &Merged) -> (Position, From) {
    let place = |option: &str| {
        m.places
            .iter()
            .find(|(o, ..)| *o == option)
            .map(|(_, at, from)| (*at, *from))
    };
    let found = match err {
        SpecError::Invalid {
            option: "container_config",
            value,
            ..
        } => m
            .lines
            .iter()
            .find(|(l, ..)| l.escape_debug().to_string() == *value)
            .map(|(_, at, from)| (*at, *from)),
        SpecError::Choice { option, .. } | SpecError::Invalid { option, .. } => place(option),
        // Several options in one conflict: the first in the file.
        SpecError::Conflict { options, .. } => options
            .iter()
            .filter_map(|o| place(o))
            .min_by_key(|(at, _)| *at),
        SpecError::Missing(_) => None,
    };
    found.unwrap_or((m.at, From::Entry))
}

/// The store [`SpecArgs::validate`] judges a default store option on: one that takes it.
fn store_taking(option: &str) -> Option<Store> {
    let o = StoreOption::parse(option)?;
    store::CHOICES
        .iter()
        .filter_map(|c| Store::parse(c))
        .find(|s| s.info().options.contains(&o))
}

fn validate(args: Map<String, Value>) -> Result<crate::spec::ContainerSpec, SpecError> {
    serde_json::from_value::<SpecArgs>(Value::Object(args))
        .map_err(|e| SpecError::Conflict {
            options: Vec::new(),
            message: format!("internal: {e}"),
        })
        .and_then(SpecArgs::validate)
}

/// The problems of `defaults`, each value judged alone, so that an invalid default is reported
/// even when no entry uses it (or there are no entries).
fn check_defaults(d: &RawOptions, base: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |at, message| {
        problems.push(Problem {
            at,
            container: None,
            message,
        })
    };
    for (option, mut value, at) in d.scalars() {
        if NOT_DEFAULTS.contains(&option) {
            push(
                at,
                format!("{option} cannot be a default: it names one container"),
            );
            continue;
        }
        // A boolean is checked by its type; validating `container_log` would set liblxc's
        // log level.
        if value.is_boolean() {
            continue;
        }
        resolve(option, &mut value, base);
        let mut args = Map::new();
        args.insert("name".into(), "defaults".into());
        if let Some(s) = store_taking(option) {
            args.insert("backing_store".into(), s.as_str().into());
        }
        args.insert(option.into(), value);
        // Only the value's own problem: combinations are judged per entry.
        if let Err(
            e @ (SpecError::Choice { option: o, .. } | SpecError::Invalid { option: o, .. }),
        ) = validate(args)
        {
            if o == option {
                push(at, e.to_string());
            }
        }
    }
    for line in d.container_config.iter().flatten() {
        if let Err(e) = config_file::parse_lines(std::slice::from_ref(&line.value)) {
            push(Position::of(&line.referenced), e.to_string());
        }
    }
    problems
}

/// The YAML reader's messages in a manifest writer's words: serde-saphyr's own advice names
/// its API (`DuplicateKeyPolicy`, `from_str_multiple`), which means nothing to them.
struct Messages;

impl MessageFormatter for Messages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> Cow<'a, str> {
        use serde_saphyr::Error as E;
        match err {
            E::WithSnippet { error, .. } | E::AliasError { error, .. } => {
                self.format_message(error)
            }
            E::DuplicateMappingKey { key: Some(k), .. } => format!("duplicate key {k}").into(),
            E::DuplicateMappingKey { key: None, .. } => "duplicate key".into(),
            E::MultipleDocuments { .. } => "the file holds more than one YAML document".into(),
            E::Unexpected { expected, .. } => match *expected {
                "sequence start" => "expected a list".into(),
                "mapping start" => "expected a mapping (key: value)".into(),
                "string scalar" | "scalar" => "expected a single value".into(),
                other => format!("expected {other}").into(),
            },
            E::TaggedScalarCannotDeserializeIntoString { .. } => {
                "a tagged value cannot be used here; write it without its tag".into()
            }
            _ => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Checks a manifest's text; `path` names it in errors, and relative paths in it are taken
/// from `path`'s directory. Reports every problem it finds.
pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    let invalid = |problems: Vec<Problem>| ManifestError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let options = serde_saphyr::options! { with_snippet: false };
    // An empty file (or one of comments only) is a null document: nothing to do.
    let raw: Option<RawManifest> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let at = e
                .location()
                .map_or(Position { line: 1, column: 1 }, |l| Position::of(&l));
            invalid(vec![Problem {
                at,
                container: None,
                message: Messages.format_message(&e).into_owned(),
            }])
        })?;
    let raw = raw.unwrap_or_default();
    let base = manifest_dir(path);

    let mut problems = Vec::new();
    let defaults = raw.defaults.as_ref().map(|d| &d.value);
    let mut entries = Vec::new();
    for (i, raw_entry) in raw.containers.iter().flatten().enumerate() {
        let m = merge(defaults, raw_entry, &base);
        let label = match m.args.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => format!("containers[{i}]"),
        };
        let args = Value::Object(m.args.clone());
        match validate(m.args.clone()) {
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
    // After the entries': an invalid default an entry uses is reported as that entry's.
    if let Some(d) = defaults {
        problems.extend(check_defaults(d, &base));
    }
    // Among the valid entries, whatever is wrong with others.
    match order::waits(&entries) {
        Ok(waits) => {
            for (e, w) in entries.iter_mut().zip(waits) {
                e.waits_for = w;
            }
        }
        Err(p) => problems.extend(p),
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.at);
        let mut seen = BTreeSet::new();
        problems.retain(|p| seen.insert((p.at, p.message.clone())));
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
    use crate::store::Store;

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
        assert_eq!(
            p,
            ["m.yml:3:14: invalid boolean \"maybe\"; use true/false, yes/no, on/off or 1/0"]
        );
        let p = problems("containers:\n  - name: [a]\n");
        assert_eq!(p, ["m.yml:2:11: expected a single value"]);
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
        let p = problems("containers:\n  - name: 'a\n");
        assert_eq!(p, ["m.yml:2:11: unclosed quote"]);
    }

    #[test]
    fn an_empty_manifest_is_one_with_nothing_to_do() {
        for text in [
            "",
            "\n",
            "# nothing yet\n",
            "---\n",
            "containers:\n",
            "containers:\n#  - name: a\n#  - name: b\n",
            "containers: []\n",
            "defaults:\n  template: busybox\n",
        ] {
            assert!(ok(text).entries.is_empty(), "{text:?}");
        }
        let p = problems("contaners:\n  - name: a\n");
        assert!(
            p[0].starts_with("m.yml:1:1: unknown field `contaners`"),
            "{p:?}"
        );
    }

    #[test]
    fn store_options_in_defaults_apply_where_the_store_takes_them() {
        let m = ok("defaults:
  lxc_path: /tmp/x
  backing_store: loop
  fs_size: 1G
  fs_type: xfs
containers:
  - name: a
  - name: b
    backing_store: dir
");
        let [a, b] = &m.entries[..] else {
            panic!("two entries")
        };
        assert_eq!(a.spec.storage.fs_size, Some(1 << 30));
        assert_eq!(a.spec.storage.fs_type.as_deref(), Some("xfs"));
        assert_eq!(b.spec.storage.store, Store::Dir);
        assert_eq!(b.spec.storage.fs_size, None);
        assert_eq!(b.spec.storage.fs_type, None);
        // The child validates again from these.
        assert_eq!(
            b.args,
            serde_json::json!({"name": "b", "lxc_path": "/tmp/x", "backing_store": "dir"})
        );

        let m = ok("defaults:
  lxc_path: /tmp/x
  vg_name: vg0
  thinpool: tp
  zfs_root: tank/lxc
  directory: /srv/rootfs
containers:
  - name: l
    backing_store: lvm
  - name: z
    backing_store: zfs
  - name: o
    backing_store: overlayfs
  - name: d
");
        let [l, z, o, d] = &m.entries[..] else {
            panic!("four entries")
        };
        fn stores(e: &Entry) -> (Option<&str>, Option<&str>, Option<&str>, Option<&Path>) {
            let s = &e.spec.storage;
            (
                s.vg_name.as_deref(),
                s.thinpool.as_deref(),
                s.zfs_root.as_deref(),
                s.directory.as_deref(),
            )
        }
        assert_eq!(stores(l), (Some("vg0"), Some("tp"), None, None));
        assert_eq!(stores(z), (None, None, Some("tank/lxc"), None));
        assert_eq!(stores(o), (None, None, None, None));
        assert_eq!(
            stores(d),
            (None, None, None, Some(Path::new("/srv/rootfs")))
        );
    }

    #[test]
    fn a_default_fs_size_applies_to_every_entry_making_a_clone() {
        // As SpecArgs::validate: with clone_name, fs_size is the size of a block-backed clone,
        // whatever backing_store says.
        let m = ok("defaults:
  lxc_path: /tmp/x
  fs_size: 2G
containers:
  - name: o
    clone_name: c
  - name: p
    clone_name: q
    backing_store: dir
  - name: plain
");
        let [o, p, plain] = &m.entries[..] else {
            panic!("three entries")
        };
        assert_eq!(o.spec.clone.as_ref().unwrap().fs_size, Some(2 << 30));
        assert_eq!(p.spec.clone.as_ref().unwrap().fs_size, Some(2 << 30));
        assert_eq!(plain.spec.storage.fs_size, None);
        assert!(plain.args.get("fs_size").is_none(), "{:?}", plain.args);
    }

    #[test]
    fn a_store_option_the_entry_sets_for_another_store_stays_an_error() {
        let p = problems(
            "defaults:
  lxc_path: /tmp/x
  backing_store: loop
containers:
  - name: b
    backing_store: dir
    fs_size: 1G
",
        );
        assert_eq!(
            p,
            ["m.yml:7:14: b: fs_size cannot be used with backing_store dir: fs_size is for loop, lvm"]
        );
    }

    #[test]
    fn conflicts_point_at_the_option() {
        let p = problems("containers:\n  - name: a\n    lxc_path: /tmp/x\n    vg_name: foo\n");
        assert_eq!(
            p,
            ["m.yml:4:14: a: vg_name cannot be used with backing_store dir: vg_name is for lvm"]
        );
        // Two of them: the first in the file.
        let p = problems(
            "containers:\n  - name: a\n    lxc_path: /tmp/x\n    thinpool: t\n    lv_name: l\n",
        );
        assert!(
            p[0].starts_with("m.yml:4:15: a: lv_name, thinpool cannot be used"),
            "{p:?}"
        );
        let p = problems("containers:\n  - name: a\n    lxc_path: /tmp/x\n    clone_name: a\n");
        assert_eq!(
            p,
            ["m.yml:4:17: a: clone_name \"a\" is the container's own name"]
        );
        // What a conflict does not name is placed at the entry.
        let p = problems("containers:\n  - name: a\n    lxc_path: /tmp/x\n    archive: yes\n");
        assert_eq!(
            p,
            ["m.yml:2:5: a: missing required option: archive_path (archive is true)"]
        );
    }

    #[test]
    fn relative_paths_are_taken_from_the_manifest_directory() {
        let m = parse(
            "defaults:
  lxc_path: lp
  template: tpl/lxc-mine
  config: ./conf/base.conf
containers:
  - name: a
    archive: yes
    archive_path: ../archives/
  - name: b
    lxc_path: /abs/lxc
    template: busybox
    directory: roots/../b
  - name: c
    lxc_path: ~/lxc
",
            Path::new("/srv/mf/m.yml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let [a, b, c] = &m.entries[..] else {
            panic!("three entries")
        };
        assert_eq!(a.spec.lxc_path, Path::new("/srv/mf/lp"));
        assert_eq!(a.args["lxc_path"], "/srv/mf/lp", "the child's too");
        assert_eq!(a.spec.template, "/srv/mf/tpl/lxc-mine");
        assert_eq!(
            a.spec.config.as_deref(),
            Some(Path::new("/srv/mf/conf/base.conf"))
        );
        assert_eq!(
            a.spec.archive.as_ref().unwrap().path,
            Path::new("/srv/archives")
        );
        assert_eq!(b.spec.lxc_path, Path::new("/abs/lxc"));
        assert_eq!(b.spec.template, "busybox");
        assert_eq!(
            b.spec.storage.directory.as_deref(),
            Some(Path::new("/srv/mf/roots/../b")),
            "a `..` behind a directory of the user's may be behind a symlink"
        );
        // `~` is the home directory, not a directory named `~`.
        assert_eq!(c.args["lxc_path"], "~/lxc");

        // A manifest named relative to the working directory.
        let m = ok("containers:\n  - name: a\n    lxc_path: lp\n");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(m.entries[0].spec.lxc_path, cwd.join("lp"));
    }

    #[test]
    fn an_absent_entry_takes_no_config_or_command_from_defaults() {
        let m = ok("defaults:
  lxc_path: /tmp/x
  container_config: [lxc.tty.max=2]
  container_command: echo hi
containers:
  - name: gone
    state: absent
  - name: here
  - name: gone2
    state: absent
    container_config: [lxc.tty.max=1]
");
        let [gone, here, gone2] = &m.entries[..] else {
            panic!("three entries")
        };
        assert!(gone.spec.container_config.is_empty());
        assert_eq!(gone.spec.container_command, None);
        assert_eq!(
            gone.args,
            serde_json::json!({"name": "gone", "lxc_path": "/tmp/x", "state": "absent"})
        );
        assert_eq!(here.spec.container_config.len(), 1);
        assert_eq!(here.spec.container_command.as_deref(), Some("echo hi"));
        let lines: Vec<String> = gone2
            .spec
            .container_config
            .iter()
            .map(|l| l.render())
            .collect();
        assert_eq!(lines, ["lxc.tty.max = 1"], "the entry's own lines stay");

        // state absent from defaults: the same.
        let m = ok("defaults:\n  lxc_path: /tmp/x\n  state: absent\n  container_command: echo hi\ncontainers:\n  - name: a\n");
        assert_eq!(m.entries[0].spec.container_command, None);
        // A command the entry sets itself is ignored with a warning, as with the module.
        let m = ok("defaults:\n  lxc_path: /tmp/x\n  state: absent\ncontainers:\n  - name: a\n    container_command: 'true'\n");
        assert_eq!(
            m.entries[0].spec.warnings,
            ["container_command is ignored with state absent"]
        );
    }

    #[test]
    fn parser_messages_are_in_the_users_words() {
        assert_eq!(
            problems("containers:\n  - name: a\n    vg_name: x\n    vg_name: y\n"),
            ["m.yml:4:5: duplicate key vg_name"]
        );
        assert_eq!(
            problems("containers: []\n---\ncontainers: []\n"),
            ["m.yml:3:1: the file holds more than one YAML document"]
        );
        assert_eq!(problems("containers: 3\n"), ["m.yml:1:13: expected a list"]);
        assert_eq!(
            problems("containers:\n  - 3\n"),
            ["m.yml:2:5: expected a mapping (key: value)"]
        );
        for bad in [
            "containers:\n  - name: a\n    name: b\n",
            "containers: []\ncontainers: []\n",
            "a: 1\n---\nb: 2\n",
            "containers:\n  - name: !!int 3\n",
            "containers:\n  - name: *x\n",
            "containers:\n  - name: a\n    archive: [x]\n",
            "- a\n",
        ] {
            let p = problems(bad);
            for internal in ["Option", "Policy", "from_str", "deserializ", "serde"] {
                assert!(!p[0].contains(internal), "{bad:?}: {p:?}");
            }
        }
    }

    #[test]
    fn an_entry_without_a_name_is_called_by_its_index() {
        let p = problems(
            "defaults:\n  lxc_path: /tmp/x\ncontainers:\n  - name: a\n  - name: \"\"\n  - state: stopped\n",
        );
        assert_eq!(
            p,
            [
                "m.yml:5:11: containers[1]: invalid name \"\": must not be empty",
                "m.yml:6:5: containers[2]: missing required option: name"
            ]
        );
    }

    #[test]
    fn booleans_take_1_and_0_as_ansible_does() {
        let m = ok("containers:
  - name: a
    lxc_path: /tmp/x
    container_log: 1
    clone_name: b
    clone_snapshot: 0
    archive: 'off'
  - name: c
    lxc_path: /tmp/x
    clone_name: d
    clone_snapshot: True
    archive: N
");
        let [a, c] = &m.entries[..] else {
            panic!("two entries")
        };
        assert!(a.spec.container_log.is_some());
        assert!(!a.spec.clone.as_ref().unwrap().snapshot);
        assert!(a.spec.archive.is_none());
        assert_eq!(
            (
                &a.args["container_log"],
                &a.args["clone_snapshot"],
                &a.args["archive"]
            ),
            (&Value::Bool(true), &Value::Bool(false), &Value::Bool(false))
        );
        assert!(c.spec.clone.as_ref().unwrap().snapshot);
        assert_eq!(
            problems("containers:\n  - name: a\n    archive: 2\n"),
            ["m.yml:3:14: invalid boolean 2; use true/false, yes/no, on/off or 1/0"]
        );
    }

    #[test]
    fn each_entry_reports_its_first_invalid_value() {
        // Validation stops at an entry's first problem: lxc.tty.max=abc is not reported.
        let p = problems(
            "containers:
  - name: a
    lxc_path: /tmp/x
    container_config: [nonsense, lxc.tty.max=abc]
  - name: b
    lxc_path: /tmp/x
    state: running
",
        );
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with("m.yml:4:24: a: invalid container_config \"nonsense\""),
            "{p:?}"
        );
        assert!(p[1].starts_with("m.yml:7:12: b: value of state"), "{p:?}");
    }

    #[test]
    fn clone_problems_are_reported_beside_value_problems() {
        let p = problems(
            "defaults:
  lxc_path: /tmp/x
containers:
  - name: a
    clone_name: c
  - name: b
    clone_name: c
  - name: x
    clone_name: y
  - name: y
    clone_name: x
  - name: bad
    state: running
",
        );
        assert_eq!(p.len(), 3, "{p:#?}");
        assert_eq!(
            p[0],
            "m.yml:6:5: b -> c: clone c is already made by the entry at line 4"
        );
        assert!(
            p[1].starts_with("m.yml:8:5: x -> y: entries wait for each other in a circle"),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("m.yml:13:12: bad: value of state"),
            "{p:?}"
        );
    }

    #[test]
    fn invalid_defaults_are_reported_without_entries() {
        let text = "defaults:
  state: running
  fs_size: lots
  vg_name: ''
  backing_store: nfs
  lxc_path: ''
  container_config: [nonsense, lxc.tty.max=2, lxc.nonsense.key=1]
containers: []
";
        let p = problems(text);
        assert_eq!(p.len(), 7, "{p:#?}");
        assert!(
            p[0].starts_with("m.yml:2:10: value of state must be one of"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("m.yml:3:12: invalid fs_size \"lots\""),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("m.yml:4:12: invalid vg_name \"\": must not be empty"),
            "{p:?}"
        );
        assert!(
            p[3].starts_with("m.yml:5:18: value of backing_store must be one of"),
            "{p:?}"
        );
        assert!(
            p[4].starts_with("m.yml:6:13: invalid lxc_path \"\": must not be empty"),
            "{p:?}"
        );
        assert!(
            p[5].starts_with("m.yml:7:22: invalid container_config \"nonsense\""),
            "{p:?}"
        );
        assert!(
            p[6].starts_with("m.yml:7:47: invalid container_config \"lxc.nonsense.key=1\""),
            "{p:?}"
        );
        // Entries that set every option themselves: the defaults are still wrong.
        let p = problems(&text.replace(
            "containers: []",
            "containers:\n  - name: a\n    state: started\n    backing_store: dir\n    lxc_path: /tmp/x\n",
        ));
        assert!(p[0].starts_with("m.yml:2:10: value of state"), "{p:?}");
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
