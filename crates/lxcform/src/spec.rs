//! What a user declares: [`SpecArgs`] as typed (raw, every field optional) and
//! [`ContainerSpec`], the validated form nothing downstream re-checks.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config_file::ConfigLine;
use crate::store::{self, Store, StoreOption};

/// Longest container name accepted: it becomes the hostname, which Linux limits to 64 bytes.
pub const MAX_NAME_LEN: usize = 64;

/// An invalid option, found before anything on the host is touched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A required option is missing.
    #[error("missing required option: {0}")]
    Missing(&'static str),
    /// A value outside the option's choices.
    // The value is escaped: control characters in it never reach a terminal.
    #[error("value of {option} must be one of: {}, got: {}", choices.join(", "), value.escape_debug())]
    Choice {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is accepted.
        choices: Vec<&'static str>,
    },
    /// A value that is not valid for the option.
    #[error("invalid {option} \"{value}\": {reason}")]
    Invalid {
        /// The option.
        option: &'static str,
        /// What was given, escaped once for display (`a\u{1}b`, `a\nb`).
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Options that cannot be used together.
    #[error("{message}")]
    Conflict {
        /// The options concerned, in the order the message names them.
        options: Vec<&'static str>,
        /// What is wrong, naming them.
        message: String,
    },
}

impl SpecError {
    /// An [`SpecError::Invalid`] of a value as given: this escapes it, as `{:?}` would.
    fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> SpecError {
        let quoted = format!("{value:?}");
        SpecError::Invalid {
            option,
            value: quoted[1..quoted.len() - 1].to_string(),
            reason: reason.into(),
        }
    }
}

/// The state a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DesiredState {
    /// Exists and runs.
    Started,
    /// Exists and does not run.
    Stopped,
    /// Runs, and was (re)started by this run.
    Restarted,
    /// Exists, runs, and is frozen.
    Frozen,
    /// Does not exist.
    Absent,
    /// The 2015 module's form: the origin is made to exist, cloned to `clone_name`, and left
    /// in the state it had.
    Clone,
}

impl DesiredState {
    /// Every state, in the module's order, with its name.
    pub const ALL: [(&'static str, DesiredState); 6] = [
        ("started", DesiredState::Started),
        ("stopped", DesiredState::Stopped),
        ("restarted", DesiredState::Restarted),
        ("absent", DesiredState::Absent),
        ("frozen", DesiredState::Frozen),
        ("clone", DesiredState::Clone),
    ];

    /// The option value naming this state.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("started")
    }

    /// Parses `state` (one of [`DesiredState::ALL`]'s names).
    pub fn parse(value: &str) -> Result<DesiredState, SpecError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == value)
            .map(|(_, s)| *s)
            .ok_or_else(|| SpecError::Choice {
                option: "state",
                value: value.to_string(),
                choices: Self::ALL.iter().map(|(n, _)| *n).collect(),
            })
    }
}

impl fmt::Display for DesiredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compression of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (`.tar.tgz`, as the module names it).
    Gzip,
    /// bzip2 (`.tar.bz2`).
    Bzip2,
    /// xz (`.tar.xz`).
    Xz,
    /// zstd (`.tar.zst`).
    Zstd,
    /// No compression (`.tar`).
    None,
}

impl Compression {
    /// Every compression with its option value.
    pub const ALL: [(&'static str, Compression); 5] = [
        ("gzip", Compression::Gzip),
        ("bzip2", Compression::Bzip2),
        ("none", Compression::None),
        ("xz", Compression::Xz),
        ("zstd", Compression::Zstd),
    ];

    /// The option value naming this compression.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("gzip")
    }

    /// File name extension of archives with this compression (without the leading dot).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "tar.tgz",
            Compression::Bzip2 => "tar.bz2",
            Compression::Xz => "tar.xz",
            Compression::Zstd => "tar.zst",
            Compression::None => "tar",
        }
    }

    /// Parses an option value.
    pub fn parse(value: &str) -> Result<Compression, SpecError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == value)
            .map(|(_, c)| *c)
            .ok_or_else(|| SpecError::Choice {
                option: "archive_compression",
                value: value.to_string(),
                choices: Self::ALL.iter().map(|(n, _)| *n).collect(),
            })
    }
}

