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
//! NAME/                 the container directory
//! NAME/config           the container's config file, as it is on disk
//! NAME/<file>           other regular files of the container directory (fstab, hooks …);
//!                       not the rootfs, overlay layers, loop image, logs or liblxc's
//!                       lxc_snapshots/lxc_rdepends
//! NAME/rootfs/          the root filesystem as the container sees it (an overlay merged),
//! NAME/rootfs/…         parents before children, each directory sorted by name
//! ```
//!
//! The Python module's archives (`tar -C TMP -czf NAME.tar.tgz .` of a copy of the container
//! directory) have the same shape with a `./` prefix, so [`restore`] reads both.
//!
//! Each entry keeps its numeric owner and group, mode (setuid, setgid, sticky), mtime
//! (seconds), symlink target, device numbers; hard links are stored once (later names are
//! link entries); extended attributes are `SCHILY.xattr.*` pax records, which includes POSIX
//! ACLs (`system.posix_acl_access`/`_default`) and file capabilities (`security.capability`);
//! sparse files are stored as GNU pax sparse 1.0 (data regions only). Sockets are skipped with
//! a note. GNU tar extracts such an archive faithfully with
//! `tar --xattrs --xattrs-include='*' --numeric-owner -xpf NAME.tar.zst`.
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
pub mod untar;
pub mod view;
mod walk;

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use restore::{restore, RestoreInfo, RestoreSpec};

use crate::error::Error;
use crate::liblxc::sys::{self, DeferSignals};
use crate::liblxc::Container;
use crate::lock::ContainerLock;
use crate::spec::ArchiveSpec;
use compress::{Sink, BLOCK_SIZE};
use output::{HashingWriter, Temp};
use tar::{Kind, SparseMap};
use view::{Rootfs, View};

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

