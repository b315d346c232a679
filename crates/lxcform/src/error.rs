//! The library's error type: one variant per kind of failure, each naming the container.

use std::path::PathBuf;

use crate::facts::CommandResult;
use crate::liblxc::LxcError;
use crate::spec::SpecError;

/// Why lxcform could not make a container what was declared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The declaration itself is invalid; nothing was touched.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No plan can reach the declared state (e.g. a snapshot the store cannot take).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A liblxc call failed.
    #[error(transparent)]
    Lxc(#[from] LxcError),
    /// Writing or restoring an archive failed.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// A file operation failed.
    #[error("container {container:?}: cannot {what} {}: {source}", path.display())]
    Io {
        /// The container.
        container: String,
        /// What was being done ("read config", "write config" …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The host cannot provide the backing store.
    #[error("container {container:?}: backing_store {store} cannot be used here: {reason}")]
    Store {
        /// The container.
        container: String,
        /// The store.
        store: crate::store::Store,
        /// Why not.
        reason: String,
    },
    /// The template does not exist.
    #[error("container {container:?}: template {template:?} not found (looked for {})", looked.display())]
    Template {
        /// The container.
        container: String,
        /// The template asked for.
        template: String,
        /// Where it was looked for.
        looked: PathBuf,
    },
    /// `container_command` exited non-zero.
    #[error("container {container:?}: container_command exited with status {}", result.rc)]
    Command {
        /// The container.
        container: String,
        /// What the command did.
        result: CommandResult,
    },
    /// A signal asked the process to stop; what was under way was undone first.
    #[error("container {container:?}: {what} interrupted by a signal; undone")]
    Interrupted {
        /// The container.
        container: String,
        /// What was under way.
        what: &'static str,
    },
    /// A signal stopped a run between two steps; the steps before it are done.
    #[error("container {container:?}: stopped by {} before {before}", crate::liblxc::sys::signal_name(*signal))]
    Stopped {
        /// The container.
        container: String,
        /// The signal.
        signal: i32,
        /// The step that did not run.
        before: String,
        /// What `container_command` did, when it ran before the stop.
        command: Option<CommandResult>,
    },
    /// The container does not exist (for operations that need it).
    #[error("container {container:?} does not exist in {}", lxc_path.display())]
    NotFound {
        /// The container.
        container: String,
        /// Where it was looked for.
        lxc_path: PathBuf,
    },
}

impl Error {
    /// liblxc's log lines about the failure, if any.
    pub fn log(&self) -> &[String] {
        match self {
            Error::Lxc(e) => &e.log,
            _ => &[],
        }
    }

    /// What the failed command did, if the failure is a command's.
    pub fn command(&self) -> Option<&CommandResult> {
        match self {
            Error::Command { result, .. } => Some(result),
            Error::Stopped { command, .. } => command.as_ref(),
            _ => None,
        }
    }
}
