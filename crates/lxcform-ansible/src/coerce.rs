//! Converts JSON values the way AnsibleModule's `type:` checks do (`str`, `bool`, `path`,
//! `list` of `str`), with ansible-core 2.19's error wording, so playbooks see the messages
//! they know.

use std::iter::Peekable;
use std::path::PathBuf;
use std::str::Chars;

use serde_json::Value;

use crate::options::Kind;

/// The Python type name of a JSON value, as AnsibleModule names it (`native_type_name`).
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The Python class of a JSON value, as the type checkers print it (`<class 'dict'>`).
fn py_class(v: &Value) -> String {
    format!("<class '{}'>", py_type(v))
}

/// Converts an option's value to its type; `Err` is AnsibleModule's message for it.
pub fn convert(name: &str, kind: Kind, raw: &Value) -> Result<Value, String> {
    let whole = |e: String| {
        format!(
            "argument '{name}' is of type {} and we were unable to convert to {}: {e}",
            py_type(raw),
            kind.as_str()
        )
    };
    Ok(match kind {
        Kind::Str => Value::String(to_str(raw).map_err(whole)?),
        Kind::Bool => Value::Bool(to_bool(raw).map_err(whole)?),
        Kind::Path => Value::String(to_path(raw).map_err(whole)?.to_string_lossy().into_owned()),
        Kind::List => {
            let items = match raw {
                Value::Array(items) => items.clone(),
                one => to_list(one).map_err(whole)?,
            };
            let mut lines = Vec::new();
            for item in &items {
                let text = to_str(item).map_err(|e| {
                    format!(
                        "Elements value for option '{name}' is of type {} and we were unable to convert to str: {e}",
                        py_type(item)
                    )
                })?;
                lines.extend(non_empty_lines(&text));
            }
            Value::from(lines)
        }
    })
}

/// `type: str`: strings as they are, null as `''` (ansible-core 2.19), numbers and booleans
/// as Python prints them. AnsibleModule would also turn a list or a dict into its Python
/// text; no option takes that, so it is an error here, in `check_type_str`'s words.
fn to_str(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Bool(true) => Ok("True".into()),
        Value::Bool(false) => Ok("False".into()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "'{other}' is not a string and conversion is not allowed"
        )),
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
        other => return Err(format!("{} cannot be converted to a bool", py_class(other))),
    };
    if let Some(b) = lxcform::spec::parse_bool(&text) {
        Ok(b)
    } else {
        let valid: Vec<String> = lxcform::spec::BOOL_TRUE
            .iter()
            .chain(&lxcform::spec::BOOL_FALSE)
            .map(|s| format!("'{s}'"))
            .collect();
        Err(format!(
            "The value '{text}' is not a valid boolean. Valid booleans include: {}, 1, 0",
            valid.join(", ")
        ))
    }
}

/// `type: path`: a string with `$VAR`, `${VAR}` and a leading `~` or `~user` expanded.
fn to_path(v: &Value) -> Result<PathBuf, String> {
    Ok(PathBuf::from(expand_user(&expand_vars(&to_str(v)?))))
}

/// `type: list` for a value that is not a list. A string that is a Python or JSON list of
/// quoted strings is read as one (the 2015 module took `container_config` as such a string);
/// any other string is split on commas as AnsibleModule does, but only before an `lxc.` key,
/// so a value such as `cpus=0,1` or a mount entry's `bind,create=dir` stays whole.
fn to_list(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::String(s) if s.trim_start().starts_with('[') => Ok(parse_list_literal(s)?
            .into_iter()
            .map(Value::from)
            .collect()),
        Value::String(s) => Ok(split_config_string(s)
            .into_iter()
            .map(Value::from)
            .collect()),
        Value::Number(n) => Ok(vec![Value::from(n.to_string())]),
        other => Err(format!("{} cannot be converted to a list", py_class(other))),
    }
}

/// An element's lines, trimmed, without the blank ones: the Python module writes an element
/// with newlines as that many config lines, and a blank element means nothing.
fn non_empty_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
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

/// A config string's entries: its lines, each split on the commas before an `lxc.` key.
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
    out
}