fn io_error(c: &Container, what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let container = c.name().to_string();
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
const INTERRUPTED: &str = "interrupted by a signal";

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
    let mut notes: Vec<String> = output::remove_stale(&spec.path, c.name(), spec.compression)
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
    let mut tar = TarWriter {
        sink,
        block: Vec::with_capacity(BLOCK_SIZE),
        links: HashMap::new(),
        notes: Vec::new(),
        entries: 0,
        read: 0,
        total: None,
        signals,
        start,
        last_report: start,
        progress: options.progress.take(),
        prefix: Vec::new(),
        overlay: false,
        own_file: temp_inode(&temp),
    };
    let dir = c.lxc_path().join(c.name());
    tar.container_files(c, &dir, &rootfs)?;

    let view = View::open(c, rootfs)?;
    let tree = walk::Tree {
        layers: view.layers.clone(),
        overlay: view.overlay,
    };
    if tar.progress.is_some() {
        tar.total = Some(measure(&tree));
    }
    tar.prefix = format!("{}/rootfs", c.name()).into_bytes();
    tar.overlay = view.overlay;
    let walked = tree.walk(&mut tar);
    // Thaw and unmount before the (slow) end of compression.
    let closed = view.close();
    walked.map_err(io_error(c, "read the root filesystem of", &dir))?;
    closed?;
    tar.put(&tar::END)
        .map_err(io_error(c, "write", temp.path()))?;
    let TarWriter {
        sink,
        block,
        notes: more,
        entries,
        read,
        ..
    } = tar;
    let written = finish(sink, block).map_err(io_error(c, "write", temp.path()))?;
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

/// Calls `progress` if the last report is 200 ms old.
fn report(
    progress: &mut &mut dyn FnMut(Progress),
    last: &mut Instant,
    start: Instant,
    read: u64,
    total: Option<u64>,
) {
    let now = Instant::now();
    if now.duration_since(*last) < Duration::from_millis(200) {
        return;
    }
    *last = now;
    progress(Progress {
        read,
        total,
        elapsed: now.duration_since(start),
    });
}

fn temp_inode(temp: &Temp) -> Option<(u64, u64)> {
    fs::metadata(temp.path()).ok().map(|m| (m.dev(), m.ino()))
}

fn finish(mut sink: Sink, block: Vec<u8>) -> io::Result<output::Written> {
    if !block.is_empty() {
        sink.send(block, &mut || Ok(()))?;
    }
    sink.finish()
}

/// File data bytes in the tree (for the progress total).
fn measure(tree: &walk::Tree) -> u64 {
    struct Sum(u64);
    impl walk::Visitor for Sum {
        fn entry(&mut self, _rel: &[u8], _src: &Path, meta: &Metadata) -> io::Result<()> {
            if meta.is_file() {
                self.0 += meta.len().min(meta.blocks() * 512);
            }
            Ok(())
        }
        fn vanished(&mut self, _src: &Path) {}
    }
    let mut sum = Sum(0);
    let _ = tree.walk(&mut sum);
    sum.0
}

/// Turns walked entries into tar blocks for the compressor.
struct TarWriter<'s, 'p> {
    sink: Sink,
    block: Vec<u8>,
    /// (dev, ino) of files with several links → the archive path stored first.
    links: HashMap<(u64, u64), Vec<u8>>,
    notes: Vec<String>,
    entries: u64,
    read: u64,
    total: Option<u64>,
    signals: &'s DeferSignals,
    start: Instant,
    last_report: Instant,
    progress: Option<&'p mut dyn FnMut(Progress)>,
    /// Archive path of the walked tree's root (`NAME/rootfs`).
    prefix: Vec<u8>,
    overlay: bool,
    /// (dev, ino) of the archive being written, never archived into itself (an archive_path
    /// inside the rootfs).
    own_file: Option<(u64, u64)>,
}

impl TarWriter<'_, '_> {
    fn check_signal(&self) -> io::Result<()> {
        if self.signals.pending().is_some() {
            return Err(io::Error::other(INTERRUPTED));
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_SIZE));
        let (read, total, start, signals) = (self.read, self.total, self.start, self.signals);
        let last = &mut self.last_report;
        let progress = &mut self.progress;
        self.sink.send(full, &mut || {
            if signals.pending().is_some() {
                return Err(io::Error::other(INTERRUPTED));
            }
            if let Some(p) = progress.as_mut() {
                report(p, last, start, read, total);
            }
            Ok(())
        })
    }

    /// Appends bytes to the stream.
    fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = BLOCK_SIZE - self.block.len();
            let n = room.min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == BLOCK_SIZE {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    /// Appends `len` bytes read from `f` (zeros past its end: the file shrank while read).
    fn put_file(&mut self, f: &mut File, mut len: u64) -> io::Result<bool> {
        let mut complete = true;
        while len > 0 {
            self.check_signal()?;
            let at = self.block.len();
            let n = (BLOCK_SIZE - at).min(len.min(usize::MAX as u64) as usize);
            self.block.resize(at + n, 0);
            let got = if complete {
                read_full(f, &mut self.block[at..at + n])?
            } else {
                0
            };
            if got < n {
                complete = false;
            }
            self.read += n as u64;
            len -= n as u64;
            if self.block.len() == BLOCK_SIZE {
                self.flush_block()?;
            }
            self.report();
        }
        Ok(complete)
    }

    fn report(&mut self) {
        if let Some(p) = self.progress.as_mut() {
            report(p, &mut self.last_report, self.start, self.read, self.total);
        }
    }

    fn header(&mut self, e: &tar::Entry<'_>) -> io::Result<u64> {
        let mut h = Vec::with_capacity(tar::BLOCK * 3);
        let size = tar::encode_header(e, &mut h);
        self.entries += 1;
        self.put(&h)?;
        Ok(size)
    }

    fn padding(&mut self, len: u64) -> io::Result<()> {
        let pad = [0u8; tar::BLOCK];
        self.put(&pad[..tar::padding(len)])
    }

    /// The container directory entry, its config and its other files.
    fn container_files(&mut self, c: &Container, dir: &Path, rootfs: &Rootfs) -> Result<(), Error> {
        let name = c.name().as_bytes();
        let meta = fs::metadata(dir).map_err(io_error(c, "read", dir))?;
        let config = c.config_file_name();
        let mut files = vec![config.clone()];
        let mut others: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_error(c, "read", dir))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                layout::is_container_file_archived(e.file_name().as_bytes(), rootfs.loop_image())
            })
            .map(|e| e.path())
            .collect();
        others.sort();
        files.extend(others);
        let add = |tar: &mut Self, rel: &[u8], src: &Path, meta: &Metadata| tar.add(rel, src, meta);
        self.prefix = name.to_vec();
        add(self, b"", dir, &meta).map_err(io_error(c, "archive", dir))?;
        for (i, f) in files.iter().enumerate() {
            let meta = fs::symlink_metadata(f).map_err(io_error(c, "read", f))?;
            let rel: &[u8] = if i == 0 {
                b"config"
            } else {
                f.file_name().map_or(b"", |n| n.as_bytes())
            };
            add(self, rel, f, &meta).map_err(io_error(c, "archive", f))?;
        }
        Ok(())
    }

    /// Archives one walked entry.
    fn add(&mut self, rel: &[u8], src: &Path, meta: &Metadata) -> io::Result<()> {
        self.check_signal()?;
        if self.own_file == Some((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let path: Vec<u8> = if rel.is_empty() {
            self.prefix.clone()
        } else {
            [&self.prefix[..], b"/", rel].concat()
        };
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_char_device() {
            Kind::CharDev
        } else if ft.is_block_device() {
            Kind::BlockDev
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            self.notes
                .push(format!("skipped socket {}", String::from_utf8_lossy(&path)));
            return Ok(());
        };
        let xattrs = self.xattrs(src, kind)?;
        let mut e = tar::Entry {
            path: &path,
            kind: Some(kind),
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime: meta.mtime(),
            link: &[],
            dev: sys::dev_parts(meta.rdev()),
            xattrs: &xattrs,
            sparse: None,
        };
        if kind != Kind::Dir && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                e.kind = Some(Kind::HardLink);
                e.link = &first;
                e.xattrs = &[];
                self.header(&e)?;
                return Ok(());
            }
            self.links.insert(key, path.clone());
        }
        match kind {
            Kind::Symlink => {
                let target = fs::read_link(src)?.into_os_string().into_vec();
                e.link = &target;
                self.header(&e)?;
            }
            Kind::File => self.file(e, src, meta)?,
            _ => {
                self.header(&e)?;
            }
        }
        Ok(())
    }

    fn xattrs(&self, src: &Path, kind: Kind) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for name in sys::xattr_names(src)? {
            if self.overlay && name.starts_with(b"trusted.overlay.") {
                if name == b"trusted.overlay.redirect" || name == b"trusted.overlay.metacopy" {
                    return Err(io::Error::other(format!(
                        "{} uses overlay {} (redirect_dir/metacopy), which lxcform does not \
                         merge; archive the container stopped from a mounted rootfs instead",
                        src.display(),
                        String::from_utf8_lossy(&name)
                    )));
                }
                continue;
            }
            if name.contains(&b'=') {
                continue;
            }
            match sys::xattr_get(src, &name) {
                Ok(v) => out.push((name, v)),
                // Removed meanwhile, or not readable on a symlink: nothing to keep.
                Err(e) if kind == Kind::Symlink || e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn file(&mut self, e: tar::Entry<'_>, src: &Path, meta: &Metadata) -> io::Result<()> {
        let mut f = open_noatime(src)?;
        let size = meta.len();
        let map = if meta.blocks() * 512 < size {
            sparse_map(&f, size)?
        } else {
            None
        };
        let e = tar::Entry {
            size,
            sparse: map.as_ref(),
            ..e
        };
        let stored = self.header(&e)?;
        let mut complete = true;
        match &map {
            Some(map) => {
                self.put(&map.encode())?;
                for &(offset, len) in &map.regions {
                    f.seek(SeekFrom::Start(offset))?;
                    complete &= self.put_file(&mut f, len)?;
                }
            }
            None => complete = self.put_file(&mut f, size)?,
        }
        self.padding(stored)?;
        if !complete {
            self.notes.push(format!(
                "{} shrank while it was read; padded with zeros",
                String::from_utf8_lossy(e.path)
            ));
        }
        Ok(())
    }
}

impl walk::Visitor for TarWriter<'_, '_> {
    fn entry(&mut self, rel: &[u8], src: &Path, meta: &Metadata) -> io::Result<()> {
        self.add(rel, src, meta)
    }

    fn vanished(&mut self, src: &Path) {
        self.notes
            .push(format!("{} vanished while it was read", src.display()));
    }
}

/// Opens a file for reading without following a symlink or updating its access time (which
/// needs ownership or CAP_FOWNER; without it, it is opened normally).
fn open_noatime(path: &Path) -> io::Result<File> {
    let open = |flags| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | flags)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    }
    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The data regions of a file with holes; `None` when it has none worth recording.
