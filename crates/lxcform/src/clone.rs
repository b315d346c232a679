//! Making a clone of a container: quiesce the origin as little as its store allows, clone
//! through liblxc, and return the origin to its prior state whatever happens — a failed or
//! interrupted clone leaves no half-made clone behind. Against what cannot be caught (SIGKILL,
//! the OOM killer, a crash), marks in the lock directory ([`Mark`]) tell the next run that the
//! clone is unfinished and which state the origin is to return to.

use std::fs;

use crate::error::Error;
use crate::liblxc::sys::DeferSignals;
use crate::liblxc::{CloneArgs, Container};
use crate::lock::Mark;
use crate::plan::{Current, Quiesce};
use crate::store::CloneMethod;

/// Brings `c` from the state it is in to `prior` (running, frozen or stopped).
pub(crate) fn return_to(c: &Container, prior: Current) -> Result<(), Error> {
    match (Current::from_lxc(c.state()), prior) {
        (a, b) if a == b => {}
        (Current::Stopped, Current::Running) => c.start()?,
        (Current::Stopped, Current::Frozen) => {
            c.start()?;
            c.freeze()?;
        }
        (Current::Frozen, Current::Running) => c.unfreeze()?,
        (Current::Running, Current::Frozen) => c.freeze()?,
        (Current::Running | Current::Frozen, Current::Stopped) => c.stop()?,
        _ => {}
    }
    Ok(())
}

/// Brings the origin back to the state it had when dropped or when [`Restore::finish`] is
/// called (which reports errors instead of swallowing them), and takes off its mark.
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
        return_to(self.origin, self.prior)?;
        let _ = Mark::Quiesced.clear(self.origin.lxc_path(), self.origin.name());
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
    let lxc_path = origin.lxc_path();
    let dir = lxc_path.join(name);
    let io = |what, source| Error::Io {
        container: name.to_string(),
        what,
        path: lxc_path.join(crate::lock::LOCK_DIR),
        source,
    };
    // A clone of this name that a killed run left half-made goes first.
    if Mark::Unfinished.get(lxc_path, name).is_some() {
        remove_half_made_clone(origin, name);
    }
    let existed = dir.exists();
    let prior = Current::from_lxc(origin.state());
    if quiesce != Quiesce::Nothing {
        Mark::Quiesced
            .set(lxc_path, origin.name(), prior.as_str())
            .map_err(|e| io("mark the origin quiesced", e))?;
    }
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
    let marked = Mark::Unfinished
        .set(lxc_path, name, "")
        .map_err(|e| io("mark the clone unfinished", e));
    let result = if let Err(e) = marked {
        Err(e)
    } else if signals.pending().is_some() {
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
        remove_half_made_clone(origin, name);
    }
    if result.is_ok() || !existed {
        let _ = Mark::Unfinished.clear(lxc_path, name);
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

/// Removes what a failed or cut-off create or clone left of `c`: the container with its
/// storage when liblxc got as far as defining it, and in any case its directory.
pub(crate) fn remove_half_made(c: &Container) -> std::io::Result<()> {
    if c.is_defined() {
        let _ = c.stop();
        let _ = c.destroy();
    }
    let dir = c.lxc_path().join(c.name());
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// [`remove_half_made`] of the clone `name` beside `origin`.
fn remove_half_made_clone(origin: &Container, name: &str) {
    if let Ok(c) = Container::new(name, origin.lxc_path()) {
        let _ = remove_half_made(&c);
    }
}