/// Reads `['a=1', "b=2"]`: a list of single- or double-quoted strings with the escapes of
/// Python and JSON (`\\ \' \" \n \t \r \/ \xHH \uHHHH \UHHHHHHHH`), a trailing comma
/// allowed; nothing else (no expressions, no nesting, no implicit concatenation).
fn parse_list_literal(text: &str) -> Result<Vec<String>, String> {
    let bad = |what: &str| format!("cannot read {text:?} as a list of quoted strings: {what}");
    let mut chars = text.trim().chars().peekable();
    if chars.next() != Some('[') {
        return Err(bad("it does not start with '['"));
    }
    let mut items = Vec::new();
    loop {
        skip_space(&mut chars);
        match chars.next() {
            Some(']') => break,
            Some(q @ ('\'' | '"')) => items.push(read_quoted(&mut chars, q).map_err(|e| bad(&e))?),
            Some(c) => {
                return Err(bad(&format!(
                    "expected a quoted string or ']', found {c:?}"
                )))
            }
            None => return Err(bad("the list is not closed with ']'")),
        }
        skip_space(&mut chars);
        match chars.next() {
            Some(',') => continue,
            Some(']') => break,
            Some(c) => {
                return Err(bad(&format!(
                    "expected ',' or ']' after a string, found {c:?}"
                )))
            }
            None => return Err(bad("the list is not closed with ']'")),
        }
    }
    match chars.next() {
        None => Ok(items),
        Some(c) => Err(bad(&format!("unexpected {c:?} after the closing ']'"))),
    }
}

