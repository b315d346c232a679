//! Container archives: a consistent view of a container's root filesystem streamed as a tar
//! straight into a compressor and into a file that appears whole or not at all; and the way
//! back, [`restore`], onto any backing store.
//!
//! # Layout
//!
//! An archive of container `NAME` is a POSIX (pax) tar, compressed as asked, named
//! `NAME.tar.tgz` (gzip), `NAME.tar.bz2`, `NAME.tar.xz`, `NAME.tar.zst` or `NAME.tar` (none),
//! as the Ansible module names them. Its entries, in this order:
//!
//! ```text
//! ./                    the container directory
//! ./config              the container's config file, as it is on disk
//! ./<file>              other regular files of the container directory (fstab, hooks …);
//!                       not the rootfs, overlay layers, loop image, logs or liblxc's
//!                       lxc_snapshots/lxc_rdepends (see layout::is_container_file_archived)
//! ./rootfs/             the root filesystem as the container sees it (an overlay merged),
//! ./rootfs/…            parents before children, each directory sorted by name
//! ```
//!
//! These are the member names of the Python module's archives (`tar --directory=TMP/NAME
//! -czf NAME.tar.tgz .` of a copy of the container directory), so that what restores one
//! (`tar -xzf NAME.tar.tgz -C /var/lib/lxc/NAME`) restores the other. [`restore`] reads
//! both, and the archives of earlier lxcform versions, which had `NAME/` where these have
//! `./` (see [`layout::Layout`]).
//!
//! Each entry keeps its numeric owner and group, mode (setuid, setgid, sticky), mtime
//! (seconds), symlink target, device numbers; hard links are stored once (later names are
//! link entries); extended attributes are `SCHILY.xattr.*` pax records, which includes POSIX
//! ACLs (`system.posix_acl_access`/`_default`) and file capabilities (`security.capability`);
//! sparse files are stored as GNU pax sparse 1.0 (data regions only). Sockets are skipped with
//! a note. GNU tar extracts such an archive faithfully into a container directory with
//! `tar --xattrs --xattrs-include='*' --numeric-owner -xpf NAME.tar.zst -C /var/lib/lxc/NAME`.
//!
//! # Consistency, atomicity, signals
//!
//! The rootfs is read from a consistent view per store (see [`view`]): a running container is
//! frozen while a dir or overlay rootfs is read, or only for the instant of a btrfs, LVM or
//! zfs snapshot. The archive is written to `.NAME.<ext>.lxcform-tmp.<pid>` (mode 0600) in the
//! archive directory (created, mode 0700, if missing), fsynced and renamed into place.
//!
//! SIGINT, SIGTERM and SIGHUP are deferred while an archive is written
//! ([`crate::liblxc::sys::DeferSignals`]): the handler only records the signal, the write loop
//! sees it between two reads, removes the temporary file, thaws the container and undoes the
//! view, and the signal is then raised again so the process ends as it was asked to. A SIGKILL
//! leaves the temporary file (and a snapshot or mount), which the next run removes.
//!
//! The caller holds the container's lock ([`crate::lock::ContainerLock`]);
//! [`archive_container`] takes it.

mod cmd;
mod compress;
mod extract;
pub mod layout;
mod output;
mod restore;
pub mod tar;
mod undo;
pub mod untar;
pub mod view;
mod walk;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use restore::{restore, RestoreInfo, RestoreSpec};

use crate::error::Error;
use crate::liblxc::sys::DeferSignals;
use crate::liblxc::Container;
use crate::lock::ContainerLock;
use crate::spec::ArchiveSpec;
use compress::Sink;
use output::{HashingWriter, Temp};
use view::{Rootfs, View};
use writer::TarWriter;

/// Why an archive could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file operation failed.
    #[error("container {container:?}: cannot {what} {}: {source}", path.display())]
    Io {
        /// The container.
        container: String,
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A host command failed.
    #[error("container {container:?}: `{command}` failed: {detail}")]
    Command {
        /// The container.
        container: String,
        /// The command line.
        command: String,
        /// Its exit status and trimmed stderr.
        detail: String,
    },
    /// The container's rootfs cannot be read.
    #[error("container {container:?}: cannot read its root filesystem: {reason}")]
    Rootfs {
        /// The container.
        container: String,
        /// Why.
        reason: String,
    },
    /// The archive is not one lxcform can restore.
    #[error("{}: not a container archive lxcform can restore: {reason}", archive.display())]
    Format {
        /// The archive.
        archive: PathBuf,
        /// Why.
        reason: String,
    },
    /// The container to restore already exists.
    #[error("container {container:?} already exists in {}", lxc_path.display())]
    Exists {
        /// The container.
        container: String,
        /// Its lxc_path.
        lxc_path: PathBuf,
    },
}

