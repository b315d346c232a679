//! The args file Ansible writes: task options plus internal `_ansible_*` keys, checked in
//! AnsibleModule's order (unsupported, required, types, required_if) and turned into the
//! library's [`SpecArgs`]. Choices and everything else are checked by [`SpecArgs::validate`].

use serde_json::{Map, Value};

use crate::coerce::{self, py_type};
use crate::options::{Kind, OPTIONS, STORE_DEFAULTS};
use lxcform::SpecArgs;

/// The args file as read: the options as typed and the internal `_ansible_*` flags.
#[derive(Debug, Default)]
pub struct Raw {
    top: Map<String, Value>,
    /// `_ansible_check_mode`.
    pub check: bool,
    /// `_ansible_diff`.
    pub diff: bool,
    /// `_ansible_no_log`.
    pub no_log: bool,
    ignore_unknown: bool,
}

/// What the task asked for, checked.
#[derive(Debug, Default)]
pub struct ModuleArgs {
    /// The options the task set, for the library.
    pub spec: SpecArgs,
    /// Every option with its value or default, as AnsibleModule reports `invocation`.
    pub params: Map<String, Value>,
    /// Free-form values after conversion (expanded paths), masked in output under `no_log`.
    pub secrets: Vec<String>,
}

fn public(name: &str) -> bool {
    OPTIONS.iter().any(|o| o.0 == name && o.3)
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
            no_log: flag("_ansible_no_log"),
            ignore_unknown: flag("_ansible_ignore_unknown_opts"),
            top,
        })
    }

    /// The values as typed of every option that is not a fixed choice or a bool.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, v) in &self.top {
            if key.starts_with("_ansible_") || public(key) {
                continue;
            }
            let items = match v {
                Value::Array(items) => items.as_slice(),
                one => std::slice::from_ref(one),
            };
            out.extend(items.iter().filter_map(|i| coerce::to_str(i).ok()));
        }
        out
    }

    /// Checks the options in AnsibleModule's order; `Err` is the message to fail with.
    pub fn into_args(self) -> Result<ModuleArgs, String> {
        let top = self.top;
        let mut unsupported: Vec<&str> = top
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with("_ansible_") && !OPTIONS.iter().any(|o| o.0 == *k))
            .collect();
        if !unsupported.is_empty() && !self.ignore_unknown {
            unsupported.sort_unstable();
            let mut supported: Vec<&str> = OPTIONS.iter().map(|o| o.0).collect();
            supported.sort_unstable();
            return Err(format!(
                "Unsupported parameters for (lxc_container) module: {}. Supported parameters include: {}.",
                unsupported.join(", "),
                supported.join(", ")
            ));
        }
        let given = |name: &str| top.get(name).filter(|v| !v.is_null());
        if given("name").is_none() {
            return Err("missing required arguments: name".into());
        }
        let mut args = ModuleArgs::default();
        let mut chosen = Map::new();
        for (name, kind, default, public) in OPTIONS {
            let Some(raw) = given(name) else {
                let default = default.map(|d| match kind {
                    Kind::Bool => Value::Bool(d == "true"),
                    _ => Value::String(d.into()),
                });
                args.params
                    .insert(name.into(), default.unwrap_or(Value::Null));
                continue;
            };
            let value = convert(kind, raw).map_err(|e| {
                format!(
                    "argument '{name}' is of type {} and we were unable to convert to {}: {e}",
                    py_type(raw),
                    kind.as_str()
                )
            })?;
            if !public {
                let items = match &value {
                    Value::Array(items) => items.as_slice(),
                    one => std::slice::from_ref(one),
                };
                args.secrets
                    .extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
            }
            if !(STORE_DEFAULTS.contains(&name) && value.as_str() == default) {
                chosen.insert(name.into(), value.clone());
            }
            args.params.insert(name.into(), value);
        }
        if chosen.get("archive") == Some(&Value::Bool(true)) && !chosen.contains_key("archive_path")
        {
            return Err(
                "archive is True but all of the following are missing: archive_path".into(),
            );
        }
        // Same names and shapes as the library's raw options; options not set stay None.
        args.spec = serde_json::from_value(Value::Object(chosen))
            .map_err(|e| format!("internal error: options do not fit the library: {e}"))?;
        Ok(args)
    }
}

fn convert(kind: Kind, raw: &Value) -> Result<Value, String> {
    Ok(match kind {
        Kind::Str => Value::String(coerce::to_str(raw)?),
        Kind::Bool => Value::Bool(coerce::to_bool(raw)?),
        Kind::Path => Value::String(coerce::to_path(raw)?.to_string_lossy().into_owned()),
        Kind::List => Value::from(coerce::to_str_list(raw)?),
    })
}
