//! The plan of a whole manifest: every entry planned against the host, or — when an entry
//! before it in the run touches the same container or clones it into being — against what
//! that entry will leave.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{order, Manifest};
use crate::config_file::{ConfigEdit, ConfigFile};
use crate::plan::{plan as plan_one, Current, Observed, Plan, Step};
use crate::spec::ContainerSpec;
use crate::store::Store;
use crate::Error;

/// What a run does to a container, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Nothing to do.
    None,
    /// The container is created (from its template).
    Create,
    /// An existing container is changed (state, config, command, clone, archive …).
    Update,
    /// The container is destroyed.
    Destroy,
}

/// One config file change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ConfigChange {
    /// A line is added.
    Add {
        /// Its key.
        key: String,
        /// Its value.
        value: String,
    },
    /// A single-valued key's line changes value.
    Replace {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The value it has now.
        old: String,
    },
    /// A line is removed (a further line of a single-valued key).
    Remove {
        /// Its key.
        key: String,
        /// Its value.
        value: String,
    },
}

impl From<&ConfigEdit> for ConfigChange {
    fn from(e: &ConfigEdit) -> ConfigChange {
        match e {
            ConfigEdit::Add(l) => ConfigChange::Add {
                key: l.key.clone(),
                value: l.value.clone(),
            },
            ConfigEdit::Replace { line, old } => ConfigChange::Replace {
                key: line.key.clone(),
                value: line.value.clone(),
                old: old.clone(),
            },
            ConfigEdit::RemoveDuplicate(l) => ConfigChange::Remove {
                key: l.key.clone(),
                value: l.value.clone(),
            },
        }
    }
}

/// The plan of one entry. As JSON: `{"name", "lxc_path", "line", "action", "changed",
/// "steps": [str], "config": [{"op": "add"|"replace"|"remove", "key", "value", "old"?}],
/// "before", "after", "clone"?, "waits_for": [str], "predicted", "warnings": [str],
/// "error"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryPlan {
    /// Container name.
    pub name: String,
    /// Where it lives.
    pub lxc_path: PathBuf,
    /// Line of its entry in the manifest.
    pub line: u64,
    /// What happens to it, in one word.
    pub action: Action,
    /// Whether anything would change.
    pub changed: bool,
    /// The steps, in order, as `lxcform ensure` names them.
    pub steps: Vec<String>,
    /// The config lines added, replaced and removed.
    pub config: Vec<ConfigChange>,
    /// Its state now (`absent`, `stopped`, `running`, `frozen`).
    pub before: Current,
    /// Its state afterwards.
    pub after: Current,
    /// The clone this entry makes (`clone_name`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone: Option<String>,
    /// Names of the entries' containers this one waits for.
    pub waits_for: Vec<String>,
    /// Planned against what an earlier entry will leave, not against the host: the real
    /// steps are known only once that entry ran.
    pub predicted: bool,
    /// Notes that change nothing.
    pub warnings: Vec<String>,
    /// Why it could not be planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The plan of a manifest. As JSON: `{"changes": n, "unchanged": n, "errors": n,
/// "containers": [EntryPlan]}`, containers in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestPlan {
    /// Entries with changes pending.
    pub changes: usize,
    /// Entries already as declared.
    pub unchanged: usize,
    /// Entries that could not be planned.
    pub errors: usize,
    /// Every entry, in file order.
    pub containers: Vec<EntryPlan>,
}

fn action(p: &Plan) -> Action {
    if p.steps.contains(&Step::Destroy) {
        Action::Destroy
    } else if p.steps.contains(&Step::Create) {
        Action::Create
    } else if !p.changed() {
        Action::None
    } else {
        Action::Update
    }
}

type Key = (PathBuf, String);

/// Containers as earlier entries of the run will leave them, and whether they change them.
type World = HashMap<Key, (Observed, bool)>;

/// A container as an entry leaves it: in `state` with `config`, on `store`, with the snapshot
/// clones that depend on it (none once it is absent).
fn snapshot(
    state: Current,
    config: &str,
    store: Option<Store>,
    dependents: Vec<String>,
) -> Observed {
    let exists = state != Current::Absent;
    Observed {
        state,
        config: ConfigFile::parse(config),
        store: exists.then_some(store).flatten(),
        dependents: if exists { dependents } else { Vec::new() },
        ..Observed::absent()
    }
}