/// liblxc log level for `container_log_level`.
pub use crate::liblxc::Level as LogLevel;

/// The options of Ansible's `lxc_container`, as typed: every field optional, strings not yet
/// checked. [`SpecArgs::validate`] turns them into a [`ContainerSpec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecArgs {
    /// Container name (required).
    pub name: Option<String>,
    /// Template used to create the container (default `ubuntu`, as the module).
    pub template: Option<String>,
    /// Arguments for the template, split like a shell would.
    pub template_options: Option<String>,
    /// A config file loaded before create (`lxc-create -f`).
    pub config: Option<PathBuf>,
    /// Backing store: dir, overlay, overlayfs, btrfs, loop, lvm, zfs (default dir).
    pub backing_store: Option<String>,
    /// LVM logical volume name (default: the container name).
    pub lv_name: Option<String>,
    /// LVM volume group (default `lxc`).
    pub vg_name: Option<String>,
    /// LVM thin pool.
    pub thinpool: Option<String>,
    /// Filesystem type of block-backed stores (default ext4).
    pub fs_type: Option<String>,
    /// Filesystem size of block-backed stores (default 5G).
    pub fs_size: Option<String>,
    /// Directory for the rootfs of a dir store.
    pub directory: Option<PathBuf>,
    /// ZFS dataset under which to create the rootfs.
    pub zfs_root: Option<String>,
    /// Where containers live (default: liblxc's lxc.lxcpath).
    pub lxc_path: Option<PathBuf>,
    /// Keep a log of host actions in /var/log/lxc/lxc-NAME.log.
    pub container_log: Option<bool>,
    /// Level of that log: info, error, debug in any case (default INFO).
    pub container_log_level: Option<String>,
    /// `key=value` config lines.
    pub container_config: Option<Vec<String>>,
    /// A shell script run inside the container with `/bin/sh -c`.
    pub container_command: Option<String>,
    /// started, stopped, restarted, frozen, absent, clone (default started).
    pub state: Option<String>,
    /// Name of a clone to make.
    pub clone_name: Option<String>,
    /// Make the clone a copy-on-write snapshot.
    pub clone_snapshot: Option<bool>,
    /// Write an archive of the container.
    pub archive: Option<bool>,
    /// Directory for the archive.
    pub archive_path: Option<PathBuf>,
    /// gzip, bzip2, none, xz, zstd (default gzip).
    pub archive_compression: Option<String>,
}

/// Names of every option of [`SpecArgs`], in the module's documentation order.
pub const OPTION_NAMES: [&str; 23] = [
    "name",
    "backing_store",
    "template",
    "template_options",
    "config",
    "lv_name",
    "vg_name",
    "thinpool",
    "fs_type",
    "fs_size",
    "directory",
    "zfs_root",
    "container_command",
    "lxc_path",
    "container_log",
    "container_log_level",
    "clone_name",
    "clone_snapshot",
    "archive",
    "archive_path",
    "archive_compression",
    "state",
    "container_config",
];

/// Storage details for creating (or cloning to) a block-backed or special store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSpec {
    /// The store.
    pub store: Store,
    /// Whether `backing_store` was given (rather than defaulting to dir).
    pub given: bool,
    /// LVM logical volume (lvm only; defaults to the container name).
    pub lv_name: Option<String>,
    /// LVM volume group (lvm only).
    pub vg_name: Option<String>,
    /// LVM thin pool (lvm only).
    pub thinpool: Option<String>,
    /// Filesystem type (loop, lvm).
    pub fs_type: Option<String>,
    /// Filesystem size in bytes (loop, lvm; clone of block stores).
    pub fs_size: Option<u64>,
    /// rootfs directory (dir only).
    pub directory: Option<PathBuf>,
    /// ZFS parent dataset (zfs only).
    pub zfs_root: Option<String>,
}

