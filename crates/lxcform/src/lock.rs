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
    name: String,
    path: PathBuf,
}

impl ContainerLock {
    /// Waits until the lock on `name` in `lxc_path` is free and takes it.
    pub fn acquire(lxc_path: &Path, name: &str) -> std::io::Result<ContainerLock> {
        let dir = lxc_path.join(LOCK_DIR);
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        loop {
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            crate::liblxc::sys::lock_exclusive(&file)?;
            // The run that held it may have removed the file (see `remove`) while this one
            // waited: a lock on a removed file guards nothing, so take the new file's.
            if is_same_file(&file, &path)? {
                let name = name.to_string();
                return Ok(ContainerLock {
                    _file: file,
                    name,
                    path,
                });
            }
        }
    }

    /// Removes the lock file and releases the lock: for a container that no longer exists.
    /// Runs that waited on the removed file find it gone and lock a new one.
    pub fn remove(self) -> std::io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
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

    /// The container it guards.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a run is in the middle of on a container, written beside its lock file, so that when
/// the run is killed (SIGKILL, the OOM killer, a crash) before it can undo it, the next run
/// finds it and does: `<name>.quiesced` holds the state a clone stopped or froze it from,
/// `<name>.unfinished` marks a clone still being made under that name. Marks are set and
/// read under the container's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The container was quiesced (stopped or frozen) for a moment; the mark holds its state
    /// before.
    Quiesced,
    /// A clone of that name is being made: what is there is not a finished container.
    Unfinished,
}

impl Mark {
    fn path(self, lxc_path: &Path, name: &str) -> PathBuf {
        let suffix = match self {
            Mark::Quiesced => "quiesced",
            Mark::Unfinished => "unfinished",
        };
        lxc_path.join(LOCK_DIR).join(format!("{name}.{suffix}"))
    }

    /// Sets the mark on `name` with `content`, durably (written, then synced).
    pub fn set(self, lxc_path: &Path, name: &str, content: &str) -> std::io::Result<()> {
        use std::io::Write;
        let path = self.path(lxc_path, name);
        fs::create_dir_all(path.parent().unwrap_or(lxc_path))?;
        let mut f = File::create(&path)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()
    }

    /// The mark's content, when `name` has it.
    pub fn get(self, lxc_path: &Path, name: &str) -> Option<String> {
        fs::read_to_string(self.path(lxc_path, name)).ok()
    }

    /// Takes the mark off `name` (a mark that is not there is no error).
    pub fn clear(self, lxc_path: &Path, name: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(lxc_path, name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode).
fn is_same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    Ok(match fs::metadata(path) {
        Ok(now) => now.dev() == held.dev() && now.ino() == held.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liblxc::sys::try_lock_exclusive;

    #[test]
    fn marks_are_set_read_and_cleared() {
        let dir = std::env::temp_dir().join(format!("lxcform-marks-{}", std::process::id()));
        assert_eq!(Mark::Quiesced.get(&dir, "c1"), None);
        Mark::Quiesced.set(&dir, "c1", "running").unwrap();
        Mark::Unfinished.set(&dir, "c2", "").unwrap();
        assert_eq!(Mark::Quiesced.get(&dir, "c1").as_deref(), Some("running"));
        assert_eq!(Mark::Unfinished.get(&dir, "c1"), None, "marks are per kind");
        Mark::Quiesced.clear(&dir, "c1").unwrap();
        Mark::Quiesced.clear(&dir, "c1").unwrap();
        assert_eq!(Mark::Quiesced.get(&dir, "c1"), None);
        fs::remove_dir_all(&dir).unwrap();
    }

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

    #[test]
    fn a_run_waiting_on_a_removed_lock_file_locks_the_new_one() {
        let dir = std::env::temp_dir().join(format!("lxcform-lockrm-{}", std::process::id()));
        let first = ContainerLock::acquire(&dir, "c1").unwrap();
        let path = first.path().to_path_buf();
        let waiter = std::thread::spawn({
            let dir = dir.clone();
            move || ContainerLock::acquire(&dir, "c1").unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        first.remove().unwrap();
        let second = waiter.join().unwrap();
        // The waiter holds the lock of the file now at the path, which a third run must wait on.
        let third = File::open(&path).unwrap();
        assert!(
            !try_lock_exclusive(&third),
            "the new file is locked by the waiter"
        );
        second.remove().unwrap();
        assert!(!path.exists(), "removed with its container");
        fs::remove_dir_all(&dir).unwrap();
    }
}
