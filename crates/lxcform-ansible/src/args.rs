//! The args file Ansible writes: task options plus internal `_ansible_*` keys, checked as
//! AnsibleModule checks them and turned into the library's [`SpecArgs`]; everything else is
//! checked by [`SpecArgs::validate`].
//!
//! `_ansible_no_log` is not read: AnsibleModule only uses it to keep the invocation out of
//! the target's syslog and journal, which this module never writes to. Ansible hides a
//! `no_log` task's result where it displays it; a registered result has the real values.

use serde_json::{Map, Value};

use crate::coerce;
use crate::options::{Kind, OPTIONS, STORE_DEFAULTS};
use lxcform::spec::{parse_log_level, parse_store, Compression};
use lxcform::{DesiredState, SpecArgs, SpecError};

/// The args file as read: the options as typed and the internal `_ansible_*` flags.
#[derive(Debug, Default)]
pub struct Raw {
    top: Map<String, Value>,
    /// `_ansible_check_mode`.
    pub check: bool,
    /// `_ansible_diff`.
    pub diff: bool,
    ignore_unknown: bool,
}

/// What the task asked for.
#[derive(Debug)]
pub struct ModuleArgs {
    /// The options the task set, for the library; `Err`: the message to fail with.
    pub spec: Result<SpecArgs, String>,
    /// Every option with its value or default (and any unknown key), as AnsibleModule
    /// reports `invocation.module_args`, also when the arguments are refused.
    pub params: Map<String, Value>,
}

impl Raw {
    /// Parses the file's text: a flat JSON object or `{"ANSIBLE_MODULE_ARGS": {...}}`.
    pub fn read(text: &str) -> Result<Raw, String> {
        let mut top: Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| format!("the arguments file is not a JSON object: {e}"))?;
        if let Some(Value::Object(inner)) = top.remove("ANSIBLE_MODULE_ARGS") {
            top = inner;
        }
        let flag = |key: &str| top.get(key).map(coerce::to_bool) == Some(Ok(true));
        Ok(Raw {
            check: flag("_ansible_check_mode"),
            diff: flag("_ansible_diff"),
            ignore_unknown: flag("_ansible_ignore_unknown_opts"),
            top,
        })
    }

    /// Checks the options as AnsibleModule does: all of them, reporting the first problem in
    /// its order (required, types in `argument_spec` order, choices, required_if, unsupported).
    pub fn into_args(self) -> ModuleArgs {
        let mut params: Map<String, Value> = self.top.clone();
        params.retain(|k, _| !k.starts_with("_ansible_"));
        let given = |name: &str| self.top.get(name).filter(|v| !v.is_null());
        let mut errors: Vec<String> = Vec::new();
        if given("name").is_none() {
            errors.push("missing required arguments: name".into());
        }
        let mut chosen = Map::new();
        for (name, kind, default, unset_if_empty) in OPTIONS {
            let Some(raw) = given(name) else {
                let default = default.map(|d| match kind {
                    Kind::Bool => Value::Bool(d == "true"),
                    _ => Value::String(d.into()),
                });
                params.insert(name.into(), default.unwrap_or(Value::Null));
                continue;
            };
            // A refused value stays in `params` as typed, as AnsibleModule shows it.
            match coerce::convert(name, kind, raw) {
                Err(e) => errors.push(e),
                Ok(value) => {
                    let unset = (unset_if_empty && value.as_str() == Some(""))
                        || (STORE_DEFAULTS.contains(&name) && value.as_str() == default);
                    if !unset {
                        chosen.insert(name.into(), value.clone());
                    }
                    params.insert(name.into(), value);
                }
            }
        }
        errors.extend(check_choices(&chosen).map(|e| e.to_string()));
        if chosen.get("archive") == Some(&Value::Bool(true)) && !chosen.contains_key("archive_path")
        {
            errors
                .push("archive is True but all of the following are missing: archive_path".into());
        }
        if !self.ignore_unknown {
            errors.extend(unsupported(&params));
        }
        if let Some(first) = errors.into_iter().next() {
            return ModuleArgs {
                spec: Err(first),
                params,
            };
        }
        // The Python module defaults an unset or empty lv_name to the name after AnsibleModule's
        // checks, so a refused task shows null and every other result the name.
        if !chosen.contains_key("lv_name") {
            params.insert("lv_name".into(), params["name"].clone());
        }
        // Same names and shapes as the library's raw options; options not set stay None.
        let spec = serde_json::from_value(Value::Object(chosen))
            .map_err(|e| format!("internal error: options do not fit the library: {e}"));
        ModuleArgs { spec, params }
    }
}

/// The first choice that is not one, in AnsibleModule's order, in the library's words.
fn check_choices(chosen: &Map<String, Value>) -> Option<SpecError> {
    let text = |option: &str| chosen.get(option).and_then(Value::as_str);
    [
        text("backing_store").and_then(|s| parse_store(s).err()),
        text("state").and_then(|s| DesiredState::parse(s).err()),
        text("container_log_level").and_then(|l| parse_log_level(l).err()),
        text("archive_compression").and_then(|c| Compression::parse(c).err()),
    ]
    .into_iter()
    .flatten()
    .next()
}

/// AnsibleModule's message for keys that are not options, if there are any.
fn unsupported(params: &Map<String, Value>) -> Option<String> {
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !OPTIONS.iter().any(|o| o.0 == *k))
        .collect();
    if unknown.is_empty() {
        return None;
    }
    unknown.sort_unstable();
    let mut supported: Vec<&str> = OPTIONS.iter().map(|o| o.0).collect();
    supported.sort_unstable();
    Some(format!(
        "Unsupported parameters for (lxc_container) module: {}. Supported parameters include: {}.",
        unknown.join(", "),
        supported.join(", ")
    ))
}
