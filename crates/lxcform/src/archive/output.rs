//! The archive file: written to a private temporary file beside its final name, fsynced, then
//! renamed into place, so that no reader ever sees a partial archive.
//!
//! The temporary file is `.<file name>.lxcform-tmp.<pid>`, mode 0600, and its writer holds an
//! `flock` on it for as long as it is open. A run that finds such a file whose lock it can
//! take knows that its writer died (SIGKILL, power loss) and removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::layout;
use crate::liblxc::sys;
use crate::spec::Compression;

/// A temporary archive file, removed on drop unless [`Temp::commit`] renamed it into place.
#[derive(Debug)]
pub struct Temp {
    path: PathBuf,
    dest: PathBuf,
    /// Holds the lock (and is the file the data goes to, through a clone of the descriptor).
    file: File,
    armed: bool,
}

/// Creates `dir` (mode 0700: an archive holds a whole root filesystem) if it is missing.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes the temporary files of archives in `dir` (of any container: one destroyed since
/// would never come back for its own) whose writers are gone; returns the paths removed.
pub fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .filter(|n| n.starts_with('.'))
            .and_then(|n| n.rsplit_once(layout::TEMP_MARK))
            .map(|(_, pid)| pid)
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = entry.path();
        let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        // A writer that still runs holds the lock.
        if sys::try_lock_exclusive(&f) && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl Temp {
    /// Creates the temporary file for the archive `dest` (in `dest`'s directory) and locks it.
    pub fn create(dest: &Path, name: &str, compression: Compression) -> io::Result<Temp> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        let path = layout::temp_path(dir, name, compression, std::process::id());
        // A file of our own pid can only be left by an earlier run that had this pid.
        let _ = fs::remove_file(&path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)?;
        let temp = Temp {
            path,
            dest: dest.to_path_buf(),
            file,
            armed: true,
        };
        sys::lock_exclusive(&temp.file)?;
        Ok(temp)
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor to write the data through (it shares the lock).
    pub fn writer(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Flushes the file to disk, renames it to its final name and makes the rename durable.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        fs::rename(&self.path, &self.dest)?;
        self.armed = false;
        if let Some(dir) = self.dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.dest.clone())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What was written: size and SHA-256 of the compressed archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// Lower-case hex SHA-256 of those bytes.
    pub sha256: String,
}

/// Writes to a file while counting and hashing what goes through.
pub struct HashingWriter {
    out: BufWriter<File>,
    hash: Sha256,
    size: u64,
    abort: Option<Arc<AtomicBool>>,
}

impl HashingWriter {
    /// Writes to `file`.
    pub fn new(file: File) -> HashingWriter {
        HashingWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            size: 0,
            abort: None,
        }
    }

    /// Makes every write fail once `abort` is set.
    pub fn abort_on(mut self, abort: Arc<AtomicBool>) -> HashingWriter {
        self.abort = Some(abort);
        self
    }

    /// Flushes and reports size and hash.
    pub fn finish(mut self) -> io::Result<Written> {
        self.out.flush()?;
        Ok(Written {
            size: self.size,
            sha256: hex(&self.hash.finalize()),
        })
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::Relaxed))
        {
            return Err(io::Error::other("archive abandoned"));
        }
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lxcform-out-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commit_renames_and_drop_removes() {
        let dir = scratch("commit");
        ensure_dir(&dir).unwrap();
        let dest = dir.join("c1.tar");
        let t = Temp::create(&dest, "c1", Compression::None).unwrap();
        let mut w = HashingWriter::new(t.writer().unwrap());
        w.write_all(b"abc").unwrap();
        let written = w.finish().unwrap();
        assert_eq!(written.size, 3);
        assert_eq!(
            written.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(t.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let tmp = t.path().to_path_buf();
        t.commit().unwrap();
        assert!(!tmp.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"abc");

        let t = Temp::create(&dir.join("c2.tar"), "c2", Compression::None).unwrap();
        let tmp = t.path().to_path_buf();
        assert!(tmp.exists());
        drop(t);
        assert!(!tmp.exists(), "an uncommitted archive leaves nothing");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_dead_writers_temp_files_are_removed() {
        let dir = scratch("stale");
        ensure_dir(&dir).unwrap();
        let live = Temp::create(&dir.join("c1.tar.zst"), "c1", Compression::Zstd).unwrap();
        let dead = layout::temp_path(&dir, "c1", Compression::Zstd, 999_999_999);
        fs::write(&dead, b"partial").unwrap();
        let other = layout::temp_path(&dir, "c10", Compression::Gzip, 999_999_998);
        fs::write(&other, b"partial").unwrap();
        let mut removed = remove_stale(&dir);
        removed.sort();
        let mut want = vec![dead.clone(), other.clone()];
        want.sort();
        assert_eq!(removed, want, "any container's, once its writer is gone");
        assert!(live.path().exists(), "a running writer's file stays");
        drop(live);
        fs::remove_dir_all(&dir).unwrap();
    }
}
