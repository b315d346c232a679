//! LXC config files: parse, compute the edits that make them carry the wanted lines, apply
//! them keeping comments and order, and write the result atomically.
//!
//! Rules (each a fix over the Python module): a single-valued key is replaced in place and
//! never duplicated; a multi-valued key (`lxc.mount.entry`, `lxc.cap.drop` …) gets a line
//! only when that exact value is not there yet; keys match exactly, never as a prefix.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::spec::SpecError;

/// One wanted `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLine {
    /// The key, e.g. `lxc.net.0.ipv4.address`.
    pub key: String,
    /// The value, trimmed.
    pub value: String,
}

impl ConfigLine {
    /// `key = value`, as written to the file.
    pub fn render(&self) -> String {
        format!("{} = {}", self.key, self.value)
    }
}

/// Keys renamed in LXC 2.1/3.0, with their current names. Playbooks written for the 2015
/// module use the old ones (`lxc.aa_profile`), which LXC 5 refuses.
const LEGACY_KEYS: [(&str, &str); 16] = [
    ("lxc.aa_profile", "lxc.apparmor.profile"),
    ("lxc.aa_allow_incomplete", "lxc.apparmor.allow_incomplete"),
    ("lxc.se_context", "lxc.selinux.context"),
    ("lxc.utsname", "lxc.uts.name"),
    ("lxc.rootfs", "lxc.rootfs.path"),
    ("lxc.rootfs.backend", "lxc.rootfs.path"),
    ("lxc.id_map", "lxc.idmap"),
    ("lxc.tty", "lxc.tty.max"),
    ("lxc.devttydir", "lxc.tty.dir"),
    ("lxc.pts", "lxc.pty.max"),
    ("lxc.haltsignal", "lxc.signal.halt"),
    ("lxc.stopsignal", "lxc.signal.stop"),
    ("lxc.rebootsignal", "lxc.signal.reboot"),
    ("lxc.init_cmd", "lxc.init.cmd"),
    ("lxc.logfile", "lxc.log.file"),
    ("lxc.loglevel", "lxc.log.level"),
];

/// The current name of a key renamed since LXC 2 (`lxc.network.0.link` → `lxc.net.0.link`).
pub fn modern_key(key: &str) -> Option<String> {
    if let Some((_, new)) = LEGACY_KEYS.iter().find(|(old, _)| *old == key) {
        return Some((*new).to_string());
    }
    if let Some(rest) = key.strip_prefix("lxc.network.") {
        return Some(match rest.rsplit_once('.') {
            Some((index, "ipv4")) => format!("lxc.net.{index}.ipv4.address"),
            Some((index, "ipv6")) => format!("lxc.net.{index}.ipv6.address"),
            _ => format!("lxc.net.{rest}"),
        });
    }
    None
}

/// Whether a key may appear on several lines, each adding a value.
pub fn is_multi_valued(key: &str) -> bool {
    const EXACT: [&str; 13] = [
        "lxc.mount.entry",
        "lxc.mount.auto",
        "lxc.cap.drop",
        "lxc.cap.keep",
        "lxc.cgroup.devices.allow",
        "lxc.cgroup.devices.deny",
        "lxc.cgroup2.devices.allow",
        "lxc.cgroup2.devices.deny",
        "lxc.environment",
        "lxc.include",
        "lxc.idmap",
        "lxc.apparmor.raw",
        "lxc.group",
    ];
    if EXACT.contains(&key) || key.starts_with("lxc.hook.") {
        return true;
    }
    // lxc.net.<n>.ipv4.address, lxc.net.<n>.ipv6.address, lxc.net.<n>.veth.ipv4.route …
    if let Some(rest) = key.strip_prefix("lxc.net.") {
        if let Some((index, sub)) = rest.split_once('.') {
            return index.bytes().all(|b| b.is_ascii_digit())
                && matches!(
                    sub,
                    "ipv4.address"
                        | "ipv6.address"
                        | "veth.ipv4.route"
                        | "veth.ipv6.route"
                        | "veth.vlan.tagged.id"
                );
        }
    }
    false
}

