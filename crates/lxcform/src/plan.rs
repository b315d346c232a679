//! The pure planner: what is on the host ([`Observed`]) and what is wanted
//! ([`ContainerSpec`]) give the ordered [`Step`]s that make one into the other. Check mode stops
//! here; `changed` is whether there is any step.

use std::fmt;

use serde::Serialize;

use crate::config_file::{ConfigEdit, ConfigFile};
use crate::liblxc::State;
use crate::spec::{ContainerSpec, DesiredState};
use crate::store::{clone_method, CloneMethod, Store};

/// A container's state as far as planning goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Current {
    /// Not defined.
    Absent,
    /// Defined, not running.
    Stopped,
    /// Running.
    Running,
    /// Running and frozen.
    Frozen,
}

impl Current {
    /// Folds liblxc's transitional states into the stable one they lead to.
    pub fn from_lxc(state: State) -> Current {
        match state {
            State::Stopped | State::Stopping | State::Aborting => Current::Stopped,
            State::Starting | State::Running | State::Thawed => Current::Running,
            State::Freezing | State::Frozen => Current::Frozen,
        }
    }

    /// Parses [`Current::as_str`]'s names back.
    pub fn parse(s: &str) -> Option<Current> {
        [
            Current::Absent,
            Current::Stopped,
            Current::Running,
            Current::Frozen,
        ]
        .into_iter()
        .find(|c| c.as_str() == s.trim())
    }

    /// The lower-case name the module reports (`running`, `stopped`, `frozen`, `absent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Current::Absent => "absent",
            Current::Stopped => "stopped",
            Current::Running => "running",
            Current::Frozen => "frozen",
        }
    }
}

impl fmt::Display for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is on the host, read under the container's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The container's state.
    pub state: Current,
    /// Its config file (empty when absent).
    pub config: ConfigFile,
    /// The store its rootfs is on (when it exists).
    pub store: Option<Store>,
    /// `<lxc_path>/<name>` exists although no container is defined there.
    pub occupied: bool,
    /// A create of it was cut off (liblxc's `partial` marker is there and nobody holds it):
    /// what it left is removed and the container is made anew.
    pub unfinished: bool,
    /// Another process is creating it right now (it holds liblxc's `partial` marker).
    pub being_created: bool,
    /// A run killed before it could undo what it did (a clone's quiesce, an archive's freeze,
    /// mount or snapshot) left it so: that is undone first, returning it to this state.
    pub recover: Option<Current>,
    /// The clone named by `clone_name`, when the spec has one.
    pub clone: Option<Box<Observed>>,
    /// Snapshot clones whose rootfs lies on this container's (liblxc will not destroy it).
    pub dependents: Vec<String>,
}

impl Observed {
    /// A container that does not exist.
    pub fn absent() -> Observed {
        Observed {
            state: Current::Absent,
            config: ConfigFile::default(),
            store: None,
            occupied: false,
            unfinished: false,
            being_created: false,
            recover: None,
            clone: None,
            dependents: Vec::new(),
        }
    }
}

/// What the origin goes through while a clone is made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiesce {
    /// Nothing: it is stopped, or frozen and its store snapshots atomically.
    Nothing,
    /// Frozen for the instant of an atomic snapshot, then thawed.
    Freeze,
    /// Stopped for the copy, then brought back to its state.
    Stop,
}

/// Why no plan can be made; found before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container {container:?}: {reason}")]
pub struct PlanError {
    /// The container.
    pub container: String,
    /// Why.
    pub reason: String,
}

