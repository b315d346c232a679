//! The JSON contract: [`Facts`] (the keys of Ansible's `lxc_container` result) and the
//! [`Outcome`] of a run.
//!
//! Facts serialize as `{"name", "state", "init_pid", "interfaces", "ips"}`; `state` is one of
//! `running`, `stopped`, `frozen`, `absent`, and `init_pid` is -1 when the container does not
//! run, as the module reports them. Tests parse this output with separately defined types.

use serde::{Deserialize, Serialize};

use crate::plan::{Current, Snapshot, Step};

/// What a container is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Container name.
    pub name: String,
    /// `running`, `stopped`, `frozen` or `absent`.
    pub state: Current,
    /// PID of its init on the host; -1 when it does not run.
    pub init_pid: i64,
    /// Network interfaces inside it.
    pub interfaces: Vec<String>,
    /// IP addresses inside it.
    pub ips: Vec<String>,
}

/// What `container_command` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Exit status (128 + signal when killed).
    pub rc: i32,
    /// Its standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Its standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

/// State and config before and after, for diff mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Before the run.
    pub before: Snapshot,
    /// After the run (predicted in check mode).
    pub after: Snapshot,
}

/// What a run did. As JSON (`lxcform ensure --json`):
/// `{"changed": bool, "steps": ["create", "start", …], "facts": Facts, "diff": {"before":
/// {"state", "config"}, "after": {…}} (only with --diff), "command": {"rc", "stdout",
/// "stderr"} (only when a command ran), "archive": {"path", "size", "sha256", …} (only when
/// one was written), "cloned": bool (only with clone_name), "warnings": [str]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// Whether anything changed (or, in check mode, would change).
    pub changed: bool,
    /// The steps run (or, in check mode, planned).
    #[serde(serialize_with = "steps_as_strings")]
    pub steps: Vec<Step>,
    /// The container now (in check mode: as it is, unchanged).
    pub facts: Facts,
    /// Before/after, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
    /// The command's result, when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandResult>,
    /// The archive written (`{"path", "size", "sha256", …}`), when `archive` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::archive::ArchiveInfo>,
    /// With `clone_name`: whether this run made the clone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloned: Option<bool>,
    /// Notes for the user.
    pub warnings: Vec<String>,
}

fn steps_as_strings<S: serde::Serializer>(steps: &[Step], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(steps.iter().map(ToString::to_string))
}
