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

/// One option of the module: name, type, documented default, and whether an empty string
/// means the option is not given (see [`OPTIONS`]).
pub type Opt = (&'static str, Kind, Option<&'static str>, bool);

/// The module's options, in the Python module's `argument_spec` order: AnsibleModule checks
/// types option by option in that order and reports the first failure.
///
/// The free-form strings and paths are unset when empty, as the Python module treats them:
/// it leaves out of lxc-create and lxc-copy every value that is `''` (`_get_vars`), tests
/// `template_options`, `container_command` and `clone_name` with `if value:`, and defaults
/// an empty `lv_name` to the name; an empty `archive_path` only crashed it. So
/// `"{{ x | default('') }}"` works. The name, the choices and the bools stay strict: `''` is
/// an error there in the Python module too.
pub const OPTIONS: [Opt; 23] = [
    ("name", Kind::Str, None, false),
    ("template", Kind::Str, Some("ubuntu"), true),
    ("backing_store", Kind::Str, Some("dir"), false),
    ("template_options", Kind::Str, None, true),
    ("config", Kind::Path, None, true),
    ("vg_name", Kind::Str, Some("lxc"), true),
    ("thinpool", Kind::Str, None, true),
    ("fs_type", Kind::Str, Some("ext4"), true),
    ("fs_size", Kind::Str, Some("5G"), true),
    ("directory", Kind::Path, None, true),
    ("zfs_root", Kind::Str, None, true),
    ("lv_name", Kind::Str, None, true),
    ("lxc_path", Kind::Path, None, true),
    ("state", Kind::Str, Some("started"), false),
    ("container_command", Kind::Str, None, true),
    ("container_config", Kind::List, None, false),
    ("container_log", Kind::Bool, Some("false"), false),
    ("container_log_level", Kind::Str, Some("INFO"), false),
    ("clone_name", Kind::Str, None, true),
    ("clone_snapshot", Kind::Bool, Some("false"), false),
    ("archive", Kind::Bool, Some("false"), false),
    ("archive_path", Kind::Path, None, true),
    ("archive_compression", Kind::Str, Some("gzip"), false),
];

/// Options that apply only to some backing stores: set to their documented default they are
/// treated as not set, so a playbook that spells out a default works with any store.
pub const STORE_DEFAULTS: [&str; 3] = ["vg_name", "fs_type", "fs_size"];
