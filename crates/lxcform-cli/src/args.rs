//! Command-line arguments. Option names are the Ansible module's, with dashes.

use std::path::PathBuf;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use lxcform::SpecArgs;

/// Make LXC containers be what you declare, changing only what differs.
#[derive(Debug, Parser)]
#[command(name = "lxcform", version, about)]
pub struct Cli {
    /// Print results (and errors) as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make one container what the options declare.
    Ensure(Box<EnsureArgs>),
    /// Show one container's facts (name, state, init_pid, interfaces, ips).
    Facts {
        /// Container name.
        #[arg(value_parser = utf8())]
        name: String,
        /// Where containers live (default: liblxc's lxc.lxcpath).
        #[arg(long, short = 'P')]
        lxc_path: Option<PathBuf>,
    },
    /// Clone an existing container; the origin keeps its state, the clone is left stopped.
    Clone(CloneArgs),
    /// Write an archive of a container (config and root filesystem), consistent and atomic.
    Archive(crate::archive_cmd::ArchiveArgs),
    /// Create a container from an archive, on any backing store.
    Restore(crate::archive_cmd::RestoreArgs),
    /// List the containers of an lxc_path with their facts.
    List {
        /// Where containers live (default: liblxc's lxc.lxcpath).
        #[arg(long, short = 'P')]
        lxc_path: Option<PathBuf>,
    },
    /// Show what `apply` would change for each container of a manifest (exit 3: changes).
    Plan(crate::plan::PlanArgs),
    /// Make every container of a manifest what it declares, several at a time.
    Apply(crate::apply::ApplyArgs),
    /// Converge one container from options as JSON on stdin (apply's child processes).
    #[command(name = "__converge", hide = true)]
    Converge,
}

#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The container to clone.
    #[arg(value_parser = utf8())]
    pub origin: String,
    /// Name of the new container.
    #[arg(value_parser = utf8())]
    pub new: String,
    /// Make a copy-on-write snapshot (overlay of a dir/overlay origin; btrfs, lvm, zfs native).
    #[arg(long, short = 's')]
    pub snapshot: bool,
    /// Store of the clone: dir, overlay (always a snapshot), btrfs, loop, lvm, zfs.
    #[arg(long, short = 'B', value_parser = utf8())]
    pub backing_store: Option<String>,
    /// Size of a block-backed clone, e.g. 2G.
    #[arg(long, value_parser = utf8())]
    pub fs_size: Option<String>,
    /// Where containers live [default: liblxc's lxc.lxcpath].
    #[arg(long, short = 'P')]
    pub lxc_path: Option<PathBuf>,
    /// Only show what would change; change nothing.
    #[arg(long)]
    pub check: bool,
}

