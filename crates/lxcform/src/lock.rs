//! One lock per container, so that two runs on the same container take turns.
//!
//! The lock is an `flock` on `<lxc_path>/.lxcform-locks/<name>.lock`: it lives with the
//! containers it guards (two hosts sharing an lxc_path share it too), and the kernel drops it
//! when the process dies, so a killed run never leaves a stale lock.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Name of the directory under the lxc_path that holds the lock files.
pub const LOCK_DIR: &str = ".lxcform-locks";

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct ContainerLock {
    _file: File,
    path: PathBuf,
}

impl ContainerLock {
    /// Waits until the lock on `name` in `lxc_path` is free and takes it.
    pub fn acquire(lxc_path: &Path, name: &str) -> std::io::Result<ContainerLock> {
        let dir = lxc_path.join(LOCK_DIR);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        crate::liblxc::sys::lock_exclusive(&file)?;
        Ok(ContainerLock { _file: file, path })
    }

    /// Takes the locks of several containers in name order, so two runs never deadlock.
    pub fn acquire_all(lxc_path: &Path, names: &[&str]) -> std::io::Result<Vec<ContainerLock>> {
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        sorted
            .into_iter()
            .map(|n| ContainerLock::acquire(lxc_path, n))
            .collect()
    }

    /// Waits until no run holds the lock on `name`, if its lock file exists; creates nothing.
    /// Returns whether the lock file existed (whether a run may have been at work on `name`).
    pub fn wait_for_holder(lxc_path: &Path, name: &str) -> std::io::Result<bool> {
        let path = lxc_path.join(LOCK_DIR).join(format!("{name}.lock"));
        match File::open(&path) {
            Ok(file) => crate::liblxc::sys::lock_exclusive(&file).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liblxc::sys::try_lock_exclusive;

    #[test]
    fn a_second_lock_waits_for_the_first() {
        let dir = std::env::temp_dir().join(format!("lxcform-locktest-{}", std::process::id()));
        let first = ContainerLock::acquire(&dir, "c1").unwrap();
        let other = File::open(first.path()).unwrap();
        assert!(!try_lock_exclusive(&other), "the lock is held");
        drop(first);
        assert!(try_lock_exclusive(&other), "released on drop");
        drop(other);
        assert!(ContainerLock::wait_for_holder(&dir, "c1").unwrap());
        assert!(!ContainerLock::wait_for_holder(&dir, "c2").unwrap());
        assert!(
            !dir.join(LOCK_DIR).join("c2.lock").exists(),
            "waiting creates nothing"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