/// A written archive. As JSON: `{"path", "size", "sha256", "compression", "entries",
/// "bytes_read", "seconds", "notes"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveInfo {
    /// Where the archive is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the archive file.
    pub sha256: String,
    /// `gzip`, `bzip2`, `none`, `xz` or `zstd`.
    pub compression: &'static str,
    /// Entries in the tar.
    pub entries: u64,
    /// Bytes of file data read from the rootfs.
    pub bytes_read: u64,
    /// Time taken.
    pub seconds: f64,
    /// Things not archived exactly (sockets skipped, files that changed while read …).
    pub notes: Vec<String>,
}

/// How far an archive has got, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// File data read so far.
    pub read: u64,
    /// File data to read in all (known once the tree was measured).
    pub total: Option<u64>,
    /// Time since the start.
    pub elapsed: Duration,
}

impl Progress {
    /// Bytes read per second.
    pub fn rate(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Estimated time left.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total?;
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64(total.saturating_sub(self.read) as f64 / rate))
    }
}

/// Options of [`write_with`].
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// Called every ~200 ms while the archive is written. Measuring the tree first (to know
    /// the total) takes a quick extra walk of its metadata.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
}

/// Writes an archive of container `c` per `spec`, from a consistent view of its rootfs, and
/// returns the container to its prior state (also on failure and on SIGINT/SIGTERM/SIGHUP,
/// which then take effect). The caller holds the container's lock.
pub fn write(c: &Container, spec: &ArchiveSpec) -> Result<ArchiveInfo, Error> {
    write_with(c, spec, WriteOptions::default())
}

/// Opens container `name` in `lxc_path`, takes its lock and archives it ([`write_with`]).
pub fn archive_container(
    name: &str,
    lxc_path: &Path,
    spec: &ArchiveSpec,
    options: WriteOptions<'_>,
) -> Result<ArchiveInfo, Error> {
    let _lock = ContainerLock::acquire(lxc_path, name).map_err(|source| Error::Io {
        container: name.to_string(),
        what: "lock",
        path: lxc_path.join(crate::lock::LOCK_DIR),
        source,
    })?;
    let c = Container::new(name, lxc_path)?;
    write_with(&c, spec, options)
}

/// [`write`] with progress reports.
pub fn write_with(
    c: &Container,
    spec: &ArchiveSpec,
    options: WriteOptions<'_>,
) -> Result<ArchiveInfo, Error> {
    let signals = DeferSignals::new();
    let mut result = write_deferred(c, spec, options, &signals);
    if result.is_err() && signals.pending().is_some() {
        result = Err(Error::Interrupted {
            container: c.name().to_string(),
            what: "archive",
        });
    }
    // Dropping `signals` raises a signal that came meanwhile, now that all is undone.
    drop(signals);
    result
}