/// One change to make, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the container from its template on its backing store.
    Create,
    /// Edit the config file.
    WriteConfig(Vec<ConfigEdit>),
    /// Boot it.
    Start,
    /// Stop it.
    Stop,
    /// Freeze it.
    Freeze,
    /// Thaw it.
    Unfreeze,
    /// Run `container_command` in it.
    RunCommand,
    /// Destroy it with its storage.
    Destroy,
    /// Remove what a cut-off create left, so that it can be created again.
    RemoveUnfinished,
    /// Undo what a killed run left (see [`Observed::recover`]), returning it to this state.
    Recover(Current),
    /// Write an archive of it (always a change: a new archive is written each run).
    Archive,
    /// Make the clone `name` of it, quiescing it as needed and restoring its state after.
    Clone {
        /// Name of the clone.
        name: String,
        /// Store and kind of copy.
        method: CloneMethod,
        /// What the origin goes through meanwhile.
        quiesce: Quiesce,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Create => f.write_str("create"),
            Step::WriteConfig(edits) => {
                write!(
                    f,
                    "write config ({} change{})",
                    edits.len(),
                    if edits.len() == 1 { "" } else { "s" }
                )
            }
            Step::Start => f.write_str("start"),
            Step::Stop => f.write_str("stop"),
            Step::Freeze => f.write_str("freeze"),
            Step::Unfreeze => f.write_str("unfreeze"),
            Step::RunCommand => f.write_str("run command"),
            Step::Destroy => f.write_str("destroy"),
            Step::Archive => f.write_str("archive"),
            Step::RemoveUnfinished => f.write_str("remove an interrupted create"),
            Step::Recover(to) => write!(f, "recover from a killed run (back to {to})"),
            Step::Clone {
                name,
                method,
                quiesce,
            } => {
                let kind = if method.snapshot { "snapshot" } else { "copy" };
                write!(f, "clone to {name} ({} {kind}", method.store)?;
                match quiesce {
                    Quiesce::Nothing => f.write_str(")"),
                    Quiesce::Freeze => f.write_str(", origin frozen meanwhile)"),
                    Quiesce::Stop => f.write_str(", origin stopped meanwhile)"),
                }
            }
        }
    }
}

/// State and config lines before or after a run, for diff mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `running`, `stopped`, `frozen` or `absent`.
    pub state: Current,
    /// The config entries as `key = value` lines.
    pub config: String,
}

impl Snapshot {
    /// The snapshot as text, as Ansible's diff callback shows it.
    pub fn render(&self) -> String {
        format!("state = {}\n{}", self.state, self.config)
    }
}

/// The ordered steps that make the host match a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// State and config now.
    pub before: Snapshot,
    /// State and config once the steps ran.
    pub after: Snapshot,
    /// Things worth telling the user that change nothing.
    pub warnings: Vec<String>,
    /// With `state: clone`, the steps that then apply `container_config` and
    /// `container_command` to the clone.
    pub clone_plan: Option<Box<Plan>>,
}

impl Plan {
    /// Whether running the plan changes anything.
    pub fn changed(&self) -> bool {
        !self.steps.is_empty() || self.clone_plan.as_ref().is_some_and(|p| p.changed())
    }

