//! Writing archive entries into a root filesystem directory.
//!
//! Every path is resolved component by component from the root's descriptor, refusing `..`
//! and never following a symlink (`O_NOFOLLOW`), so an archive cannot write outside the root
//! even if it plants a symlink first. Metadata is applied as GNU tar does: owner, then mode
//! (so a setuid bit survives the chown), then extended attributes (so a file capability
//! survives it too); directory times last, once nothing more is written into them.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::layout::safe_components;
use super::tar::Kind;
use super::untar::Entry;
use crate::liblxc::sys;

/// Extracts into one root directory.
pub struct Extractor {
    root: OwnedFd,
    /// The parent directory used last: entries of one directory come together.
    cached: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(Vec<u8>, i64)>,
    /// Things not restored exactly, for the user.
    pub notes: Vec<String>,
    xattr_failures: u64,
}

fn unsafe_path(rel: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "entry {:?} would leave the root filesystem",
            String::from_utf8_lossy(rel)
        ),
    )
}

impl Extractor {
    /// Extracts into the existing directory `root`.
    pub fn new(root: &Path) -> io::Result<Extractor> {
        let root_fd: OwnedFd = File::open(root)?.into();
        Ok(Extractor {
            root: root_fd,
            cached: None,
            dir_times: Vec::new(),
            notes: Vec::new(),
            xattr_failures: 0,
        })
    }