/// Parses `container_config` entries (`key=value`), translating keys renamed since LXC 2.
/// Returns the lines and a warning for each translated key.
pub fn parse_lines(raw: &[String]) -> Result<(Vec<ConfigLine>, Vec<String>), SpecError> {
    let mut lines: Vec<ConfigLine> = Vec::new();
    let mut warnings = Vec::new();
    for entry in raw {
        let shown = entry.escape_debug().to_string();
        let invalid = |reason: &str| SpecError::Invalid {
            option: "container_config",
            value: shown.clone(),
            reason: reason.to_string(),
        };
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| invalid("expected key=value"))?;
        let (mut key, value) = (key.trim().to_string(), value.trim().to_string());
        if key.is_empty() {
            return Err(invalid("the key is empty"));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "the key contains whitespace or a control character",
            ));
        }
        if value.chars().any(|c| c == '\n' || c == '\r' || c == '\0') {
            return Err(invalid(
                "the value spans several lines or contains a NUL byte",
            ));
        }
        if !key.starts_with("lxc.") {
            return Err(invalid("config keys start with \"lxc.\""));
        }
        if let Some(new) = modern_key(&key) {
            warnings.push(format!(
                "container_config: {key} is called {new} since LXC 2.1; using {new}"
            ));
            key = new;
        }
        if let Err(reason) = crate::liblxc::check_config_item(&key, &value) {
            return Err(invalid(&reason));
        }
        let line = ConfigLine { key, value };
        if lines.contains(&line) {
            continue;
        }
        if !is_multi_valued(&line.key) {
            if let Some(other) = lines.iter().find(|l| l.key == line.key) {
                return Err(invalid(&format!(
                    "{} is single-valued and is already given as {:?}",
                    line.key, other.value
                )));
            }
        }
        lines.push(line);
    }
    Ok((lines, warnings))
}

/// One line of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `key = value` (the original text is kept so that untouched lines are written back as
    /// they were).
    Entry {
        key: String,
        value: String,
        raw: String,
    },
    /// A comment, a blank line or anything that is not `key = value`.
    Other(String),
}

/// A change to a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigEdit {
    /// A new line.
    Add(ConfigLine),
    /// A single-valued key's line changes value in place.
    Replace {
        /// The new line.
        line: ConfigLine,
        /// The value it had.
        old: String,
    },
    /// A further line for a single-valued key, which LXC would let override the first.
    RemoveDuplicate(ConfigLine),
}

impl std::fmt::Display for ConfigEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigEdit::Add(l) => write!(f, "+ {}", l.render()),
            ConfigEdit::Replace { line, old } => {
                write!(f, "~ {} ({:?} -> {:?})", line.key, old, line.value)
            }
            ConfigEdit::RemoveDuplicate(l) => write!(f, "- {} (duplicate)", l.render()),
        }
    }
}

/// A parsed LXC config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    lines: Vec<Line>,
}

fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

impl ConfigFile {
    /// Parses the text of a config file. Never fails: lines that are not `key = value` are kept
    /// as they are.
    pub fn parse(text: &str) -> ConfigFile {
        let lines = text
            .lines()
            .map(|raw| {
                let t = raw.trim_start();
                match t.split_once('=') {
                    Some((k, v)) if !t.starts_with('#') && !k.trim().is_empty() => Line::Entry {
                        key: k.trim().to_string(),
                        value: v.trim().to_string(),
                        raw: raw.to_string(),
                    },
                    _ => Line::Other(raw.to_string()),
                }
            })
            .collect();
        ConfigFile { lines }
    }

