//! Manifests: many containers declared in one YAML file, planned together and converged in
//! parallel, each container in its own child process.
//!
//! # Format
//!
//! ```yaml
//! defaults:                      # optional; merged under every container
//!   template: busybox
//!   lxc_path: /srv/lxc
//!   container_config:
//!     - lxc.net.0.type=empty
//! containers:
//!   - name: web1                 # the options of Ansible's lxc_container, same names
//!     container_config:
//!       - lxc.tty.max=2          # a single-valued key replaces the default's line
//!   - name: db1
//!     backing_store: overlayfs
//!     state: stopped
//!   - name: web1                 # the same container again: runs after the entry above
//!     clone_name: web2           # makes web2; an entry named web2 waits for this one
//! ```
//!
//! `defaults` takes every option but `name` and `clone_name`. An option of the container
//! replaces the default; `container_config` lines are merged: the default's line for a
//! single-valued key is dropped when the container sets that key, other lines add up.
//! A default applies only where it means something: a store's options (`lv_name`, `vg_name`,
//! `thinpool`, `fs_type`, `fs_size`, `directory`, `zfs_root`) only to containers on a store
//! that takes them (and `fs_size` to every container making a clone, as the size of a
//! block-backed clone), and `container_config` and `container_command` not to containers with
//! `state: absent`. The same options set on the container itself are checked as given: a
//! store option for another store is an error.
//!
//! Relative paths (`lxc_path`, `config`, `directory`, `archive_path`, and `template` when it
//! contains a `/`) are taken from the manifest's directory, not from the directory lxcform runs
//! in, in `defaults` and containers alike; `~/` is the home directory.
//!
//! Booleans take what Ansible takes: `true`/`false`, `yes`/`no`, `on`/`off`, `y`/`n`,
//! `t`/`f` in any case, and `1`/`0`.
//!
//! An empty file, one without `containers`, and `containers:` with nothing under it (every
//! entry commented out) declare no containers: there is nothing to do.
//!
//! [`load`] reports problems with file, line and column, before anything on the host is
//! touched: the first unknown key, wrong type or YAML syntax error (the YAML parser stops
//! there), or else all of these: each invalid value of `defaults`, each container's first
//! invalid value (its validation stops there, at the option's place; a value from `defaults`
//! is placed there, the container named `NAME (from defaults)`), and, among the valid
//! containers, a clone made by two entries and entries waiting for each other in a circle.
//!
//! # Order
//!
//! Entries run in parallel except where one must wait for another ([`Entry::waits_for`]):
//! an entry whose container is made by another entry's `clone_name` waits for that entry
//! (in the module, `name` is the origin and `clone_name` the new container), and an entry
//! declaring a container already declared above waits for the entry above. Containers not in
//! the manifest are left alone.

mod load;
mod order;
mod preview;
mod run;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::ContainerSpec;

pub use load::{load, parse};
pub use order::{Scheduler, Slot};
pub use preview::{plan, Action, ConfigChange, EntryPlan, ManifestPlan};
pub use run::{apply, converge, ApplySummary, EntryResult, Event, Report, Status};

/// A place in the manifest file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One thing wrong in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub at: Position,
    /// The container concerned (its name, or `containers[N]` when it has none or an empty one;
    /// `NAME (from defaults)` when the value at fault is a default it takes), or `None` for the
    /// file as a whole and for `defaults`.
    pub container: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.container {
            Some(c) => write!(f, "{}: {c}: {}", self.at, self.message),
            None => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

/// Why a manifest cannot be used. Nothing on the host was touched.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file has problems; each is reported as `FILE:LINE:COLUMN: container: message`.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}:{p}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One container entry of a manifest, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where the entry starts in the file.
    pub at: Position,
    /// The declaration, with the defaults merged in.
    pub spec: ContainerSpec,
    /// The same options as JSON (`lxcform`'s child processes validate them again from this).
    pub args: serde_json::Value,
    /// Entries (indices into [`Manifest::entries`]) that must finish first.
    pub waits_for: Vec<usize>,
}

impl Entry {
    /// `name`, or `name -> clone_name` for an entry that makes a clone.
    pub fn label(&self) -> String {
        match &self.spec.clone {
            Some(c) => format!("{} -> {}", self.spec.name, c.name),
            None => self.spec.name.clone(),
        }
    }
}

/// A manifest, every entry valid and ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// The containers, in file order.
    pub entries: Vec<Entry>,
}