    /// Whether the plan makes a clone.
    pub fn clones(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Clone { .. }))
    }

    /// The config edits the plan makes (empty when none).
    pub fn config_edits(&self) -> &[ConfigEdit] {
        self.steps
            .iter()
            .find_map(|s| match s {
                Step::WriteConfig(e) => Some(e.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }
}

/// Plans the steps from `observed` to `spec`. Pure: reads nothing, changes nothing.
pub fn plan(spec: &ContainerSpec, observed: &Observed) -> Result<Plan, PlanError> {
    let fail = |reason: String| PlanError {
        container: spec.name.clone(),
        reason,
    };
    let occupied = |o: &Observed, name: &str| {
        if o.being_created {
            return Some(fail(format!(
                "{name} is being created by another process; try again when it is done"
            )));
        }
        o.occupied.then(|| {
            fail(format!(
                "{} exists in {} but is not a container; move it away first",
                name,
                spec.lxc_path.display()
            ))
        })
    };
    if let Some(e) = occupied(observed, &spec.name) {
        return Err(e);
    }
    let mut steps = Vec::new();
    if observed.unfinished {
        // Observed as absent; liblxc would refuse to start what is there.
        steps.push(Step::RemoveUnfinished);
    }
    let mut warnings = Vec::new();
    let mut cur = observed.state;
    let mut config = observed.config.clone();
    if let Some(to) = observed.recover {
        steps.push(Step::Recover(to));
        cur = to;
    }

    // The clone to make, if any: how, and whether it exists already.
    let clone = match &spec.clone {
        None => None,
        Some(cs) => {
            let have = observed
                .clone
                .as_deref()
                .cloned()
                .unwrap_or_else(Observed::absent);
            if let Some(e) = occupied(&have, &cs.name) {
                return Err(e);
            }

            let origin_store = observed.store.unwrap_or(spec.storage.store);
            let method = clone_method(origin_store, cs.store, cs.snapshot).map_err(fail)?;
            Some((cs, method, have))
        }
    };
    let clone_step = |cur: Current| {
        clone
            .as_ref()
            .filter(|(_, _, have)| have.state == Current::Absent)
            .map(|(cs, method, _)| Step::Clone {
                name: cs.name.clone(),
                method: *method,
                quiesce: match cur {
                    Current::Absent | Current::Stopped => Quiesce::Nothing,
                    _ if method.freeze_is_enough && cur == Current::Frozen => Quiesce::Nothing,
                    _ if method.freeze_is_enough => Quiesce::Freeze,
                    _ => Quiesce::Stop,
                },
            })
    };

    if spec.state == DesiredState::Absent {
        if !observed.dependents.is_empty() {
            return Err(fail(format!(
                "snapshot clones depend on it: {}; destroy them first",
                observed.dependents.join(", ")
            )));
        }
        if cur != Current::Absent {
            if spec.archive.is_some() {
                steps.push(Step::Archive);
            }
            if cur != Current::Stopped {
                steps.push(Step::Stop);
            }
            // The module's order: archive, clone, then destroy.
            steps.extend(clone_step(Current::Stopped));
            steps.push(Step::Destroy);
        }
        if !spec.container_config.is_empty() {
            warnings.push("container_config is ignored with state absent".to_string());
        }
        return Ok(finish(
            steps,
            observed,
            Current::Absent,
            ConfigFile::default(),
            warnings,
        ));
    }

    // A container this run boots needs no restart to be "restarted".
    let mut booted = false;
    if cur == Current::Absent {
        steps.push(Step::Create);
        cur = Current::Stopped;
    } else if let Some(have) = observed.store {
        // With clone_name, backing_store is the clone's store.
        if spec.storage.given && spec.clone.is_none() && have != spec.storage.store {
            warnings.push(format!(
                "{} exists on backing store {have}; backing_store {} applies only when creating",
                spec.name, spec.storage.store
            ));
        }
    }

    if spec.state == DesiredState::Clone {
        // The 2015 form: the origin keeps its state; config and command go to the clone.
        let (cs, method, have) = clone
            .as_ref()
            .expect("validation requires clone_name with state clone");
        steps.extend(clone_step(cur));
        let predicted = Observed {
            state: Current::Stopped,
            config: observed.config.clone(),
            store: Some(method.store),
            ..Observed::absent()
        };
        let on_clone = if have.state == Current::Absent {
            &predicted
        } else {
            have
        };
        let clone_spec = ContainerSpec {
            name: cs.name.clone(),
            state: DesiredState::Stopped,
            clone: None,
            ..spec.clone()
        };
        let mut p = finish(steps, observed, cur, config, warnings);
        // A clone that exists is left in the state it has; a new one is left stopped.
        let sub = plan(
            &ContainerSpec {
                state: desired_for(on_clone.state),
                ..clone_spec
            },
            on_clone,
        )?;
        p.clone_plan = Some(Box::new(sub));
        return Ok(p);
    }

    // Config is written while the container is stopped, before it boots with it.
    let edits = config.edits_for(&spec.container_config);
    if !edits.is_empty() {
        if cur != Current::Stopped {
            steps.push(Step::Stop);
        }
        config.apply(&edits);
        steps.push(Step::WriteConfig(edits));
        // Whatever needs it running again boots it below, with the new config.
        cur = Current::Stopped;
    }

    if spec.container_command.is_some() {
        match cur {
            Current::Stopped => {
                steps.push(Step::Start);
                booted = true;
            }
            Current::Frozen => steps.push(Step::Unfreeze),
            Current::Running | Current::Absent => {}
        }
        cur = Current::Running;
        steps.push(Step::RunCommand);
    }

    let target = match spec.state {
        DesiredState::Stopped => Current::Stopped,
        DesiredState::Frozen => Current::Frozen,
        _ => Current::Running,
    };
    if spec.state == DesiredState::Restarted && cur != Current::Stopped && !booted {
        steps.push(Step::Stop);
        cur = Current::Stopped;
    }
    match (cur, target) {
        (a, b) if a == b => {}
        (Current::Stopped, Current::Running) => steps.push(Step::Start),
        (Current::Stopped, Current::Frozen) => steps.extend([Step::Start, Step::Freeze]),
        (Current::Running, Current::Frozen) => steps.push(Step::Freeze),
        (Current::Frozen, Current::Running) => steps.push(Step::Unfreeze),
        (_, Current::Stopped) => steps.push(Step::Stop),
        (a, b) => unreachable!("no transition from {a} to {b}"),
    }
    if spec.archive.is_some() {
        steps.push(Step::Archive);
    }
    // The later module's form: the origin reaches its state, then the clone is made.
    steps.extend(clone_step(target));
    Ok(finish(steps, observed, target, config, warnings))
}

/// The desired state that keeps a container as it is.
fn desired_for(state: Current) -> DesiredState {
    match state {
        Current::Running => DesiredState::Started,
        Current::Frozen => DesiredState::Frozen,
        Current::Stopped | Current::Absent => DesiredState::Stopped,
    }
}

fn finish(
    steps: Vec<Step>,
    observed: &Observed,
    state: Current,
    config: ConfigFile,
    warnings: Vec<String>,
) -> Plan {
    Plan {
        steps,
        before: Snapshot {
            state: observed.state,
            config: observed.config.entries_text(),
        },
        after: Snapshot {
            state,
            config: config.entries_text(),
        },
        warnings,
        clone_plan: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::ConfigLine;
    use crate::spec::SpecArgs;
    use Step::*;

    /// The planner, for specs the tests know to be plannable.
    fn plan(spec: &ContainerSpec, observed: &Observed) -> Plan {
        super::plan(spec, observed).unwrap()
    }

    fn spec(state: &str) -> ContainerSpec {
        SpecArgs {
            name: Some("c1".into()),
            lxc_path: Some("/tmp/plan-test".into()),
            state: Some(state.into()),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn observed(state: Current) -> Observed {
        let config = if state == Current::Absent {
            ""
        } else {
            "lxc.uts.name = c1\nlxc.tty.max = 4\n"
        };
        Observed {
            state,
            config: ConfigFile::parse(config),
            store: (state != Current::Absent).then_some(Store::Dir),
            ..Observed::absent()
        }
    }

    #[test]
    fn an_unfinished_container_or_clone_is_removed_then_made_anew() {
        let left = Observed {
            unfinished: true,
            ..Observed::absent()
        };
        let p = plan(&spec("stopped"), &left);
        assert_eq!(p.steps[..2], [RemoveUnfinished, Create]);
        let p = plan(&spec("absent"), &left);
        assert_eq!(p.steps, [RemoveUnfinished]);
        let mut s = spec("started");
        s.clone = Some(crate::spec::CloneSpec {
            name: "c2".into(),
            snapshot: false,
            store: None,
            fs_size: None,
        });
        let o = Observed {
            clone: Some(Box::new(left)),
            ..observed(Current::Running)
        };
        let p = plan(&s, &o);
        assert!(p.clones(), "the clone is made again: {:?}", p.steps);
    }

    #[test]
    fn what_a_killed_run_left_is_undone_first() {
        // A clone stopped it (it was running); the plan starts it back, then carries on.
        let o = Observed {
            recover: Some(Current::Running),
            ..observed(Current::Stopped)
        };
        assert_eq!(
            plan(&spec("started"), &o).steps,
            [Recover(Current::Running)]
        );
        assert_eq!(
            plan(&spec("stopped"), &o).steps,
            [Recover(Current::Running), Stop]
        );
        // An archive froze it: back to running, then frozen as declared.
        let o = Observed {
            recover: Some(Current::Running),
            ..observed(Current::Frozen)
        };
        assert_eq!(
            plan(&spec("frozen"), &o).steps,
            [Recover(Current::Running), Freeze]
        );
    }

    const CURRENT: [Current; 4] = [
        Current::Absent,
        Current::Stopped,
        Current::Running,
        Current::Frozen,
    ];

    /// Every (current × desired) pair, without config or command.
    #[test]
    fn every_transition() {
        use Current::*;
        let table: [(&str, [&[Step]; 4]); 5] = [
            ("started", [&[Create, Start], &[Start], &[], &[Unfreeze]]),
            ("stopped", [&[Create], &[], &[Stop], &[Stop]]),
            (
                "restarted",
                [&[Create, Start], &[Start], &[Stop, Start], &[Stop, Start]],
            ),
            (
                "frozen",
                [&[Create, Start, Freeze], &[Start, Freeze], &[Freeze], &[]],
            ),
            (
                "absent",
                [&[], &[Destroy], &[Stop, Destroy], &[Stop, Destroy]],
            ),
        ];
        for (state, expected) in table {
            for (cur, want) in CURRENT.iter().zip(expected) {
                let p = plan(&spec(state), &observed(*cur));
                assert_eq!(p.steps, want, "{cur} -> {state}");
                assert_eq!(p.changed(), !want.is_empty());
                let after = match state {
                    "started" | "restarted" => Running,
                    "stopped" => Stopped,
                    "frozen" => Frozen,
                    _ => Absent,
                };
                assert_eq!(p.after.state, after, "{cur} -> {state}");
                assert_eq!(p.before.state, *cur);
            }
        }
    }

    #[test]
    fn a_reached_state_plans_nothing() {
        for (state, cur) in [
            ("started", Current::Running),
            ("stopped", Current::Stopped),
            ("frozen", Current::Frozen),
        ] {
            assert!(!plan(&spec(state), &observed(cur)).changed());
        }
        assert!(!plan(&spec("absent"), &observed(Current::Absent)).changed());
    }

    fn with_config(state: &str, lines: &[&str]) -> ContainerSpec {
        let mut s = spec(state);
        s.container_config = lines
            .iter()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                ConfigLine {
                    key: k.into(),
                    value: v.into(),
                }
            })
            .collect();
        s
    }

    #[test]
    fn config_is_written_after_create_before_the_first_start() {
        let p = plan(
            &with_config("started", &["lxc.tty.max=1"]),
            &observed(Current::Absent),
        );
        assert!(matches!(
            p.steps.as_slice(),
            [Create, WriteConfig(_), Start]
        ));
        assert!(p.after.config.contains("lxc.tty.max = 1"));
    }

    #[test]
    fn a_running_container_restarts_only_when_its_config_changes() {
        let p = plan(
            &with_config("started", &["lxc.tty.max=1"]),
            &observed(Current::Running),
        );
        assert!(matches!(p.steps.as_slice(), [Stop, WriteConfig(e), Start] if e.len() == 1));
        let p = plan(
            &with_config("started", &["lxc.tty.max=4"]),
            &observed(Current::Running),
        );
        assert!(p.steps.is_empty());
    }

    #[test]
    fn config_change_of_a_frozen_container_keeps_it_frozen() {
        let p = plan(
            &with_config("frozen", &["lxc.tty.max=1"]),
            &observed(Current::Frozen),
        );
        assert!(matches!(
            p.steps.as_slice(),
            [Stop, WriteConfig(_), Start, Freeze]
        ));
        let p = plan(
            &with_config("started", &["lxc.tty.max=1"]),
            &observed(Current::Frozen),
        );
        assert!(matches!(p.steps.as_slice(), [Stop, WriteConfig(_), Start]));
    }

    #[test]
    fn config_of_a_stopped_container_does_not_start_it() {
        let p = plan(
            &with_config("stopped", &["lxc.tty.max=1"]),
            &observed(Current::Running),
        );
        assert!(matches!(p.steps.as_slice(), [Stop, WriteConfig(_)]));
    }

    #[test]
    fn restart_after_a_config_change_is_not_done_twice() {
        let p = plan(
            &with_config("restarted", &["lxc.tty.max=1"]),
            &observed(Current::Running),
        );
        assert!(matches!(p.steps.as_slice(), [Stop, WriteConfig(_), Start]));
    }

    fn with_command(state: &str) -> ContainerSpec {
        let mut s = spec(state);
        s.container_command = Some("echo hi".into());
        s
    }

    #[test]
    fn commands_run_in_a_running_container_then_the_state_is_reached() {
        use Current::*;
        let cases: [(&str, Current, &[Step]); 8] = [
            ("started", Absent, &[Create, Start, RunCommand]),
            ("started", Running, &[RunCommand]),
            ("stopped", Stopped, &[Start, RunCommand, Stop]),
            ("stopped", Absent, &[Create, Start, RunCommand, Stop]),
            ("frozen", Frozen, &[Unfreeze, RunCommand, Freeze]),
            ("frozen", Stopped, &[Start, RunCommand, Freeze]),
            ("restarted", Running, &[RunCommand, Stop, Start]),
            ("restarted", Stopped, &[Start, RunCommand]),
        ];
        for (state, cur, want) in cases {
            assert_eq!(
                plan(&with_command(state), &observed(cur)).steps,
                want,
                "{cur} -> {state}"
            );
        }
    }

    #[test]
    fn a_store_mismatch_is_a_warning_not_a_change() {
        let mut o = observed(Current::Running);
        o.store = Some(Store::Overlay);
        assert!(
            plan(&spec("started"), &o).warnings.is_empty(),
            "no store was asked for"
        );
        let mut s = spec("started");
        s.storage.given = true;
        let p = plan(&s, &o);
        assert!(p.steps.is_empty());
        assert_eq!(p.warnings.len(), 1);
    }

    #[test]
    fn diff_snapshots_show_state_and_config() {
        let p = plan(
            &with_config("stopped", &["lxc.tty.max=1"]),
            &observed(Current::Running),
        );
        assert_eq!(
            p.before.render(),
            "state = running\nlxc.uts.name = c1\nlxc.tty.max = 4\n"
        );
        assert_eq!(
            p.after.render(),
            "state = stopped\nlxc.uts.name = c1\nlxc.tty.max = 1\n"
        );
    }

    fn with_clone(state: &str, snapshot: bool, store: Option<&str>) -> ContainerSpec {
        SpecArgs {
            name: Some("c1".into()),
            lxc_path: Some("/tmp/plan-test".into()),
            state: Some(state.into()),
            clone_name: Some("c2".into()),
            clone_snapshot: Some(snapshot),
            backing_store: store.map(Into::into),
            ..Default::default()
        }
        .validate()
        .unwrap()
    }

    fn on_store(state: Current, store: Store, clone: Option<Observed>) -> Observed {
        Observed {
            store: (state != Current::Absent).then_some(store),
            clone: clone.map(Box::new),
            ..observed(state)
        }
    }

    fn clone_of(steps: &[Step]) -> Option<(Store, bool, Quiesce)> {
        steps.iter().find_map(|s| match s {
            Clone {
                method, quiesce, ..
            } => Some((method.store, method.snapshot, *quiesce)),
            _ => None,
        })
    }

    #[test]
    fn a_clone_is_made_after_the_origin_reaches_its_state() {
        let p = plan(
            &with_clone("started", false, None),
            &on_store(Current::Running, Store::Dir, None),
        );
        assert_eq!(clone_of(&p.steps), Some((Store::Dir, false, Quiesce::Stop)));
        assert!(p.clones() && p.changed());
        let p = plan(
            &with_clone("stopped", true, None),
            &on_store(Current::Running, Store::Dir, None),
        );
        assert!(matches!(p.steps[0], Stop));
        assert_eq!(
            clone_of(&p.steps),
            Some((Store::Overlay, true, Quiesce::Nothing))
        );
    }

    #[test]
    fn atomic_snapshots_only_freeze_the_origin() {
        let p = plan(
            &with_clone("started", true, None),
            &on_store(Current::Running, Store::Btrfs, None),
        );
        assert_eq!(
            clone_of(&p.steps),
            Some((Store::Btrfs, true, Quiesce::Freeze))
        );
        let p = plan(
            &with_clone("frozen", true, None),
            &on_store(Current::Frozen, Store::Btrfs, None),
        );
        assert_eq!(
            clone_of(&p.steps),
            Some((Store::Btrfs, true, Quiesce::Nothing))
        );
    }

    #[test]
    fn an_existing_clone_is_left_alone() {
        let p = plan(
            &with_clone("started", true, None),
            &on_store(
                Current::Running,
                Store::Dir,
                Some(observed(Current::Stopped)),
            ),
        );
        assert!(p.steps.is_empty() && !p.clones() && !p.changed());
    }

    #[test]
    fn state_clone_creates_the_origin_and_keeps_its_state() {
        let p = plan(
            &with_clone("clone", false, None),
            &observed(Current::Absent),
        );
        assert!(matches!(
            p.steps.as_slice(),
            [
                Create,
                Clone {
                    quiesce: Quiesce::Nothing,
                    ..
                }
            ]
        ));
        assert_eq!(p.after.state, Current::Stopped);
        let p = plan(
            &with_clone("clone", true, Some("overlayfs")),
            &on_store(Current::Running, Store::Dir, None),
        );
        assert_eq!(
            clone_of(&p.steps),
            Some((Store::Overlay, true, Quiesce::Stop))
        );
        assert_eq!(
            p.after.state,
            Current::Running,
            "the origin is returned to running"
        );
        assert!(p.clone_plan.as_ref().is_some_and(|c| !c.changed()));
    }

    #[test]
    fn state_clone_applies_config_and_command_to_the_clone() {
        let mut s = with_clone("clone", false, None);
        s.container_config = vec![ConfigLine {
            key: "lxc.tty.max".into(),
            value: "1".into(),
        }];
        s.container_command = Some("true".into());
        let p = plan(&s, &on_store(Current::Running, Store::Dir, None));
        assert_eq!(
            p.steps.len(),
            1,
            "only the clone step on the origin: {:?}",
            p.steps
        );
        let sub = p.clone_plan.unwrap();
        assert!(matches!(
            sub.steps.as_slice(),
            [WriteConfig(_), Start, RunCommand, Stop]
        ));
        assert_eq!(
            sub.after.state,
            Current::Stopped,
            "the clone is left stopped"
        );
    }

    #[test]
    fn absent_clones_before_destroying() {
        let p = plan(
            &with_clone("absent", false, None),
            &on_store(Current::Running, Store::Dir, None),
        );
        assert!(matches!(
            p.steps.as_slice(),
            [
                Stop,
                Clone {
                    quiesce: Quiesce::Nothing,
                    ..
                },
                Destroy
            ]
        ));
    }

    #[test]
    fn impossible_clones_fail_before_anything_changes() {
        let e = super::plan(
            &with_clone("started", true, None),
            &on_store(Current::Running, Store::Loop, None),
        );
        assert!(e.unwrap_err().reason.contains("cannot be snapshotted"));
        let occupied = Observed {
            occupied: true,
            ..Observed::absent()
        };
        let e = super::plan(
            &with_clone("started", false, None),
            &on_store(Current::Running, Store::Dir, Some(occupied)),
        );
        assert!(e.unwrap_err().reason.contains("c2 exists"));
    }

    fn with_archive(state: &str) -> ContainerSpec {
        let mut s = spec(state);
        s.archive = Some(crate::spec::ArchiveSpec {
            path: "/tmp/archives".into(),
            compression: crate::spec::Compression::Zstd,
        });
        s
    }

    #[test]
    fn an_archive_is_always_a_change_made_once_the_state_is_reached() {
        let p = plan(&with_archive("started"), &observed(Current::Running));
        assert_eq!(p.steps, [Archive]);
        assert!(p.changed());
        let p = plan(&with_archive("frozen"), &observed(Current::Stopped));
        assert_eq!(p.steps, [Start, Freeze, Archive]);
    }

    #[test]
    fn absent_archives_then_destroys() {
        let p = plan(&with_archive("absent"), &observed(Current::Running));
        assert_eq!(p.steps, [Archive, Stop, Destroy]);
        let p = plan(&with_archive("absent"), &observed(Current::Absent));
        assert!(p.steps.is_empty(), "nothing to archive");
    }

    #[test]
    fn state_clone_archives_the_clone() {
        let mut s = with_clone("clone", false, None);
        s.archive = with_archive("started").archive;
        let p = plan(&s, &on_store(Current::Running, Store::Dir, None));
        assert!(!p.steps.contains(&Archive));
        assert!(p.clone_plan.unwrap().steps.contains(&Archive));
    }

    #[test]
    fn an_origin_with_snapshot_clones_is_not_destroyed() {
        let o = Observed {
            dependents: vec!["c2".into()],
            ..observed(Current::Running)
        };
        let e = super::plan(&spec("absent"), &o).unwrap_err();
        assert!(e.reason.contains("snapshot clones depend on it: c2"), "{e}");
    }
}