/// A clone to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSpec {
    /// Name of the clone.
    pub name: String,
    /// Copy-on-write snapshot instead of a full copy.
    pub snapshot: bool,
    /// The clone's store, when `backing_store` was given (see [`crate::store::clone_method`]).
    pub store: Option<Store>,
    /// Size of a block-backed clone (`fs_size`); `None` keeps the origin's.
    pub fs_size: Option<u64>,
}

/// An archive to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSpec {
    /// Directory the archive goes into.
    pub path: PathBuf,
    /// Compression.
    pub compression: Compression,
}

/// A validated declaration of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name (checked by [`validate_name`]).
    pub name: String,
    /// Where containers live.
    pub lxc_path: PathBuf,
    /// The state to reach.
    pub state: DesiredState,
    /// Template for create.
    pub template: String,
    /// Template arguments, already split.
    pub template_options: Vec<String>,
    /// Config file loaded before create.
    pub config: Option<PathBuf>,
    /// Backing store and its options.
    pub storage: StorageSpec,
    /// Log host actions to /var/log/lxc/lxc-NAME.log at this level.
    pub container_log: Option<LogLevel>,
    /// Config lines to ensure.
    pub container_config: Vec<ConfigLine>,
    /// Script to run inside.
    pub container_command: Option<String>,
    /// Clone to make.
    pub clone: Option<CloneSpec>,
    /// Archive to write.
    pub archive: Option<ArchiveSpec>,
    /// Notes from validation, e.g. config keys translated to their LXC 3 names.
    pub warnings: Vec<String>,
}

/// Checks a container name: 1 to 64 characters of ASCII letters, digits, `-`, `_` and `.`,
/// starting with a letter or digit. That is what LXC, hostnames and shells all take safely.
pub fn validate_name(option: &'static str, name: &str) -> Result<(), SpecError> {
    let bad = |reason: &str| Err(SpecError::invalid(option, name, reason));
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name == "." || name == ".." {
        return bad("must not be . or ..");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!(
            "is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    // What LXC takes and a path, a hostname-ish string and an overlay rootfs (`overlay:A:B`,
    // hence no ':') can hold; never anything a shell or a config line would read specially.
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.+@".contains(*c)))
    {
        return bad(&format!(
            "contains {:?}; only letters, digits, '-', '_', '.', '+' and '@' are allowed",
            c
        ));
    }
    // Not '.' (hidden, and lxcform's own `.lxcform-locks`) nor '-' (read as an option).
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        return bad("must start with a letter, a digit or '_'");
    }
    Ok(())
}

/// Parses a size such as `5G`, `512M`, `1.5G`, `10GiB` or `1073741824` (bytes); units are
/// binary, as liblxc's.
pub fn parse_size(option: &'static str, value: &str) -> Result<u64, SpecError> {
    let s = value.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| SpecError::invalid(option, value, "expected a size such as 5G or 512M"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(SpecError::invalid(
                option,
                value,
                "unknown unit; use B, K, M, G or T",
            ))
        }
    };
    let bytes = num * (1u64 << shift) as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(SpecError::invalid(
            option,
            value,
            "must be at least one byte",
        ));
    }
    Ok(bytes as u64)
}

/// A path option as lxcform uses it: `~` expanded, then [`absolute_in`] the current
/// directory (liblxc cannot start a container in a relative lxc_path).
pub fn normalize_path(p: &Path) -> PathBuf {
    let home = p
        .to_str()
        .filter(|s| *s == "~" || s.starts_with("~/"))
        .and_then(|s| {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(s.trim_start_matches('~').trim_start_matches('/')))
        });
    let p = home.unwrap_or_else(|| p.to_path_buf());
    match std::env::current_dir() {
        Ok(cwd) => absolute_in(&cwd, &p),
        Err(_) => absolute_in(Path::new("/"), &p),
    }
}

