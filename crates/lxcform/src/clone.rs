//! Making a clone of a container: quiesce the origin as little as its store allows, clone
//! through liblxc, and return the origin to its prior state whatever happens — a failed or
//! interrupted clone leaves no half-made clone behind.

use std::fs;

use crate::error::Error;
use crate::liblxc::sys::DeferSignals;
use crate::liblxc::{CloneArgs, Container};
use crate::plan::{Current, Quiesce};
use crate::store::CloneMethod;

/// Brings the origin back to the state it had when dropped or when [`Restore::finish`] is
/// called (which reports errors instead of swallowing them).
struct Restore<'a> {
    origin: &'a Container,
    prior: Current,
    armed: bool,
}

impl Restore<'_> {
    fn run(&mut self) -> Result<(), Error> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        let now = Current::from_lxc(self.origin.state());
        match (now, self.prior) {
            (a, b) if a == b => {}
            (Current::Stopped, Current::Running) => self.origin.start()?,
            (Current::Stopped, Current::Frozen) => {
                self.origin.start()?;
                self.origin.freeze()?;
            }
            (Current::Frozen, Current::Running) => self.origin.unfreeze()?,
            (Current::Running, Current::Frozen) => self.origin.freeze()?,
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), Error> {
        self.run()
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

/// Clones `origin` to `name` in the origin's lxc_path by `method`; `fs_size` sizes a
/// block-backed clone. The origin ends in the state it had, even when the clone fails or the
/// process is told to stop meanwhile (the signal takes effect once the origin is restored).
pub fn make(
    origin: &Container,
    name: &str,
    method: &CloneMethod,
    quiesce: Quiesce,
    fs_size: Option<u64>,
) -> Result<(), Error> {
    let signals = DeferSignals::new();
    let store = method.store;
    let dir = origin.lxc_path().join(name);
    let existed = dir.exists();
    let prior = Current::from_lxc(origin.state());
    let restore = Restore {
        origin,
        prior,
        armed: true,
    };
    match quiesce {
        Quiesce::Nothing => {}
        Quiesce::Freeze => origin.freeze()?,
        Quiesce::Stop => origin.stop()?,
    }
    let result = if signals.pending().is_some() {
        Err(interrupted(name))
    } else {
        origin
            .clone_to(&CloneArgs {
                new_name: name,
                lxc_path: None,
                snapshot: method.snapshot,
                bdevtype: Some(store.info().lxc_name),
                new_size: fs_size.unwrap_or(0),
                allow_running: Current::from_lxc(origin.state()) != Current::Stopped,
            })
            .map(|_clone| ())
            .map_err(Error::from)
    };
    let result = result.and_then(|()| match signals.pending() {
        Some(_) => Err(interrupted(name)),
        None => Ok(()),
    });
    if result.is_err() && !existed {
        remove_half_made(origin, name, &dir);
    }
    let restored = restore.finish();
    result?;
    restored
}

fn interrupted(name: &str) -> Error {
    Error::Interrupted {
        container: name.to_string(),
        what: "clone",
    }
}

/// Removes what a failed clone left: the container if liblxc got as far as defining it,
/// otherwise its directory.
fn remove_half_made(origin: &Container, name: &str, dir: &std::path::Path) {
    if let Ok(c) = Container::new(name, origin.lxc_path()) {
        if c.is_defined() {
            let _ = c.destroy();
        }
    }
    if dir.exists() {
        let _ = fs::remove_dir_all(dir);
    }
}