fn sparse_map(f: &File, size: u64) -> io::Result<Option<SparseMap>> {
    let mut regions = Vec::new();
    let mut at = 0;
    while at < size {
        let Some(data) = sys::seek_data(f, at)? else {
            break;
        };
        if data >= size {
            break;
        }
        let end = sys::seek_hole(f, data)?.unwrap_or(size).min(size);
        regions.push((data, end - data));
        at = end;
    }
    if regions.len() == 1 && regions[0] == (0, size) {
        return Ok(None);
    }
    Ok(Some(SparseMap {
        regions,
        real_size: size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_found() {
        let path = std::env::temp_dir().join(format!("lxcform-sparse-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(b"start", 0).unwrap();
        f.write_at(b"middle", 32 << 20).unwrap();
        let f = File::open(&path).unwrap();
        let map = sparse_map(&f, 64 << 20).unwrap().expect("holes");
        assert_eq!(map.real_size, 64 << 20);
        assert_eq!(map.regions.len(), 2);
        assert_eq!(map.regions[0].0, 0);
        assert!(map.regions[1].0 <= 32 << 20 && map.regions[1].0 + map.regions[1].1 > 32 << 20);
        assert!(map.data_len() < 1 << 20);
        fs::remove_file(&path).unwrap();
    }

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