/// For `map_err`: the [`ArchiveError::Io`] of container `c` failing to `what` `path`.
pub(crate) fn io_error(
    c: &Container,
    what: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> Error {
    io_error_of(c.name(), what, path)
}

/// [`io_error`] of a container by name (one being restored has no [`Container`] yet).
pub(crate) fn io_error_of(
    container: &str,
    what: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> Error {
    let container = container.to_string();
    let path = path.to_path_buf();
    move |source| {
        ArchiveError::Io {
            container,
            what,
            path,
            source,
        }
        .into()
    }
}

/// The message of the error the writer stops with when a signal came.
pub(crate) const INTERRUPTED: &str = "interrupted by a signal";

fn write_deferred(
    c: &Container,
    spec: &ArchiveSpec,
    mut options: WriteOptions<'_>,
    signals: &DeferSignals,
) -> Result<ArchiveInfo, Error> {
    let start = Instant::now();
    if !c.is_defined() {
        return Err(Error::NotFound {
            container: c.name().to_string(),
            lxc_path: c.lxc_path().to_path_buf(),
        });
    }
    let rootfs = rootfs_of(c)?;
    output::ensure_dir(&spec.path).map_err(io_error(c, "create", &spec.path))?;
    let dest = spec
        .path
        .join(layout::file_name(c.name(), spec.compression));
    let mut notes: Vec<String> = output::remove_stale(&spec.path)
        .into_iter()
        .map(|p| format!("removed {} left by an interrupted run", p.display()))
        .collect();
    let temp = Temp::create(&dest, c.name(), spec.compression)
        .map_err(io_error(c, "create", &spec.path))?;
    let writer = temp.writer().map_err(io_error(c, "open", temp.path()))?;
    let sink = Sink::spawn(spec.compression, HashingWriter::new(writer)).map_err(io_error(
        c,
        "start compressing",
        temp.path(),
    ))?;
    let mut tar = TarWriter::new(
        sink,
        signals,
        start,
        options.progress.take(),
        writer::temp_inode(&temp),
    );
    let dir = c.lxc_path().join(c.name());
    tar.container_files(c, &dir, &rootfs)?;

    let view = View::open(c, rootfs)?;
    let tree = walk::Tree {
        layers: view.layers.clone(),
        overlay: view.overlay,
    };
    let total = tar.reports_progress().then(|| writer::measure(&tree));
    tar.start_rootfs(layout::ROOTFS.to_vec(), total, view.overlay);
    let walked = tree.walk(&mut tar);
    // Thaw and unmount before the (slow) end of compression.
    let closed = view.close();
    if let Err(e) = walked {
        let (what, path) = if tar.write_failed() {
            ("write", temp.path())
        } else {
            ("read the root filesystem of", dir.as_path())
        };
        return Err(io_error(c, what, path)(e));
    }
    closed?;
    let (written, more, entries, read) = tar.end().map_err(io_error(c, "write", temp.path()))?;
    if signals.pending().is_some() {
        return Err(Error::Interrupted {
            container: c.name().to_string(),
            what: "archive",
        });
    }
    let path = temp.commit().map_err(io_error(c, "write", &dest))?;
    notes.extend(more);
    Ok(ArchiveInfo {
        path,
        size: written.size,
        sha256: written.sha256,
        compression: spec.compression.as_str(),
        entries,
        bytes_read: read,
        seconds: start.elapsed().as_secs_f64(),
        notes,
    })
}

/// Removes what a killed earlier archive of `c` left behind ([`view::left_behind`]): its
/// mounted view, its snapshot, its freeze.
pub fn remove_left_behind(c: &Container) -> Result<(), Error> {
    let rootfs = rootfs_of(c)?;
    view::remove_leftovers(c, &rootfs);
    Ok(())
}

/// The container's rootfs, from its config file: liblxc's `get_config_item` drops the store
/// prefix (`loop:`, `overlay:` …) that says how to read it.
fn rootfs_of(c: &Container) -> Result<Rootfs, Error> {
    let path = c.config_file_name();
    let config = crate::config_file::ConfigFile::read(&path).map_err(io_error(c, "read", &path))?;
    let value = ["lxc.rootfs.path", "lxc.rootfs"]
        .iter()
        .find_map(|k| config.get(k).last().map(|v| v.to_string()))
        .filter(|v| !v.is_empty());
    let value = match value {
        Some(v) => v,
        None => c.get_config_item("lxc.rootfs.path")?.unwrap_or_default(),
    };
    if value.is_empty() {
        return Err(ArchiveError::Rootfs {
            container: c.name().to_string(),
            reason: "lxc.rootfs.path is not set".into(),
        }
        .into());
    }
    let mut rootfs = Rootfs::parse(&value);
    // Without a prefix liblxc tells a loop image by its being a file.
    if rootfs.store == crate::store::Store::Dir && Path::new(&rootfs.paths[0]).is_file() {
        rootfs.store = crate::store::Store::Loop;
    }
    Ok(rootfs)
}

/// Counting the archive's threads in unit tests.
#[cfg(test)]
pub(crate) mod test_threads {
    use std::sync::{Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    static LOCK: Mutex<()> = Mutex::new(());

    /// Held by every test that starts `lxcform-…` threads, so that a count sees one test's.
    pub(crate) fn serial() -> MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names the archive gives its threads, as the kernel keeps them (15 bytes).
    const NAMES: [&str; 3] = ["lxcform-compres", "lxcform-chunk", "lxcform-decompr"];

    /// Threads of this process that the archive started (liblzma's and libzstd's workers
    /// inherit the name of the compressing thread that starts them); not the main thread,
    /// named after the test binary. A joined thread can stay listed for a moment while the
    /// kernel ends it: the count is retried for up to 50 ms until it is zero.
    pub(crate) fn left() -> usize {
        let start = Instant::now();
        let main = std::process::id().to_string();
        loop {
            let n = std::fs::read_dir("/proc/self/task")
                .map(|tasks| {
                    tasks
                        .flatten()
                        .filter(|t| t.file_name() != main.as_str())
                        .filter(|t| {
                            std::fs::read_to_string(t.path().join("comm"))
                                .is_ok_and(|c| NAMES.contains(&c.trim_end()))
                        })
                        .count()
                })
                .unwrap_or(0);
            if n == 0 || start.elapsed() > Duration::from_millis(50) {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rate_and_eta() {
        let p = Progress {
            read: 50,
            total: Some(150),
            elapsed: Duration::from_secs(5),
        };
        assert_eq!(p.rate(), 10.0);
        assert_eq!(p.eta(), Some(Duration::from_secs(10)));
    }
}
