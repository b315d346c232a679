//! Converts JSON values the way AnsibleModule's `type:` checks do (`str`, `bool`, `path`,
//! `list` of `str`), with its error wording, so playbooks see the messages they know.

use std::path::PathBuf;

use serde_json::Value;

/// Strings (lower-cased, trimmed) that `type: bool` takes as true or false.
const TRUE: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
const FALSE: [&str; 6] = ["n", "no", "off", "0", "false", "f"];

/// The Python type name of a JSON value, as AnsibleModule prints it.
pub fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

/// `type: str`: strings as they are; numbers and booleans as Python prints them.
pub fn to_str(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(true) => Ok("True".into()),
        Value::Bool(false) => Ok("False".into()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{} cannot be converted to a str", py_type(other))),
    }
}

/// `type: bool`: true/false, 1/0, and the strings yes/no, on/off, true/false, y/n, t/f, 1/0
/// in any case.
pub fn to_bool(v: &Value) -> Result<bool, String> {
    let text = match v {
        Value::Bool(b) => return Ok(*b),
        Value::Number(n) if n.as_f64() == Some(1.0) => return Ok(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => return Ok(false),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("{} cannot be converted to a bool", py_type(other))),
    };
    let norm = text.trim().to_lowercase();
    if TRUE.contains(&norm.as_str()) {
        Ok(true)
    } else if FALSE.contains(&norm.as_str()) {
        Ok(false)
    } else {
        let valid: Vec<String> = TRUE
            .iter()
            .chain(&FALSE)
            .map(|s| format!("'{s}'"))
            .collect();
        Err(format!(
            "The value '{text}' is not a valid boolean.  Valid booleans include: {}, 1, 0",
            valid.join(", ")
        ))
    }
}

/// `type: path`: a string with `$VAR`, `${VAR}` and a leading `~` or `~user` expanded.
pub fn to_path(v: &Value) -> Result<PathBuf, String> {
    Ok(PathBuf::from(expand_user(&expand_vars(&to_str(v)?))))
}

/// `type: list, elements: str`. A single string is split on commas as AnsibleModule does,
/// but only before an `lxc.` key, so a value such as `cpus=0,1` or a mount entry's
/// `bind,create=dir` stays whole; lines of a multi-line string are separate entries.
pub fn to_str_list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items.iter().map(to_str).collect(),
        Value::String(s) => Ok(split_config_string(s)),
        Value::Number(n) => Ok(vec![n.to_string()]),
        other => Err(format!("{} cannot be converted to a list", py_type(other))),
    }
}

fn starts_with_key(piece: &str) -> bool {
    let Some((key, _)) = piece.split_once('=') else {
        return false;
    };
    let key = key.trim();
    key.starts_with("lxc.")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
}

fn split_config_string(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in s.lines() {
        let mut first = true;
        for piece in line.split(',') {
            match out.last_mut() {
                Some(last) if !first && !starts_with_key(piece) => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => out.push(piece.to_string()),
            }
            first = false;
        }
    }
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Python's `os.path.expandvars`: unknown variables are left as written.
fn expand_vars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match std::env::var(name) {
            Ok(value) if !name.is_empty() => out.push_str(&value),
            _ => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Python's `os.path.expanduser` for `~` and `~user` (home directories from /etc/passwd).
fn expand_user(s: &str) -> String {
    let Some(tail) = s.strip_prefix('~') else {
        return s.to_string();
    };
    let (user, rest) = tail.split_at(tail.find('/').unwrap_or(tail.len()));
    let home = if user.is_empty() {
        std::env::var("HOME").ok()
    } else {
        std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 5 && f[0] == user)
                .map(|f| f[5].to_string())
        })
    };
    match home {
        Some(h) => format!("{}{rest}", h.trim_end_matches('/')),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bools_as_ansible_takes_them() {
        for t in [
            json!(true),
            json!("yes"),
            json!("True"),
            json!("1"),
            json!("on"),
            json!(1),
        ] {
            assert_eq!(to_bool(&t), Ok(true), "{t}");
        }
        for f in [
            json!(false),
            json!("no"),
            json!(" OFF "),
            json!("0"),
            json!("f"),
            json!(0.0),
        ] {
            assert_eq!(to_bool(&f), Ok(false), "{f}");
        }
        assert!(to_bool(&json!("maybe"))
            .unwrap_err()
            .contains("'maybe' is not a valid"));
        assert!(to_bool(&json!(2)).is_err());
        assert!(to_bool(&json!([])).unwrap_err().contains("<class 'list'>"));
    }

    #[test]
    fn strings_convert_scalars_like_python() {
        assert_eq!(to_str(&json!(5)).unwrap(), "5");
        assert_eq!(to_str(&json!(true)).unwrap(), "True");
        assert!(to_str(&json!({"a": 1})).is_err());
    }

    #[test]
    fn a_config_string_splits_only_before_keys() {
        assert_eq!(
            to_str_list(&json!("lxc.a=1,lxc.b=2")).unwrap(),
            ["lxc.a=1", "lxc.b=2"]
        );
        assert_eq!(
            to_str_list(&json!("lxc.cgroup.cpuset.cpus=0,1")).unwrap(),
            ["lxc.cgroup.cpuset.cpus=0,1"]
        );
        assert_eq!(
            to_str_list(&json!("lxc.mount.entry=/a b none bind,create=dir 0 0")).unwrap(),
            ["lxc.mount.entry=/a b none bind,create=dir 0 0"]
        );
        assert_eq!(
            to_str_list(&json!("lxc.a=1\nlxc.b=2\n")).unwrap(),
            ["lxc.a=1", "lxc.b=2"]
        );
        assert_eq!(to_str_list(&json!(["x", 3])).unwrap(), ["x", "3"]);
    }

    #[test]
    fn paths_expand_vars_and_home() {
        std::env::set_var("LXCFORM_COERCE_TEST", "/v");
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(
            to_path(&json!("$LXCFORM_COERCE_TEST/a/${LXCFORM_COERCE_TEST}")).unwrap(),
            PathBuf::from("/v/a//v")
        );
        assert_eq!(
            to_path(&json!("$NO_SUCH_VAR_X/a")).unwrap(),
            PathBuf::from("$NO_SUCH_VAR_X/a")
        );
        assert_eq!(
            to_path(&json!("~/x")).unwrap(),
            PathBuf::from(format!("{}/x", home.trim_end_matches('/')))
        );
        assert_eq!(
            to_path(&json!("~root/x")).unwrap(),
            PathBuf::from("/root/x")
        );
        assert_eq!(to_path(&json!("a~b")).unwrap(), PathBuf::from("a~b"));
    }
}