/// A string's text after its opening quote `q`, up to and including the closing one.
fn skip_space(chars: &mut Peekable<Chars>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

fn read_quoted(chars: &mut impl Iterator<Item = char>, q: char) -> Result<String, String> {
    let mut out = String::new();
    loop {
        match chars.next() {
            None | Some('\n') => return Err(format!("a string is not closed with {q}")),
            Some(c) if c == q => return Ok(out),
            Some('\\') => {
                let c = chars.next().ok_or("a string ends with a lone '\\'")?;
                let mut hex = |n: usize| -> Result<char, String> {
                    let digits: String = chars.by_ref().take(n).collect();
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .filter(|_| {
                            digits.len() == n && digits.chars().all(|d| d.is_ascii_hexdigit())
                        })
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("bad escape \\{c}{digits}"))
                };
                out.push(match c {
                    '\\' | '\'' | '"' | '/' => c,
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    other => return Err(format!("unknown escape \\{other}")),
                });
            }
            Some(c) => out.push(c),
        }
    }
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
        // ansible-core 2.19's words: one space after the period, the class inside.
        assert!(to_bool(&json!("maybe"))
            .unwrap_err()
            .starts_with("The value 'maybe' is not a valid boolean. Valid booleans include: "));
        assert!(to_bool(&json!(2)).is_err());
        assert_eq!(
            to_bool(&json!([])).unwrap_err(),
            "<class 'list'> cannot be converted to a bool"
        );
    }

    #[test]
    fn type_errors_use_ansible_core_2_19_wording() {
        assert_eq!(
            convert("archive", Kind::Bool, &json!({"a": 1})).unwrap_err(),
            "argument 'archive' is of type dict and we were unable to convert to bool: <class 'dict'> cannot be converted to a bool"
        );
        assert_eq!(
            convert("container_config", Kind::List, &json!(true)).unwrap_err(),
            "argument 'container_config' is of type bool and we were unable to convert to list: <class 'bool'> cannot be converted to a list"
        );
        assert_eq!(
            convert("container_config", Kind::List, &json!(["a=1", {"b": 2}])).unwrap_err(),
            "Elements value for option 'container_config' is of type dict and we were unable to convert to str: '{\"b\":2}' is not a string and conversion is not allowed"
        );
        assert!(convert("template", Kind::Str, &json!(["a"]))
            .unwrap_err()
            .starts_with(
                "argument 'template' is of type list and we were unable to convert to str: "
            ));
        assert_eq!(py_type(&json!(1.5)), "float");
        assert_eq!(py_type(&json!(7)), "int");
    }

    #[test]
    fn strings_convert_scalars_like_python() {
        assert_eq!(to_str(&json!(5)).unwrap(), "5");
        assert_eq!(to_str(&json!(true)).unwrap(), "True");
        assert_eq!(to_str(&Value::Null).unwrap(), "");
        assert!(to_str(&json!({"a": 1})).is_err());
    }

    fn lines(v: Value) -> Vec<String> {
        match convert("container_config", Kind::List, &v).unwrap() {
            Value::Array(items) => items.iter().map(|i| i.as_str().unwrap().into()).collect(),
            other => panic!("not a list: {other}"),
        }
    }

    fn bad_literal(text: &str) -> String {
        convert("container_config", Kind::List, &json!(text)).unwrap_err()
    }

    #[test]
    fn a_config_string_splits_only_before_keys() {
        assert_eq!(lines(json!("lxc.a=1,lxc.b=2")), ["lxc.a=1", "lxc.b=2"]);
        assert_eq!(
            lines(json!("lxc.cgroup.cpuset.cpus=0,1")),
            ["lxc.cgroup.cpuset.cpus=0,1"]
        );
        assert_eq!(
            lines(json!("lxc.mount.entry=/a b none bind,create=dir 0 0")),
            ["lxc.mount.entry=/a b none bind,create=dir 0 0"]
        );
        assert_eq!(lines(json!(["x", 3])), ["x", "3"]);
        assert_eq!(lines(json!(5)), ["5"]);
        assert!(lines(json!("")).is_empty());
    }

    #[test]
    fn a_multi_line_string_is_one_entry_per_non_empty_line() {
        // What a YAML `|` block gives.
        assert_eq!(
            lines(json!("lxc.a=1\n\n  lxc.b=2  \r\nlxc.c=x,y\n")),
            ["lxc.a=1", "lxc.b=2", "lxc.c=x,y"]
        );
    }

    #[test]
    fn list_elements_with_newlines_are_several_lines() {
        assert_eq!(
            lines(json!(["lxc.a=1\nlxc.b=2", "", "  ", null, "lxc.c=3,4"])),
            ["lxc.a=1", "lxc.b=2", "lxc.c=3,4"]
        );
    }

    #[test]
    fn a_python_or_json_list_literal_is_read_as_a_list() {
        assert_eq!(
            lines(json!("['lxc.tty.max=6', 'lxc.pty.max=3']")),
            ["lxc.tty.max=6", "lxc.pty.max=3"]
        );
        assert_eq!(lines(json!(r#" ["a=1", "b=2",] "#)), ["a=1", "b=2"]);
        assert!(lines(json!("[]")).is_empty());
        // Commas and the other quote inside a string belong to it; escapes are decoded.
        assert_eq!(
            lines(json!(
                r#"['lxc.cgroup.cpuset.cpus=0,1', "m=it's", 'q=\'x\' \"y\"']"#
            )),
            ["lxc.cgroup.cpuset.cpus=0,1", "m=it's", r#"q='x' "y""#]
        );
        assert_eq!(
            lines(json!(
                r#"["a=\\b\/c\u00e9\x41\U0001F600", 'b=1\nc=2', "t=\tx"]"#
            )),
            ["a=\\b/c\u{e9}A\u{1F600}", "b=1", "c=2", "t=\tx"]
        );
    }

    #[test]
    fn bad_list_literals_name_the_option_and_the_value() {
        for (text, why) in [
            ("['a=1'", "not closed with ']'"),
            ("['a=1' 'b=2']", "expected ',' or ']'"),
            ("[a=1]", "expected a quoted string or ']'"),
            ("[,]", "expected a quoted string or ']'"),
            ("['a=1',,]", "expected a quoted string or ']'"),
            ("['a=1'] x", "after the closing ']'"),
            ("['a=1]", "not closed with '"),
            ("['a=\\d']", "unknown escape \\d"),
            ("['a=\\x4']", "bad escape"),
            ("['a=\\x+4']", "bad escape"),
            ("['a=\\ud800']", "bad escape"),
            ("[['a=1']]", "expected a quoted string"),
            ("['a\nb']", "not closed"),
        ] {
            let msg = bad_literal(text);
            assert!(
                msg.starts_with("argument 'container_config' is of type str and we were unable to convert to list: cannot read "),
                "{text}: {msg}"
            );
            assert!(msg.contains(&format!("{text:?}")), "{text}: {msg}");
            assert!(msg.contains(why), "{text}: {msg}");
        }
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
