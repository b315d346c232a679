//! The module's options: names, types and documented defaults, as `lxc_container.yml`
//! documents them (a test keeps the two in step).

/// How an option's value is converted (AnsibleModule's `type:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `type: str`.
    Str,
    /// `type: bool`.
    Bool,
    /// `type: path`.
    Path,
    /// `type: list, elements: str`.
    List,
}

impl Kind {
    /// The `type:` name, as the documentation spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Bool => "bool",
            Kind::Path => "path",
            Kind::List => "list",
        }
    }
}

/// One option of the module: name, type, documented default, and whether its values are a
/// fixed public set (those are not masked under `no_log`).
pub type Opt = (&'static str, Kind, Option<&'static str>, bool);

/// The module's options, as its documentation lists them.
pub const OPTIONS: [Opt; 23] = [
    ("name", Kind::Str, None, false),
    ("backing_store", Kind::Str, Some("dir"), true),
    ("template", Kind::Str, Some("ubuntu"), false),
    ("template_options", Kind::Str, None, false),
    ("config", Kind::Path, None, false),
    ("lv_name", Kind::Str, None, false),
    ("vg_name", Kind::Str, Some("lxc"), false),
    ("thinpool", Kind::Str, None, false),
    ("fs_type", Kind::Str, Some("ext4"), false),
    ("fs_size", Kind::Str, Some("5G"), false),
    ("directory", Kind::Path, None, false),
    ("zfs_root", Kind::Str, None, false),
    ("container_command", Kind::Str, None, false),
    ("lxc_path", Kind::Path, None, false),
    ("container_log", Kind::Bool, Some("false"), true),
    ("container_log_level", Kind::Str, Some("INFO"), true),
    ("clone_name", Kind::Str, None, false),
    ("clone_snapshot", Kind::Bool, Some("false"), true),
    ("archive", Kind::Bool, Some("false"), true),
    ("archive_path", Kind::Path, None, false),
    ("archive_compression", Kind::Str, Some("gzip"), true),
    ("state", Kind::Str, Some("started"), true),
    ("container_config", Kind::List, None, false),
];

/// Options that apply only to some backing stores: set to their documented default they are
/// treated as not set, so a playbook that spells out a default works with any store.
pub const STORE_DEFAULTS: [&str; 3] = ["vg_name", "fs_type", "fs_size"];
