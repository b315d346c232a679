//! The one JSON object the module prints, in the shapes of AnsibleModule's `exit_json` and
//! `fail_json`:
//!
//! - success: `{"changed", "lxc_container": {"name", "state", "init_pid", "interfaces", "ips",
//!   "archive"? (path), "archive_size"?, "archive_sha256"?, "cloned"?}, "rc"?, "stdout"?,
//!   "stderr"? (when a command ran), "diff"? {"before", "after", "before_header",
//!   "after_header"}, "warnings"?, "invocation"}`
//! - failure: `{"failed": true, "msg", "rc"?, "stdout"?, "stderr"?, "log"? (liblxc's error
//!   lines), "lxc_container"?, "invocation"?}`
//!
//! `invocation` is `{"module_args": {...}}`, every option with its value or default, on every
//! result once the arguments file was read; values are never masked, as the Python module
//! declares no `no_log` option (Ansible hides a `no_log` task's result where it displays it).

use serde_json::{json, Map, Value};

use lxcform::{CommandResult, ContainerSpec, Error, Facts, Outcome};

/// Keys of the library's [`Outcome`] that the module returns inside `lxc_container` when the
/// library provides them (the archive written, whether a clone was made).
const PASSED_THROUGH: [&str; 2] = ["archive", "cloned"];

/// Adds `invocation` to a result, when the arguments are known.
pub fn with_invocation(mut result: Value, params: Option<Map<String, Value>>) -> Value {
    if let Some(params) = params {
        result["invocation"] = json!({ "module_args": params });
    }
    result
}

fn add_command(result: &mut Value, c: &CommandResult) {
    result["rc"] = json!(c.rc);
    result["stdout"] = json!(c.stdout);
    result["stderr"] = json!(c.stderr);
}

/// The result of a run.
pub fn success(o: &Outcome, spec: &ContainerSpec) -> Value {
    let whole = serde_json::to_value(o).unwrap_or_default();
    let mut container = json!(o.facts);
    for key in PASSED_THROUGH {
        if let Some(v) = whole.get(key).filter(|v| !v.is_null()) {
            container[key] = v.clone();
        }
    }
    // The module returns the archive's path; its size and checksum ride along beside it.
    if let Some(a) = &o.archive {
        container["archive"] = json!(a.path);
        container["archive_size"] = json!(a.size);
        container["archive_sha256"] = json!(a.sha256);
    }
    let mut result = json!({ "changed": o.changed, "lxc_container": container });
    if let Some(c) = &o.command {
        add_command(&mut result, c);
    }
    if let Some(d) = &o.diff {
        let header = spec.lxc_path.join(&spec.name).join("config");
        result["diff"] = json!({
            "before": d.before.render(),
            "after": d.after.render(),
            "before_header": header,
            "after_header": header,
        });
    }
    if !o.warnings.is_empty() {
        result["warnings"] = json!(o.warnings);
    }
    result
}

/// A failure before anything ran (bad arguments).
pub fn fail(msg: &str) -> Value {
    json!({ "failed": true, "msg": msg })
}

/// A failure of the library, with the container's facts as they are now when known.
pub fn failure(e: &Error, facts: Option<Facts>) -> Value {
    let mut result = fail(&e.to_string());
    if let Some(c) = e.command() {
        add_command(&mut result, c);
    }
    if !e.log().is_empty() {
        result["log"] = json!(e.log());
    }
    if let Some(f) = facts {
        result["lxc_container"] = json!(f);
    }
    result
}