    /// Reads and parses a config file.
    pub fn read(path: &Path) -> std::io::Result<ConfigFile> {
        let bytes = fs::read(path)?;
        Ok(ConfigFile::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Every `key = value` entry, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { key, value, .. } => Some((key.as_str(), value.as_str())),
            Line::Other(_) => None,
        })
    }

    /// The values of `key`, in file order.
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.entries()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect()
    }

    /// The edits that make this file carry every wanted line. Empty when it already does.
    pub fn edits_for(&self, wanted: &[ConfigLine]) -> Vec<ConfigEdit> {
        let mut edits = Vec::new();
        for line in wanted {
            let have = self.get(&line.key);
            if is_multi_valued(&line.key) {
                if !have.iter().any(|v| same_value(v, &line.value)) {
                    edits.push(ConfigEdit::Add(line.clone()));
                }
                continue;
            }
            match have.split_first() {
                None => edits.push(ConfigEdit::Add(line.clone())),
                Some((first, rest)) => {
                    if !same_value(first, &line.value) {
                        edits.push(ConfigEdit::Replace {
                            line: line.clone(),
                            old: first.to_string(),
                        });
                    }
                    for dup in rest {
                        edits.push(ConfigEdit::RemoveDuplicate(ConfigLine {
                            key: line.key.clone(),
                            value: dup.to_string(),
                        }));
                    }
                }
            }
        }
        edits
    }

    /// Applies edits from [`ConfigFile::edits_for`]. New lines for a key go after the last
    /// line with that key, others at the end.
    pub fn apply(&mut self, edits: &[ConfigEdit]) {
        for edit in edits {
            match edit {
                ConfigEdit::Add(line) => {
                    let entry = Line::Entry {
                        key: line.key.clone(),
                        value: line.value.clone(),
                        raw: line.render(),
                    };
                    let at = self
                        .lines
                        .iter()
                        .rposition(|l| matches!(l, Line::Entry { key, .. } if *key == line.key))
                        .map_or(self.lines.len(), |i| i + 1);
                    self.lines.insert(at, entry);
                }
                ConfigEdit::Replace { line, .. } => {
                    if let Some(l) = self
                        .lines
                        .iter_mut()
                        .find(|l| matches!(l, Line::Entry { key, .. } if *key == line.key))
                    {
                        *l = Line::Entry {
                            key: line.key.clone(),
                            value: line.value.clone(),
                            raw: line.render(),
                        };
                    }
                }
                ConfigEdit::RemoveDuplicate(line) => {
                    let first = self
                        .lines
                        .iter()
                        .position(|l| matches!(l, Line::Entry { key, .. } if *key == line.key));
                    let dup = self.lines.iter().enumerate().position(|(i, l)| {
                        Some(i) != first
                            && matches!(l, Line::Entry { key, value, .. } if *key == line.key && *value == line.value)
                    });
                    if let Some(i) = dup {
                        self.lines.remove(i);
                    }
                }
            }
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(match l {
                Line::Entry { raw, .. } => raw,
                Line::Other(raw) => raw,
            });
            out.push('\n');
        }
        out
    }

    /// The entries as `key = value` lines, for diffs.
    pub fn entries_text(&self) -> String {
        self.entries()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    }
}