/// What the entry's containers are when its turn comes: from the world, else from the host.
/// The flag tells whether an earlier entry changes them.
fn look(world: &World, spec: &ContainerSpec) -> Result<(Observed, bool), Error> {
    let get = |name: &str| match world.get(&(spec.lxc_path.clone(), name.to_string())) {
        Some((o, changed)) => Ok((o.clone(), *changed)),
        None => crate::observe(name, &spec.lxc_path).map(|o| (o, false)),
    };
    let (mut observed, mut predicted) = get(&spec.name)?;
    if let Some(c) = &spec.clone {
        let (co, p) = get(&c.name)?;
        observed.clone = Some(Box::new(co));
        predicted |= p;
    }
    Ok((observed, predicted))
}

/// Records what a plan leaves, for the entries after it.
fn record(world: &mut World, spec: &ContainerSpec, p: &Plan, was: &Observed) {
    let store = was.store.or(Some(spec.storage.store));
    let made = p.steps.iter().find_map(|s| match s {
        Step::Clone { name, method, .. } => Some((name, method)),
        _ => None,
    });
    let mut dependents = was.dependents.clone();
    dependents.extend(
        made.filter(|(_, m)| m.pins_origin())
            .map(|(name, _)| name.clone()),
    );
    world.insert(
        (spec.lxc_path.clone(), spec.name.clone()),
        (
            snapshot(p.after.state, &p.after.config, store, dependents),
            !p.steps.is_empty(),
        ),
    );
    let Some(c) = &spec.clone else { return };
    let key = (spec.lxc_path.clone(), c.name.clone());
    let have = was.clone.as_deref();
    let (state, config) = match &p.clone_plan {
        Some(sub) => (sub.after.state, sub.after.config.as_str()),
        // A new clone is left stopped, with its origin's config.
        None if p.clones() => (Current::Stopped, p.after.config.as_str()),
        None => return,
    };
    let changed = p.clones() || p.clone_plan.as_ref().is_some_and(|s| s.changed());
    let store = made.map(|(_, m)| m.store).or(have.and_then(|o| o.store));
    let dependents = have.map(|o| o.dependents.clone()).unwrap_or_default();
    world.insert(key, (snapshot(state, config, store, dependents), changed));
}