/// `p` made absolute from `base` (a real path, as the current directory and a manifest's
/// directory are) and spelled one way, since liblxc names a container's command socket after
/// the lxc_path as written: `/srv/lxc/` and `/srv/lxc` would be two places to it.
///
/// `.`, `//` and a trailing `/` go. A `..` at the start of a relative `p` is `base`'s parent;
/// any other `..` stays, as after a symlink it means something else (resolving symlinks would
/// move containers that `lxc-*` tools know under the path as given).
pub fn absolute_in(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let mut parts = p
        .components()
        .filter(|c| *c != Component::CurDir)
        .peekable();
    let mut out = if p.is_absolute() {
        PathBuf::new()
    } else {
        let mut joined: PathBuf = base.components().collect();
        while parts.next_if_eq(&Component::ParentDir).is_some() {
            joined.pop();
        }
        joined
    };
    out.extend(parts);
    out
}

fn check_path(option: &'static str, p: &Path) -> Result<PathBuf, SpecError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = p.as_os_str().as_bytes();
    let shown = p.display().to_string();
    if bytes.is_empty() {
        return Err(SpecError::invalid(option, &shown, "must not be empty"));
    }
    if bytes.contains(&0) {
        return Err(SpecError::invalid(option, &shown, "contains a NUL byte"));
    }
    Ok(normalize_path(p))
}

fn non_empty(option: &'static str, v: Option<String>) -> Result<Option<String>, SpecError> {
    match v {
        Some(s) if s.is_empty() => Err(SpecError::invalid(option, "", "must not be empty")),
        Some(s) if s.contains('\0') || s.chars().any(char::is_control) => Err(SpecError::invalid(
            option,
            &s,
            "contains a control character",
        )),
        other => Ok(other),
    }
}

/// Parses `backing_store` (one of [`store::CHOICES`]).
pub fn parse_store(value: &str) -> Result<Store, SpecError> {
    Store::parse(value).ok_or_else(|| SpecError::Choice {
        option: "backing_store",
        value: value.to_string(),
        choices: store::CHOICES.to_vec(),
    })
}

/// The words (trimmed, in any case) Ansible's `boolean()` takes as true.
pub const BOOL_TRUE: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
/// The words (trimmed, in any case) Ansible's `boolean()` takes as false.
pub const BOOL_FALSE: [&str; 6] = ["n", "no", "off", "0", "false", "f"];