/// Writes `contents` to `path` atomically: a temporary file beside it, fsynced, given the old
/// file's mode, then renamed over it, and the directory fsynced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `.lxcform-` first: archives leave such files out. One that a killed writer left (its
    // process gone, or its pid now ours) is removed; it holds a config never put in place.
    let prefix = format!(".lxcform-{file_name}.");
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .and_then(|pid| pid.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    let tmp: PathBuf = dir.join(format!("{prefix}{}.tmp", std::process::id()));
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o640);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_compat(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

trait ModeCompat {
    fn mode_compat(&mut self, mode: u32) -> &mut Self;
}

impl ModeCompat for fs::OpenOptions {
    fn mode_compat(&mut self, mode: u32) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(mode & 0o777)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(key: &str, value: &str) -> ConfigLine {
        ConfigLine {
            key: key.into(),
            value: value.into(),
        }
    }

    const BASE: &str = "# Template used to create this container\n\
        lxc.include = /usr/share/lxc/config/common.conf\n\
        lxc.net.0.type = veth\n\
        lxc.net.0.ipv4.gateway = 10.0.3.1\n\
        lxc.tty.max = 4\n\
        lxc.mount.entry = /a a none bind 0 0\n";

    fn apply(text: &str, wanted: &[ConfigLine]) -> (Vec<ConfigEdit>, String) {
        let mut f = ConfigFile::parse(text);
        let edits = f.edits_for(wanted);
        f.apply(&edits);
        (edits, f.render())
    }

    #[test]
    fn single_valued_key_is_replaced_in_place() {
        let (edits, text) = apply(BASE, &[l("lxc.tty.max", "1")]);
        assert_eq!(edits.len(), 1);
        assert_eq!(text, BASE.replace("lxc.tty.max = 4", "lxc.tty.max = 1"));
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let wanted = [
            l("lxc.tty.max", "1"),
            l("lxc.mount.entry", "/b b none bind 0 0"),
        ];
        let (_, text) = apply(BASE, &wanted);
        let (edits, again) = apply(&text, &wanted);
        assert!(edits.is_empty());
        assert_eq!(again, text);
    }

    #[test]
    fn keys_match_exactly_never_as_prefix() {
        // The Python module's regex `lxc.net.0.ipv4(\s+)?=` style matching let one key hit another.
        let (edits, text) = apply(BASE, &[l("lxc.net.0.ipv4.address", "10.0.3.5/24")]);
        assert_eq!(
            edits,
            [ConfigEdit::Add(l("lxc.net.0.ipv4.address", "10.0.3.5/24"))]
        );
        assert!(text.contains("lxc.net.0.ipv4.gateway = 10.0.3.1\n"));
        assert!(text.ends_with("lxc.net.0.ipv4.address = 10.0.3.5/24\n"));
    }

    #[test]
    fn multi_valued_keys_append_after_their_kind_without_duplicates() {
        let (edits, text) = apply(
            BASE,
            &[
                l("lxc.mount.entry", "/b b none bind 0 0"),
                l("lxc.mount.entry", "/a  a none bind 0 0"),
            ],
        );
        assert_eq!(edits.len(), 1, "whitespace-equal value is already there");
        assert!(text.ends_with(
            "lxc.mount.entry = /a a none bind 0 0\nlxc.mount.entry = /b b none bind 0 0\n"
        ));
    }

    #[test]
    fn duplicated_single_values_are_collapsed() {
        let text = "lxc.tty.max = 4\nlxc.tty.max = 2\n";
        let (edits, out) = apply(text, &[l("lxc.tty.max", "4")]);
        assert_eq!(edits, [ConfigEdit::RemoveDuplicate(l("lxc.tty.max", "2"))]);
        assert_eq!(out, "lxc.tty.max = 4\n");
    }

    #[test]
    fn comments_and_odd_lines_survive() {
        let text = "  # comment = not a key\n\nweird line\nlxc.uts.name=a\n";
        let (_, out) = apply(text, &[l("lxc.uts.name", "b")]);
        assert_eq!(
            out,
            "  # comment = not a key\n\nweird line\nlxc.uts.name = b\n"
        );
    }

    #[test]
    fn legacy_keys_are_translated() {
        assert_eq!(
            modern_key("lxc.aa_profile").as_deref(),
            Some("lxc.apparmor.profile")
        );
        assert_eq!(
            modern_key("lxc.network.0.link").as_deref(),
            Some("lxc.net.0.link")
        );
        assert_eq!(
            modern_key("lxc.network.0.ipv4").as_deref(),
            Some("lxc.net.0.ipv4.address")
        );
        assert_eq!(
            modern_key("lxc.network.0.ipv4.gateway").as_deref(),
            Some("lxc.net.0.ipv4.gateway")
        );
        assert_eq!(modern_key("lxc.net.0.link"), None);
    }

    #[test]
    fn multi_valued_table() {
        assert!(is_multi_valued("lxc.net.0.ipv4.address"));
        assert!(is_multi_valued("lxc.net.12.ipv6.address"));
        assert!(!is_multi_valued("lxc.net.0.ipv4.gateway"));
        assert!(is_multi_valued("lxc.hook.pre-start"));
        assert!(!is_multi_valued("lxc.tty.max"));
    }

    #[test]
    fn parse_lines_rejects_what_lxc_would() {
        let bad = |s: &str| parse_lines(&[s.to_string()]).unwrap_err().to_string();
        assert!(bad("lxc.tty.max").contains("expected key=value"));
        assert!(bad("=1").contains("key is empty"));
        assert!(bad("lxc.nosuch.key=1").contains("container_config"));
        assert!(bad("lxc.net.0.ipv4.gateway=10.0.0.x").contains("gateway"));
        assert!(bad("foo=bar").contains("lxc."));
        let e = parse_lines(&["lxc.tty.max=1".into(), "lxc.tty.max=2".into()]).unwrap_err();
        assert!(e.to_string().contains("single-valued"));
    }

    #[test]
    fn parse_lines_trims_and_translates() {
        let (lines, warnings) = parse_lines(&[
            " lxc.aa_profile = unconfined ".into(),
            "lxc.cgroup.devices.allow=a *:* rmw".into(),
        ])
        .unwrap();
        assert_eq!(
            lines,
            [
                l("lxc.apparmor.profile", "unconfined"),
                l("lxc.cgroup.devices.allow", "a *:* rmw")
            ]
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("lxcform-cfgtest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config");
        fs::write(&p, "a = 1\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"a = 2\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a = 2\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // What a killed writer left (a pid that no longer runs, or ours) goes; a live
        // writer's file stays.
        let dead = dir.join(".lxcform-config.999999999.tmp");
        let ours = dir.join(format!(".lxcform-config.{}.tmp", std::process::id()));
        let live = dir.join(".lxcform-config.1.tmp");
        for f in [&dead, &ours, &live] {
            fs::write(f, "stale\n").unwrap();
        }
        write_atomic(&p, b"a = 3\n").unwrap();
        assert!(!dead.exists() && !ours.exists() && live.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