    /// Opens (creating missing directories, mode 0755) the directory `comps`.
    fn dir(&mut self, comps: &[&[u8]]) -> io::Result<BorrowedFd<'_>> {
        let key = comps.join(&b'/');
        if comps.is_empty() {
            return Ok(self.root.as_fd());
        }
        if self.cached.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(self
                .cached
                .as_ref()
                .map(|(_, fd)| fd.as_fd())
                .unwrap_or(self.root.as_fd()));
        }
        let mut fd: Option<OwnedFd> = None;
        for c in comps {
            let name = OsStr::from_bytes(c);
            let parent = fd.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let next = match sys::open_dir_at(parent, name) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    sys::mkdir_at(parent, name, 0o755)?;
                    sys::open_dir_at(parent, name)?
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot enter {:?} (a symlink or not a directory?): {e}",
                            String::from_utf8_lossy(&key)
                        ),
                    ))
                }
            };
            fd = Some(next);
        }
        self.cached = fd.map(|f| (key, f));
        Ok(self
            .cached
            .as_ref()
            .map(|(_, f)| f.as_fd())
            .unwrap_or(self.root.as_fd()))
    }

    /// Removes a non-directory in the way of a new entry (later entries win, as in tar).
    fn clear(dir: BorrowedFd<'_>, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        match sys::unlink_at(dir, name, false) {
            Ok(()) => Ok(true),
            // EISDIR (Linux reports it for unlink of a directory) or EPERM.
            Err(_) if keep_dir => Ok(false),
            Err(_) => sys::unlink_at(dir, name, true).map(|()| true),
        }
    }

    /// Writes one entry at `rel` (relative to the root). `data` reads its content; `link_rel`
    /// is the root-relative target of a hard link.
    pub fn entry(
        &mut self,
        e: &Entry,
        rel: &[u8],
        link_rel: Option<&[u8]>,
        data: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<()> {
        let comps = safe_components(rel).ok_or_else(|| unsafe_path(rel))?;
        let Some(kind) = e.kind else {
            self.notes.push(format!(
                "skipped {:?}: entry type {:?} is not restored",
                String::from_utf8_lossy(rel),
                e.flag as char
            ));
            return Ok(());
        };
        let Some((last, parents)) = comps.split_last() else {
            // The root itself.
            if kind == Kind::Dir {
                let root = self.root.try_clone()?;
                self.metadata(root.as_fd(), OsStr::new("."), e, kind)?;
                self.dir_times.push((Vec::new(), e.mtime));
            }
            return Ok(());
        };
        let name = OsStr::from_bytes(last);
        if kind == Kind::HardLink {
            let target = link_rel.ok_or_else(|| unsafe_path(&e.link))?;
            let tcomps = safe_components(target).ok_or_else(|| unsafe_path(target))?;
            let (tlast, tparents) = tcomps.split_last().ok_or_else(|| unsafe_path(target))?;
            let tdir = self.dir(tparents)?.try_clone_to_owned()?;
            let dir = self.dir(parents)?;
            let made = sys::hard_link_at(tdir.as_fd(), OsStr::from_bytes(tlast), dir, name);
            if let Err(err) = made {
                if err.kind() != io::ErrorKind::AlreadyExists {
                    return Err(err);
                }
                Self::clear(dir, name, false)?;
                sys::hard_link_at(tdir.as_fd(), OsStr::from_bytes(tlast), dir, name)?;
            }
            return Ok(());
        }
        let dir = self.dir(parents)?.try_clone_to_owned()?;
        let dir = dir.as_fd();
        let made = Self::create(dir, name, e, kind, data);
        match made {
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let replaced = Self::clear(dir, name, kind == Kind::Dir)?;
                if replaced || kind != Kind::Dir {
                    Self::create(dir, name, e, kind, data)?;
                }
            }
            other => other?,
        }
        self.metadata(dir, name, e, kind)?;
        if kind == Kind::Dir {
            self.dir_times.push((rel.to_vec(), e.mtime));
        } else {
            sys::set_times_at(dir, name, e.mtime, 0)?;
        }
        Ok(())
    }

    fn create(
        dir: BorrowedFd<'_>,
        name: &OsStr,
        e: &Entry,
        kind: Kind,
        data: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<()> {
        match kind {
            Kind::Dir => sys::mkdir_at(dir, name, 0o700),
            Kind::Symlink => sys::symlink_at(&e.link, dir, name),
            Kind::CharDev => sys::mknod_at(
                dir,
                name,
                libc::S_IFCHR | 0o600,
                sys::makedev(e.dev.0, e.dev.1),
            ),
            Kind::BlockDev => sys::mknod_at(
                dir,
                name,
                libc::S_IFBLK | 0o600,
                sys::makedev(e.dev.0, e.dev.1),
            ),
            Kind::Fifo => sys::mknod_at(dir, name, libc::S_IFIFO | 0o600, 0),
            Kind::File => {
                let mut f = sys::create_file_at(dir, name, 0o600)?;
                write_data(&mut f, e, data)
            }
            Kind::HardLink => Ok(()),
        }
    }

    fn metadata(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        e: &Entry,
        kind: Kind,
    ) -> io::Result<()> {
        let id = |v: u64| u32::try_from(v).map_err(|_| io::Error::other("owner id out of range"));
        sys::chown_at(dir, name, id(e.uid)?, id(e.gid)?)?;
        if kind != Kind::Symlink {
            sys::chmod_at(dir, name, e.mode & 0o7777)?;
        }
        for (key, value) in &e.xattrs {
            if let Err(err) = sys::xattr_set_at(dir, name, key, value) {
                self.xattr_failures += 1;
                if self.xattr_failures <= 5 {
                    self.notes.push(format!(
                        "extended attribute {} of {:?} not restored: {err}",
                        String::from_utf8_lossy(key),
                        name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sets the directories' times, deepest first; call once every entry is written.
    pub fn finish(&mut self) -> io::Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (rel, mtime) in times.iter().rev() {
            let comps = safe_components(rel).ok_or_else(|| unsafe_path(rel))?;
            match comps.split_last() {
                None => sys::set_times_at(self.root.as_fd(), OsStr::new("."), *mtime, 0)?,
                Some((last, parents)) => {
                    let dir = self.dir(parents)?.try_clone_to_owned()?;
                    sys::set_times_at(dir.as_fd(), OsStr::from_bytes(last), *mtime, 0)?;
                }
            }
        }
        if self.xattr_failures > 5 {
            self.notes.push(format!(
                "{} extended attributes in all were not restored",
                self.xattr_failures
            ));
        }
        Ok(())
    }
}

/// Copies the entry's data into `f`: sequentially, or region by region for a sparse file,
/// whose holes stay holes.
fn write_data(
    f: &mut File,
    e: &Entry,
    data: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    let regions: Vec<(u64, u64)> = match &e.sparse {
        Some(r) => r.clone(),
        None => vec![(0, e.size)],
    };
    for (offset, len) in regions {
        if e.sparse.is_some() {
            f.seek(SeekFrom::Start(offset))?;
        }
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left.min(usize::MAX as u64) as usize);
            let n = data(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive ends in the middle of a file",
                ));
            }
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    if e.sparse.is_some() {
        f.set_len(e.size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Some(kind),
            mode: 0o644,
            uid: u64::from(std::fs::metadata("/proc/self").map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.uid()
            })),
            gid: u64::from(std::fs::metadata("/proc/self").map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.gid()
            })),
            ..Default::default()
        }
    }

    fn no_data(_: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }

    #[test]
    fn entries_never_escape_the_root() {
        let base = std::env::temp_dir().join(format!("lxcform-extract-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let mut x = Extractor::new(&root).unwrap();

        // A symlink planted by the archive is never followed by later entries.
        let mut link = entry("etc", Kind::Symlink);
        link.link = outside.as_os_str().as_bytes().to_vec();
        x.entry(&link, b"etc", None, &mut no_data).unwrap();
        let file = entry("etc/passwd", Kind::File);
        let err = x
            .entry(&file, b"etc/passwd", None, &mut no_data)
            .unwrap_err();
        assert!(err.to_string().contains("cannot enter"), "{err}");
        assert!(!outside.join("passwd").exists());

        // `..` is refused, for entries and for hard link targets.
        let err = x
            .entry(&file, b"a/../../x", None, &mut no_data)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let hard = entry("h", Kind::HardLink);
        let err = x
            .entry(&hard, b"h", Some(b"../outside/f"), &mut no_data)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn sparse_files_keep_their_holes_and_later_entries_win() {
        let root = std::env::temp_dir().join(format!("lxcform-sparse-x-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut x = Extractor::new(&root).unwrap();
        let mut e = entry("d/sparse", Kind::File);
        e.size = 64 << 20;
        e.sparse = Some(vec![(0, 3), (32 << 20, 3), (64 << 20, 0)]);
        let mut data: &[u8] = b"abcxyz";
        x.entry(&e, b"d/sparse", None, &mut |buf| {
            io::Read::read(&mut data, buf)
        })
        .unwrap();
        x.finish().unwrap();
        let md = std::fs::metadata(root.join("d/sparse")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(md.len(), 64 << 20);
        assert!(md.blocks() * 512 < 1 << 20);
        let content = std::fs::read(root.join("d/sparse")).unwrap();
        assert_eq!(&content[..3], b"abc");
        assert_eq!(&content[32 << 20..(32 << 20) + 3], b"xyz");

        let mut again = entry("d/sparse", Kind::File);
        again.size = 2;
        let mut data: &[u8] = b"hi";
        x.entry(&again, b"d/sparse", None, &mut |buf| {
            io::Read::read(&mut data, buf)
        })
        .unwrap();
        assert_eq!(std::fs::read(root.join("d/sparse")).unwrap(), b"hi");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