/// Plans every entry. Reads the host (each container once), changes nothing.
pub fn plan(manifest: &Manifest) -> ManifestPlan {
    let entries = &manifest.entries;
    let mut world = World::new();
    let mut plans: Vec<Option<EntryPlan>> = vec![None; entries.len()];
    for i in order::sorted(entries) {
        let e = &entries[i];
        let mut ep = EntryPlan {
            name: e.spec.name.clone(),
            lxc_path: e.spec.lxc_path.clone(),
            line: e.at.line,
            action: Action::None,
            changed: false,
            steps: Vec::new(),
            config: Vec::new(),
            before: Current::Absent,
            after: Current::Absent,
            clone: e.spec.clone.as_ref().map(|c| c.name.clone()),
            waits_for: e
                .waits_for
                .iter()
                .map(|&w| entries[w].spec.name.clone())
                .collect(),
            predicted: false,
            warnings: e.spec.warnings.clone(),
            error: None,
        };
        // `apply` skips an entry whose prerequisite fails; one that cannot be planned will.
        let blocked: Vec<String> = e
            .waits_for
            .iter()
            .filter(|&&w| plans[w].as_ref().is_some_and(|p| p.error.is_some()))
            .map(|&w| entries[w].label())
            .collect();
        let planned = if blocked.is_empty() {
            look(&world, &e.spec)
                .and_then(|(observed, predicted)| {
                    ep.predicted = predicted;
                    let p = plan_one(&e.spec, &observed).map_err(Error::from)?;
                    crate::execute::preflight_all(&e.spec, &p)?;
                    Ok((observed, p))
                })
                .map_err(|e| e.to_string())
        } else {
            Err(format!(
                "container {:?}: would be skipped: waits for {}, which cannot be planned",
                e.spec.name,
                blocked.join(", ")
            ))
        };
        match planned {
            Err(err) => ep.error = Some(err),
            Ok((observed, p)) => {
                let sub = p.clone_plan.as_deref();
                ep.action = action(&p);
                ep.changed = p.changed();
                ep.steps = p
                    .steps
                    .iter()
                    .chain(sub.map_or(&[][..], |s| &s.steps))
                    .map(ToString::to_string)
                    .collect();
                ep.config = p
                    .config_edits()
                    .iter()
                    .chain(sub.map_or(&[][..], |s| s.config_edits()))
                    .map(ConfigChange::from)
                    .collect();
                ep.before = p.before.state;
                ep.after = p.after.state;
                ep.warnings.extend(p.warnings.iter().cloned());
                ep.warnings
                    .extend(sub.iter().flat_map(|s| s.warnings.iter().cloned()));
                record(&mut world, &e.spec, &p, &observed);
            }
        }
        plans[i] = Some(ep);
    }
    let containers: Vec<EntryPlan> = plans.into_iter().flatten().collect();
    ManifestPlan {
        changes: containers.iter().filter(|p| p.changed).count(),
        unchanged: containers
            .iter()
            .filter(|p| !p.changed && p.error.is_none())
            .count(),
        errors: containers.iter().filter(|p| p.error.is_some()).count(),
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;
    use std::path::Path;

    fn manifest(text: &str) -> Manifest {
        parse(text, Path::new("m.yml")).unwrap()
    }

    /// A template that exists (the plan checks that it does; it is never run here).
    fn template() -> String {
        let path = std::env::temp_dir().join("lxcform-preview-template");
        if !path.exists() {
            std::fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_new_container_is_created_with_its_config_then_started() {
        let p = plan(&manifest(&format!(
            "containers:\n  - name: mf-preview-a\n    template: {}\n    lxc_path: /tmp/lxcform-preview-none\n    container_config: [lxc.tty.max=1]\n",
            template()
        )));
        assert_eq!((p.changes, p.unchanged, p.errors), (1, 0, 0));
        let c = &p.containers[0];
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.steps, ["create", "write config (1 change)", "start"]);
        assert_eq!(
            c.config,
            [ConfigChange::Add {
                key: "lxc.tty.max".into(),
                value: "1".into()
            }]
        );
        assert_eq!((c.before, c.after), (Current::Absent, Current::Running));
        assert!(!c.predicted);
        assert_eq!(c.line, 2);
    }

    #[test]
    fn an_entry_apply_would_fail_on_the_host_is_an_error_and_its_dependents_would_be_skipped() {
        let p = plan(&manifest(
            "defaults:\n  lxc_path: /tmp/lxcform-preview-none\ncontainers:\n  - name: a\n    template: lxcform-no-such-template\n    clone_name: b\n  - name: b\n  - name: b\n    clone_name: c\n",
        ));
        assert_eq!((p.changes, p.unchanged, p.errors), (0, 0, 3));
        let [a, b, c] = &p.containers[..] else {
            panic!("{p:?}")
        };
        let err = a.error.as_deref().unwrap_or_default();
        assert!(
            err.contains("template \"lxcform-no-such-template\" not found"),
            "{err}"
        );
        assert_eq!(
            b.error.as_deref(),
            Some("container \"b\": would be skipped: waits for a -> b, which cannot be planned")
        );
        assert!(!b.changed && !c.changed);
        let err = c.error.as_deref().unwrap_or_default();
        assert!(err.contains("would be skipped: waits for"), "{err}");
    }

    #[test]
    fn a_snapshot_clone_made_by_an_earlier_entry_pins_its_origin() {
        let p = plan(&manifest(&format!(
            "defaults:\n  lxc_path: /tmp/lxcform-preview-none\n  template: {}\ncontainers:\n  - name: s\n    state: stopped\n    clone_name: snap\n    clone_snapshot: true\n  - name: s\n    state: absent\n",
            template()
        )));
        let second = &p.containers[1];
        let err = second.error.as_deref().unwrap_or_default();
        assert!(err.contains("snapshot clones depend on it: snap"), "{p:?}");
        // A copy does not pin it.
        let p = plan(&manifest(&format!(
            "defaults:\n  lxc_path: /tmp/lxcform-preview-none\n  template: {}\ncontainers:\n  - name: s\n    state: stopped\n    clone_name: copy\n  - name: s\n    state: absent\n",
            template()
        )));
        assert_eq!(p.containers[1].error, None, "{p:?}");
        assert_eq!(p.containers[1].action, Action::Destroy);
    }

    #[test]
    fn a_second_entry_is_planned_against_what_the_first_leaves() {
        let p = plan(&manifest(&format!(
            "defaults:\n  lxc_path: /tmp/lxcform-preview-none\n  template: {}\ncontainers:\n  - name: x\n    state: stopped\n    container_config: [lxc.tty.max=1]\n  - name: x\n    container_config: [lxc.tty.max=1]\n",
            template()
        )));
        let second = &p.containers[1];
        assert!(second.predicted);
        assert_eq!(second.waits_for, ["x"]);
        assert_eq!(second.before, Current::Stopped);
        assert_eq!(second.steps, ["start"]);
        assert!(second.config.is_empty());
    }

    #[test]
    fn json_names_the_config_operations() {
        let c = ConfigChange::from(&ConfigEdit::Replace {
            line: crate::config_file::ConfigLine {
                key: "k".into(),
                value: "2".into(),
            },
            old: "1".into(),
        });
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"op": "replace", "key": "k", "value": "2", "old": "1"})
        );
    }
}
