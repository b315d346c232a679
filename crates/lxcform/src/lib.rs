//! lxcform makes LXC containers be what a user declares, changing only what differs, and
//! says what it changed.
//!
//! ```text
//! SpecArgs ──validate──► ContainerSpec ──observe/plan──► Plan ──execute──► Outcome
//! ```
//!
//! ```no_run
//! use lxcform::{ensure, Options, SpecArgs};
//!
//! let spec = SpecArgs {
//!     name: Some("web1".into()),
//!     template: Some("busybox".into()),
//!     container_config: Some(vec!["lxc.net.0.type=empty".into()]),
//!     ..Default::default()
//! }
//! .validate()?;
//! let outcome = ensure(&spec, Options::default())?;
//! println!("changed: {}, state: {}", outcome.changed, outcome.facts.state);
//! # Ok::<(), lxcform::Error>(())
//! ```
//!
//! liblxc forks in `start`, `create`, `clone` and `attach`: drive it from a single-threaded
//! process (the binaries are; tests run them as processes).

pub mod archive;
pub mod clone;
pub mod config_file;
pub mod error;
pub mod execute;
pub mod facts;
pub mod liblxc;
pub mod lock;
pub mod manifest;
pub mod plan;
pub mod spec;
pub mod store;

pub use error::Error;
pub use execute::{ensure, exists, facts, list, observe, observe_spec, Options};
pub use facts::{CommandResult, Diff, Facts, Outcome};
pub use plan::{plan, Current, Observed, Plan, Step};
pub use spec::{ContainerSpec, DesiredState, SpecArgs, SpecError};
pub use store::Store;