/// A boolean written as Ansible takes one ([`BOOL_TRUE`], [`BOOL_FALSE`]).
pub fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim().to_ascii_lowercase();
    if BOOL_TRUE.contains(&s.as_str()) {
        Some(true)
    } else if BOOL_FALSE.contains(&s.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Parses `container_log_level` as the module does (info, error, debug in any case).
pub fn parse_log_level(value: &str) -> Result<LogLevel, SpecError> {
    match value.to_ascii_uppercase().as_str() {
        "INFO" => Ok(LogLevel::Info),
        "ERROR" => Ok(LogLevel::Error),
        "DEBUG" => Ok(LogLevel::Debug),
        _ => Err(SpecError::Choice {
            option: "container_log_level",
            value: value.to_string(),
            choices: vec!["INFO", "ERROR", "DEBUG"],
        }),
    }
}

impl SpecArgs {
    /// Checks every option and their combinations; returns the spec or the first problem.
    ///
    /// Reads nothing from the host but liblxc's default lxc_path and (for config lines)
    /// liblxc's own parser, run on an in-memory container.
    pub fn validate(self) -> Result<ContainerSpec, SpecError> {
        let name = self.name.ok_or(SpecError::Missing("name"))?;
        validate_name("name", &name)?;
        let state = DesiredState::parse(self.state.as_deref().unwrap_or("started"))?;
        let store = match self.backing_store.as_deref() {
            None => Store::Dir,
            Some(s) => parse_store(s)?,
        };
        let template = non_empty("template", self.template)?.unwrap_or_else(|| "ubuntu".into());
        let template_options = match self.template_options.as_deref() {
            None => Vec::new(),
            Some(s) => shell_words::split(s)
                .map_err(|e| SpecError::invalid("template_options", s, e.to_string()))?,
        };
        let config = self
            .config
            .as_deref()
            .map(|p| check_path("config", p))
            .transpose()?;
        let lxc_path = match self.lxc_path.as_deref() {
            Some(p) => check_path("lxc_path", p)?,
            None => crate::liblxc::default_lxc_path(),
        };
        let directory = self
            .directory
            .as_deref()
            .map(|p| check_path("directory", p))
            .transpose()?;

        // Options given for a store they do not apply to are reported, not silently dropped.
        let given: Vec<(StoreOption, bool)> = vec![
            (StoreOption::LvName, self.lv_name.is_some()),
            (StoreOption::VgName, self.vg_name.is_some()),
            (StoreOption::Thinpool, self.thinpool.is_some()),
            (StoreOption::FsType, self.fs_type.is_some()),
            (StoreOption::FsSize, self.fs_size.is_some()),
            (StoreOption::Directory, directory.is_some()),
            (StoreOption::ZfsRoot, self.zfs_root.is_some()),
        ];
        let info = store.info();
        let wrong: Vec<&str> = given
            .iter()
            .filter(|(opt, set)| *set && !info.options.contains(opt))
            .map(|(opt, _)| opt.as_str())
            .collect();
        // A clone onto another store may use its size; everything else must fit the store.
        let clone_size_ok = |o: &&str| *o == "fs_size" && self.clone_name.is_some();
        let wrong: Vec<&str> = wrong.into_iter().filter(|o| !clone_size_ok(o)).collect();
        if !wrong.is_empty() {
            let message = format!(
                "{} cannot be used with backing_store {}: {}",
                wrong.join(", "),
                store.as_str(),
                wrong
                    .iter()
                    .map(|o| store::stores_with(o))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Err(SpecError::Conflict {
                options: wrong,
                message,
            });
        }
        let fs_size = self
            .fs_size
            .as_deref()
            .map(|s| parse_size("fs_size", s))
            .transpose()?;
        let storage = StorageSpec {
            store,
            given: self.backing_store.is_some(),
            lv_name: non_empty("lv_name", self.lv_name)?,
            vg_name: non_empty("vg_name", self.vg_name)?,
            thinpool: non_empty("thinpool", self.thinpool)?,
            fs_type: non_empty("fs_type", self.fs_type)?,
            fs_size,
            directory,
            zfs_root: non_empty("zfs_root", self.zfs_root)?,
        };
        let level = match self.container_log_level.as_deref() {
            Some(l) => parse_log_level(l)?,
            None => LogLevel::Info,
        };
        let container_log = self.container_log.unwrap_or(false).then_some(level);
        if let Some(level) = container_log {
            // liblxc's log opens on first use, at the level set before it.
            crate::liblxc::set_log_level(level);
        }
        let (container_config, mut warnings) =
            crate::config_file::parse_lines(&self.container_config.unwrap_or_default())?;
        let mut container_command = self.container_command.filter(|c| !c.trim().is_empty());
        if let Some(cmd) = &container_command {
            if cmd.contains('\0') {
                return Err(SpecError::invalid(
                    "container_command",
                    cmd,
                    "contains a NUL byte",
                ));
            }
        }
        // As the module: there is no container left to run it in, so it is not run (a warning
        // says so, rather than a failure of a playbook that worked with the Python module).
        if state == DesiredState::Absent && container_command.take().is_some() {
            warnings.push("container_command is ignored with state absent".into());
        }

        let clone_name = non_empty("clone_name", self.clone_name)?;
        let clone = match clone_name {
            Some(c) => {
                validate_name("clone_name", &c)?;
                if c == name {
                    return Err(SpecError::Conflict {
                        options: vec!["clone_name"],
                        message: format!("clone_name {c:?} is the container's own name"),
                    });
                }
                Some(CloneSpec {
                    name: c,
                    snapshot: self.clone_snapshot.unwrap_or(false),
                    store: self.backing_store.is_some().then_some(store),
                    fs_size,
                })
            }
            None if state == DesiredState::Clone => {
                return Err(SpecError::Missing("clone_name (state is clone)"))
            }
            None => None,
        };
        // The store names a volume or dataset after the container (or the clone it makes);
        // a name it cannot hold would fail halfway, in liblxc.
        let (named_option, named) = match &clone {
            Some(c) if c.store.is_some() => ("clone_name", Some(c.name.as_str())),
            Some(_) => ("clone_name", None),
            None if storage.lv_name.is_some() => ("name", None),
            None => ("name", Some(name.as_str())),
        };
        if let Some(bad) = named.and_then(|n| n.chars().find(|c| info.name_refuses.contains(*c))) {
            return Err(SpecError::invalid(
                named_option,
                named.unwrap_or_default(),
                format!("a {store} volume or dataset is named after it and cannot hold {bad:?}"),
            ));
        }
        let compression =
            Compression::parse(self.archive_compression.as_deref().unwrap_or("gzip"))?;
        let archive_path = self
            .archive_path
            .as_deref()
            .map(|p| check_path("archive_path", p))
            .transpose()?;
        let archive = match (self.archive.unwrap_or(false), archive_path) {
            (true, Some(path)) => Some(ArchiveSpec { path, compression }),
            (true, None) => return Err(SpecError::Missing("archive_path (archive is true)")),
            (false, _) => None,
        };
        Ok(ContainerSpec {
            name,
            lxc_path,
            state,
            template,
            template_options,
            config,
            storage,
            container_log,
            container_config,
            container_command,
            clone,
            archive,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> SpecArgs {
        SpecArgs {
            name: Some(name.into()),
            lxc_path: Some("/tmp/x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_follow_the_module() {
        let s = args("web1").validate().unwrap();
        assert_eq!(s.state, DesiredState::Started);
        assert_eq!(s.template, "ubuntu");
        assert_eq!(s.storage.store, Store::Dir);
        assert_eq!(s.container_log, None);
    }

    #[test]
    fn bad_names_are_rejected_with_the_option_named() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a;b",
            "$(id)",
            "`id`",
            "a b",
            "a\0b",
            "-x",
            ".hidden",
            "a:b",
            &"x".repeat(300),
            "é",
        ] {
            let err = args(bad).validate().unwrap_err();
            assert!(err.to_string().contains("name"), "{bad:?}: {err}");
        }
        // What LXC itself takes beyond those, so that such containers can be managed.
        for good in [
            "a",
            "web-1",
            "db_2.local",
            &"x".repeat(64),
            "_ab",
            "a+b",
            "a@b",
        ] {
            args(good).validate().unwrap();
        }
    }

    #[test]
    fn invalid_values_are_shown_escaped_once() {
        let e = args("a\u{1}b").validate().unwrap_err().to_string();
        assert!(e.starts_with(r#"invalid name "a\u{1}b": "#), "{e}");
        let mut a = args("c");
        a.fs_size = Some("5\x1bG".into());
        a.backing_store = Some("loop".into());
        let e = a.validate().unwrap_err().to_string();
        assert!(e.starts_with(r#"invalid fs_size "5\u{1b}G": "#), "{e}");
    }

    #[test]
    fn unknown_choices_list_the_accepted_values() {
        let mut a = args("c");
        a.state = Some("running".into());
        assert_eq!(
            a.validate().unwrap_err().to_string(),
            "value of state must be one of: started, stopped, restarted, absent, frozen, clone, got: running"
        );
        let mut a = args("c");
        a.backing_store = Some("nfs".into());
        assert!(a
            .validate()
            .unwrap_err()
            .to_string()
            .contains("backing_store"));
    }

    #[test]
    fn choice_errors_escape_control_characters() {
        let mut a = args("c");
        a.state = Some("run\x1b[2J".into());
        assert!(a
            .validate()
            .unwrap_err()
            .to_string()
            .ends_with("got: run\\u{1b}[2J"));
    }

    #[test]
    fn store_options_for_another_store_are_reported() {
        let mut a = args("c");
        a.vg_name = Some("vg0".into());
        let e = a.validate().unwrap_err().to_string();
        assert!(
            e.contains("vg_name cannot be used with backing_store dir"),
            "{e}"
        );
        let mut a = args("c");
        a.backing_store = Some("lvm".into());
        a.vg_name = Some("vg0".into());
        a.fs_size = Some("2G".into());
        let s = a.validate().unwrap();
        assert_eq!(s.storage.fs_size, Some(2 << 30));
    }

    #[test]
    fn overlayfs_is_overlay() {
        let mut a = args("c");
        a.backing_store = Some("overlayfs".into());
        assert_eq!(a.validate().unwrap().storage.store, Store::Overlay);
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("fs_size", "5G").unwrap(), 5 << 30);
        assert_eq!(parse_size("fs_size", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("fs_size", "10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("fs_size", "1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("fs_size", "4096").unwrap(), 4096);
        for bad in ["", "G", "5X", "-1G", "0"] {
            assert!(parse_size("fs_size", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_options_split_like_a_shell() {
        let mut a = args("c");
        a.template_options = Some("--release 'bookworm main' --arch amd64".into());
        assert_eq!(
            a.validate().unwrap().template_options,
            ["--release", "bookworm main", "--arch", "amd64"]
        );
        let mut a = args("c");
        a.template_options = Some("--release 'open".into());
        assert!(a
            .validate()
            .unwrap_err()
            .to_string()
            .contains("template_options"));
    }

    #[test]
    fn archive_needs_archive_path() {
        let mut a = args("c");
        a.archive = Some(true);
        assert_eq!(
            a.validate().unwrap_err(),
            SpecError::Missing("archive_path (archive is true)")
        );
    }

    #[test]
    fn paths_are_absolute_and_spelled_one_way() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(normalize_path(Path::new("rel/dir/")), cwd.join("rel/dir"));
        assert_eq!(normalize_path(Path::new("/a//b/./c/")), Path::new("/a/b/c"));
        assert_eq!(normalize_path(Path::new("/a/../b")), Path::new("/a/../b"));
        let base = Path::new("/m/sub");
        assert_eq!(absolute_in(base, Path::new("../lp")), Path::new("/m/lp"));
        assert_eq!(
            absolute_in(base, Path::new("./x/../y/")),
            Path::new("/m/sub/x/../y")
        );
        assert_eq!(absolute_in(base, Path::new("../../../..")), Path::new("/"));
        let mut a = args("c");
        a.lxc_path = Some("/srv/lxc/".into());
        assert_eq!(a.validate().unwrap().lxc_path, Path::new("/srv/lxc"));
    }

    #[test]
    fn names_a_store_names_a_volume_after_must_fit_it() {
        let on = |name: &str, store: &str| {
            let mut a = args(name);
            a.backing_store = Some(store.into());
            a.validate()
        };
        assert!(on("a@b", "dir").is_ok());
        let e = on("a@b", "lvm").unwrap_err().to_string();
        assert!(
            e.contains("invalid name \"a@b\"") && e.contains("lvm"),
            "{e}"
        );
        assert!(on("a+b", "lvm").is_ok());
        assert!(on("a+b", "zfs").is_err());
        let mut a = args("a@b");
        a.backing_store = Some("lvm".into());
        a.lv_name = Some("ab".into());
        assert!(a.validate().is_ok(), "lv_name names the volume");
        let mut a = args("web");
        a.clone_name = Some("web+1".into());
        a.backing_store = Some("zfs".into());
        let e = a.validate().unwrap_err().to_string();
        assert!(e.contains("invalid clone_name"), "{e}");
    }

    #[test]
    fn command_with_absent_is_ignored_with_a_warning() {
        let mut a = args("c");
        a.state = Some("absent".into());
        a.container_command = Some("true".into());
        let spec = a.validate().unwrap();
        assert_eq!(spec.container_command, None);
        assert_eq!(
            spec.warnings,
            ["container_command is ignored with state absent"]
        );
    }

    #[test]
    fn log_level_in_any_case() {
        for l in ["info", "INFO", "Info", "debug", "Error"] {
            parse_log_level(l).unwrap();
        }
        assert!(parse_log_level("trace").is_err());
    }
}