impl CloneArgs {
    /// The clone as the module's `state: clone`.
    pub fn into_spec_args(self) -> SpecArgs {
        SpecArgs {
            name: Some(self.origin),
            state: Some("clone".into()),
            clone_name: Some(self.new),
            clone_snapshot: Some(self.snapshot),
            backing_store: self.backing_store,
            fs_size: self.fs_size,
            lxc_path: self.lxc_path,
            ..SpecArgs::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct EnsureArgs {
    #[command(flatten)]
    pub spec: SpecFlags,
    /// Only show what would change; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Show state and config lines before and after.
    #[arg(long)]
    pub diff: bool,
}

/// The module's options as flags.
#[derive(Debug, Args)]
pub struct SpecFlags {
    /// Container name.
    #[arg(value_parser = utf8())]
    pub name: String,
    /// started, stopped, restarted, frozen, absent, clone [default: started].
    #[arg(long, value_parser = utf8())]
    pub state: Option<String>,
    /// Template to create the container with [default: ubuntu].
    #[arg(long, short = 't', value_parser = utf8())]
    pub template: Option<String>,
    /// Template arguments, split like a shell would (e.g. "--release bookworm").
    #[arg(long, allow_hyphen_values = true, value_parser = utf8())]
    pub template_options: Option<String>,
    /// Config file loaded before create.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// dir, overlay (overlayfs), btrfs, loop, lvm, zfs [default: dir].
    #[arg(long, short = 'B', value_parser = utf8())]
    pub backing_store: Option<String>,
    /// LVM logical volume [default: the container name].
    #[arg(long, value_parser = utf8())]
    pub lv_name: Option<String>,
    /// LVM volume group [default: lxc].
    #[arg(long, value_parser = utf8())]
    pub vg_name: Option<String>,
    /// LVM thin pool.
    #[arg(long, value_parser = utf8())]
    pub thinpool: Option<String>,
    /// Filesystem type for loop and lvm [default: ext4].
    #[arg(long, value_parser = utf8())]
    pub fs_type: Option<String>,
    /// Filesystem size for loop and lvm, e.g. 5G [default: 5G].
    #[arg(long, value_parser = utf8())]
    pub fs_size: Option<String>,
    /// Directory for the rootfs (dir store).
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// ZFS dataset under which to create the rootfs.
    #[arg(long, value_parser = utf8())]
    pub zfs_root: Option<String>,
    /// Where containers live [default: liblxc's lxc.lxcpath].
    #[arg(long, short = 'P')]
    pub lxc_path: Option<PathBuf>,
    /// Append liblxc's log of this run to /var/log/lxc/lxc-NAME.log.
    #[arg(long)]
    pub container_log: bool,
    /// Level of that log: info, error, debug [default: INFO].
    #[arg(long, value_parser = utf8())]
    pub container_log_level: Option<String>,
    /// A config line KEY=VALUE (repeat for more).
    #[arg(
        long = "config-line",
        visible_alias = "container-config",
        value_name = "KEY=VALUE",
        value_parser = utf8(),
    )]
    pub container_config: Vec<String>,
    /// A shell script to run inside with /bin/sh -c.
    #[arg(
        long = "command",
        visible_alias = "container-command",
        allow_hyphen_values = true,
        value_parser = utf8(),
    )]
    pub container_command: Option<String>,
    /// Name of a clone to make.
    #[arg(long, value_parser = utf8())]
    pub clone_name: Option<String>,
    /// Make the clone a copy-on-write snapshot.
    #[arg(long)]
    pub clone_snapshot: bool,
    /// Write an archive of the container.
    #[arg(long)]
    pub archive: bool,
    /// Directory for the archive.
    #[arg(long)]
    pub archive_path: Option<PathBuf>,
    /// gzip, bzip2, none, xz, zstd [default: gzip].
    #[arg(long, value_parser = utf8())]
    pub archive_compression: Option<String>,
}

impl SpecFlags {
    /// The flags as the library's raw options.
    pub fn into_spec_args(self) -> SpecArgs {
        SpecArgs {
            name: Some(self.name),
            template: self.template,
            template_options: self.template_options,
            config: self.config,
            backing_store: self.backing_store,
            lv_name: self.lv_name,
            vg_name: self.vg_name,
            thinpool: self.thinpool,
            fs_type: self.fs_type,
            fs_size: self.fs_size,
            directory: self.directory,
            zfs_root: self.zfs_root,
            lxc_path: self.lxc_path,
            container_log: Some(self.container_log),
            container_log_level: self.container_log_level,
            container_config: Some(self.container_config),
            container_command: self.container_command,
            state: self.state,
            clone_name: self.clone_name,
            clone_snapshot: Some(self.clone_snapshot),
            archive: Some(self.archive),
            archive_path: self.archive_path,
            archive_compression: self.archive_compression,
        }
    }
}

/// The lxc_path given, or liblxc's default.
pub fn lxc_path(given: Option<PathBuf>) -> PathBuf {
    given.map_or_else(lxcform::liblxc::default_lxc_path, |p| {
        lxcform::spec::normalize_path(&p)
    })
}

/// Parses a text argument. clap's own check says only "invalid UTF-8 was detected in one or
/// more arguments"; this one names the argument and shows the bytes.
fn utf8() -> impl TypedValueParser<Value = String> {
    OsStringValueParser::new().try_map(|s| {
        s.into_string()
            .map_err(|s| format!("{s:?} is not valid UTF-8"))
    })
}
