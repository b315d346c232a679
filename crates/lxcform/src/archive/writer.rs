//! Turning walked entries into tar blocks for the compressor: metadata, extended
//! attributes, hard links stored once, sparse files as their data regions, and checks for a
//! pending signal between every two reads.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::compress::{Sink, BLOCK_SIZE};
use super::output::{self, Temp};
use super::tar::{self, Kind, SparseMap};
use super::view::Rootfs;
use super::{io_error, layout, walk, Progress, INTERRUPTED};
use crate::error::Error;
use crate::liblxc::sys::{self, DeferSignals};
use crate::liblxc::Container;

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

pub(super) fn temp_inode(temp: &Temp) -> Option<(u64, u64)> {
    fs::metadata(temp.path()).ok().map(|m| (m.dev(), m.ino()))
}

fn finish(mut sink: Sink, block: Vec<u8>) -> io::Result<output::Written> {
    if !block.is_empty() {
        sink.send(block, &mut || Ok(()))?;
    }
    sink.finish()
}

/// File data bytes in the tree (for the progress total).
pub(super) fn measure(tree: &walk::Tree) -> u64 {
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
pub(super) struct TarWriter<'s, 'p> {
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
    /// Archive path of the walked tree's root (`./rootfs`).
    prefix: Vec<u8>,
    overlay: bool,
    /// (dev, ino) of the archive being written, never archived into itself (an archive_path
    /// inside the rootfs).
    own_file: Option<(u64, u64)>,
    /// A write to the compressor failed (not a read of the tree): the archive's disk is full,
    /// say, which an error of the walk must not blame on the container's files.
    write_failed: bool,
}

impl<'s, 'p> TarWriter<'s, 'p> {
    /// A writer feeding `sink`, stopping when `signals` has one pending.
    pub(super) fn new(
        sink: Sink,
        signals: &'s DeferSignals,
        start: Instant,
        progress: Option<&'p mut dyn FnMut(Progress)>,
        own_file: Option<(u64, u64)>,
    ) -> TarWriter<'s, 'p> {
        TarWriter {
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
            progress,
            prefix: Vec::new(),
            overlay: false,
            own_file,
            write_failed: false,
        }
    }

    /// Whether the walk failed writing the archive rather than reading the tree.
    pub(super) fn write_failed(&self) -> bool {
        self.write_failed
    }

    /// Whether progress is reported (and so the tree worth measuring first).
    pub(super) fn reports_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Prepares for walking the rootfs: its archive path, its total size, whether it is an
    /// overlay (whose own xattrs are not archived).
    pub(super) fn start_rootfs(&mut self, prefix: Vec<u8>, total: Option<u64>, overlay: bool) {
        self.prefix = prefix;
        self.total = total;
        self.overlay = overlay;
    }

    /// Ends the tar and waits for the compressor: what was written, the notes, the number
    /// of entries and the bytes of file data read.
    pub(super) fn end(mut self) -> io::Result<(output::Written, Vec<String>, u64, u64)> {
        self.put(&tar::END)?;
        let written = finish(self.sink, self.block)?;
        Ok((written, self.notes, self.entries, self.read))
    }
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
        let sent = self.sink.send(full, &mut || {
            if signals.pending().is_some() {
                return Err(io::Error::other(INTERRUPTED));
            }
            if let Some(p) = progress.as_mut() {
                report(p, last, start, read, total);
            }
            Ok(())
        });
        self.write_failed |= sent.is_err() && signals.pending().is_none();
        sent
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

    /// The container directory entry (`./`), its config and its other files.
    pub(super) fn container_files(
        &mut self,
        c: &Container,
        dir: &Path,
        rootfs: &Rootfs,
    ) -> Result<(), Error> {
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
        self.prefix = layout::CONTAINER_DIR.to_vec();
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
}
