//! Restoring an archive (lxcform's, or the Python module's) as a new container on any
//! backing store: the store is made as liblxc would make it, the rootfs is extracted straight
//! into it while the archive is decompressed on another thread, and the config is rewritten
//! for the new name and place. A failed or interrupted restore removes everything it made.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;

use super::cmd;
use super::extract::Extractor;
use super::tar::Kind;
use super::undo::Undo;
use super::untar::TarReader;
use super::view::Rootfs;
use super::{compress, io_error_of, layout, ArchiveError};
use crate::config_file::{modern_key, ConfigFile};
use crate::error::Error;
use crate::execute::DEFAULT_FS_SIZE;
use crate::liblxc::sys::DeferSignals;
use crate::liblxc::{self, Container};
use crate::lock::ContainerLock;
use crate::spec::{Compression, ContainerSpec, StorageSpec};
use crate::store::Store;

/// What to restore an archive as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSpec {
    /// Name of the new container.
    pub name: String,
    /// Where it goes.
    pub lxc_path: PathBuf,
    /// Its backing store and the store's options (`fs_size`, `vg_name` …).
    pub storage: StorageSpec,
    /// Keep the archived MAC addresses instead of making new ones (as a clone would).
    pub keep_hwaddr: bool,
}

impl RestoreSpec {
    /// The name, lxc_path and storage of a validated declaration.
    pub fn from_spec(spec: &ContainerSpec) -> RestoreSpec {
        RestoreSpec {
            name: spec.name.clone(),
            lxc_path: spec.lxc_path.clone(),
            storage: spec.storage.clone(),
            keep_hwaddr: false,
        }
    }
}

/// A restored container. As JSON: `{"name", "lxc_path", "store", "rootfs", "archived_name",
/// "compression", "entries", "seconds", "notes"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreInfo {
    /// The new container.
    pub name: String,
    /// Its lxc_path.
    pub lxc_path: PathBuf,
    /// Its backing store.
    pub store: &'static str,
    /// Its `lxc.rootfs.path`.
    pub rootfs: String,
    /// The container the archive was made of.
    pub archived_name: String,
    /// The archive's compression (`none` for a plain tar).
    pub compression: &'static str,
    /// Entries read.
    pub entries: u64,
    /// Time taken.
    pub seconds: f64,
    /// What was not restored exactly, and what was changed (keys renamed, MACs renewed).
    pub notes: Vec<String>,
}

/// Creates container `spec.name` from `archive`. Takes the new container's lock.
pub fn restore(archive: &Path, spec: &RestoreSpec) -> Result<RestoreInfo, Error> {
    let start = Instant::now();
    crate::spec::validate_name("name", &spec.name)?;
    let _lock = ContainerLock::acquire(&spec.lxc_path, &spec.name).map_err(|source| Error::Io {
        container: spec.name.clone(),
        what: "lock",
        path: spec.lxc_path.join(crate::lock::LOCK_DIR),
        source,
    })?;
    let dir = spec.lxc_path.join(&spec.name);
    if Container::new(&spec.name, &spec.lxc_path)?.is_defined() || dir.exists() {
        return Err(ArchiveError::Exists {
            container: spec.name.clone(),
            lxc_path: spec.lxc_path.clone(),
        }
        .into());
    }
    let store = spec.storage.store;
    (store.info().host_check)(&spec.lxc_path).map_err(|reason| Error::Store {
        container: spec.name.clone(),
        store,
        reason,
    })?;
    let io = |what: &'static str, path: &Path| io_error_of(&spec.name, what, path);
    let file = File::open(archive).map_err(io("open", archive))?;
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let compression = {
        use std::io::BufRead;
        let head = buffered.fill_buf().map_err(io("read", archive))?;
        compress::sniff(head)
    };
    let decoder = compress::decoder(buffered).map_err(io("read", archive))?;

    let signals = DeferSignals::new();
    let mut made = Made {
        container: spec.name.clone(),
        dir: dir.clone(),
        undo: Vec::new(),
        armed: true,
    };
    let result = (|| {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        fs::DirBuilder::new()
            .mode(0o770)
            .create(&dir)
            .map_err(io("create", &dir))?;
        let target = prepare(spec, &dir, &mut made)?;
        let read = read_archive(
            archive,
            decoder,
            &dir,
            &target.extract_into,
            &signals,
            &spec.name,
        )?;
        if let Some(twin) = &target.root_twin {
            copy_root_metadata(&target.extract_into, twin).map_err(io("restore", twin))?;
        }
        made.unmount()?;
        let new = NewPlace {
            name: &spec.name,
            dir: &dir,
            rootfs: &target.rootfs,
            keep_hwaddr: spec.keep_hwaddr,
        };
        let text = String::from_utf8_lossy(&read.config);
        let (config, mut notes) = rewrite_config(&text, &read.archived_name, &new, &mut random_mac);
        let path = dir.join("config");
        fs::write(&path, config).map_err(io("write", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640))
            .map_err(io("write", &path))?;
        let c = Container::new(&spec.name, &spec.lxc_path)?;
        if !c.is_defined() {
            return Err(ArchiveError::Format {
                archive: archive.to_path_buf(),
                reason: "liblxc does not load the restored config".into(),
            }
            .into());
        }
        c.get_config_item("lxc.rootfs.path")?;
        notes.extend(read.notes);
        Ok(RestoreInfo {
            name: spec.name.clone(),
            lxc_path: spec.lxc_path.clone(),
            store: store.as_str(),
            rootfs: target.rootfs,
            archived_name: read.archived_name,
            compression: compression.map_or("none", |c| c.as_str()),
            entries: read.entries,
            seconds: start.elapsed().as_secs_f64(),
            notes,
        })
    })();
    let result = match result {
        Err(_) if signals.pending().is_some() => Err(Error::Interrupted {
            container: spec.name.clone(),
            what: "restore",
        }),
        other => other,
    };
    if result.is_ok() {
        made.armed = false;
    }
    drop(made);
    drop(signals);
    result
}

/// What restoring made, removed again unless disarmed.
struct Made {
    container: String,
    dir: PathBuf,
    undo: Vec<Undo>,
    armed: bool,
}

impl Made {
    /// Unmounts what extraction needed mounted (the store stays).
    fn unmount(&mut self) -> Result<(), Error> {
        let (now, keep): (Vec<Undo>, Vec<Undo>) = std::mem::take(&mut self.undo)
            .into_iter()
            .partition(|u| matches!(u, Undo::Unmount(_) | Undo::RemoveDir(_)));
        self.undo = keep;
        for u in now.iter().rev() {
            u.run(&self.container)?;
        }
        Ok(())
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if !self.armed {
            // Success: the store stays; anything still mounted is let go.
            let _ = self.unmount();
            return;
        }
        for u in self.undo.iter().rev() {
            let _ = u.run(&self.container);
        }
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where to extract, and the `lxc.rootfs.path` that names it.
struct Target {
    extract_into: PathBuf,
    rootfs: String,
    /// A directory that must carry the metadata of the rootfs's root too: an overlay's upper
    /// directory, whose attributes the merged root shows.
    root_twin: Option<PathBuf>,
}

/// Gives `to` the owner, mode, extended attributes and mtime of `from`.
fn copy_root_metadata(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(from)?;
    std::os::unix::fs::chown(to, Some(md.uid()), Some(md.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    let dir = File::open(to)?;
    for name in crate::liblxc::sys::xattr_names(from)? {
        let value = crate::liblxc::sys::xattr_get(from, &name)?;
        crate::liblxc::sys::xattr_set_at(dir.as_fd(), OsStr::new("."), &name, &value)?;
    }
    dir.set_modified(md.modified()?)
}

fn mkdir(container: &str, path: &Path, mode: u32) -> Result<(), Error> {
    fs::DirBuilder::new()
        .mode(mode)
        .recursive(true)
        .create(path)
        .map_err(io_error_of(container, "create", path))
}

/// Makes the new container's storage as liblxc would, mounted where needed.
fn prepare(spec: &RestoreSpec, dir: &Path, made: &mut Made) -> Result<Target, Error> {
    let name = spec.name.as_str();
    let s = &spec.storage;
    let rootfs = dir.join("rootfs");
    let size = s.fs_size.unwrap_or(DEFAULT_FS_SIZE);
    let fs_type = s.fs_type.clone().unwrap_or_else(|| "ext4".into());
    let mkfs = |device: &Path| -> Result<(), Error> {
        let mut args: Vec<&OsStr> = vec!["-t".as_ref(), fs_type.as_ref()];
        if fs_type.starts_with("ext") {
            args.extend([OsStr::new("-q"), OsStr::new("-F")]);
        }
        args.push(device.as_os_str());
        cmd::run(name, "mkfs", &args)?;
        Ok(())
    };
    // A block store (`lxc.rootfs.path` `value`) is extracted into through a temporary mount
    // by `mount ARGS`; `rootfs` is made as the mount point liblxc expects.
    let mounted = |made: &mut Made, value: String, args: &[&OsStr]| -> Result<Target, Error> {
        mkdir(name, &dir.join("rootfs"), 0o755)?;
        let mnt = dir.join(".lxcform-restore-mnt");
        mkdir(name, &mnt, 0o700)?;
        made.undo.push(Undo::RemoveDir(mnt.clone()));
        let mut all: Vec<&OsStr> = args.to_vec();
        all.push(mnt.as_os_str());
        cmd::run(name, "mount", &all)?;
        made.undo.push(Undo::Unmount(mnt.clone()));
        Ok(Target {
            rootfs: value,
            extract_into: mnt,
            root_twin: None,
        })
    };
    Ok(match s.store {
        Store::Dir => {
            let path = s.directory.clone().unwrap_or(rootfs);
            if path.exists() {
                return Err(ArchiveError::Rootfs {
                    container: name.to_string(),
                    reason: format!("directory {} already exists", path.display()),
                }
                .into());
            }
            mkdir(name, &path, 0o755)?;
            if !path.starts_with(dir) {
                made.undo.push(Undo::RemoveTree(path.clone()));
            }
            Target {
                rootfs: format!("dir:{}", path.display()),
                extract_into: path,
                root_twin: None,
            }
        }
        Store::Overlay => {
            let upper = dir.join("overlay/delta");
            mkdir(name, &rootfs, 0o755)?;
            mkdir(name, &upper, 0o755)?;
            mkdir(name, &dir.join("overlay/work"), 0o755)?;
            Target {
                rootfs: format!("overlay:{}:{}", rootfs.display(), upper.display()),
                extract_into: rootfs,
                root_twin: Some(upper),
            }
        }
        Store::Btrfs => {
            cmd::run(
                name,
                "btrfs",
                &["subvolume".as_ref(), "create".as_ref(), rootfs.as_os_str()],
            )?;
            made.undo.push(Undo::BtrfsDelete(rootfs.clone()));
            Target {
                rootfs: format!("btrfs:{}", rootfs.display()),
                extract_into: rootfs,
                root_twin: None,
            }
        }
        Store::Loop => {
            let image = dir.join("rootdev");
            let f = File::create(&image).map_err(io_error_of(name, "create", &image))?;
            f.set_len(size).map_err(io_error_of(name, "size", &image))?;
            drop(f);
            fs::set_permissions(&image, fs::Permissions::from_mode(0o600)).ok();
            mkfs(&image)?;
            let value = format!("loop:{}", image.display());
            mounted(
                made,
                value,
                &["-o".as_ref(), "loop".as_ref(), image.as_os_str()],
            )?
        }
        Store::Lvm => {
            let vg = or_lxc_default(&s.vg_name, "lxc.bdev.lvm.vg");
            let lv = s.lv_name.clone().unwrap_or_else(|| name.to_string());
            let size_arg = format!("{size}b");
            let new_lv = format!("{vg}/{lv}");
            let mut args: Vec<String> = vec!["-Wy".into(), "--yes".into(), "-n".into(), lv.clone()];
            match &s.thinpool {
                Some(pool) => {
                    args.extend(["-V".into(), size_arg, "-T".into(), format!("{vg}/{pool}")])
                }
                None => args.extend(["-L".into(), size_arg, vg.clone()]),
            }
            cmd::run(name, "lvcreate", &args)?;
            made.undo.push(Undo::LvRemove(new_lv));
            let device = PathBuf::from(format!("/dev/{vg}/{lv}"));
            mkfs(&device)?;
            mounted(
                made,
                format!("lvm:{}", device.display()),
                &[device.as_os_str()],
            )?
        }
        Store::Zfs => {
            let root = or_lxc_default(&s.zfs_root, "lxc.bdev.zfs.root");
            let dataset = format!("{root}/{name}");
            let mountpoint = format!("mountpoint={}", rootfs.display());
            cmd::run(
                name,
                "zfs",
                &[
                    "create",
                    "-o",
                    mountpoint.as_str(),
                    "-o",
                    "canmount=noauto",
                    "-p",
                    dataset.as_str(),
                ],
            )?;
            made.undo.push(Undo::ZfsDestroyDataset(dataset.clone()));
            let opts = format!("zfsutil,mntpoint={dataset}");
            mounted(
                made,
                format!("zfs:{dataset}"),
                &[
                    "-t".as_ref(),
                    "zfs".as_ref(),
                    "-o".as_ref(),
                    opts.as_ref(),
                    dataset.as_ref(),
                ],
            )?
        }
    })
}

/// A store option, else liblxc's global setting `key` (`lxc.bdev.lvm.vg` …), else `lxc`, as
/// liblxc chooses.
fn or_lxc_default(option: &Option<String>, key: &str) -> String {
    option
        .clone()
        .or_else(|| liblxc::global_config_item(key))
        .unwrap_or_else(|| "lxc".into())
}

/// What reading the archive found.
struct Found {
    archived_name: String,
    config: Vec<u8>,
    entries: u64,
    notes: Vec<String>,
}

/// Largest config or container file restored (they are small text files).
const MAX_SMALL_FILE: u64 = 16 << 20;

fn read_archive(
    archive: &Path,
    decoder: Box<dyn Read + Send>,
    dir: &Path,
    rootfs: &Path,
    signals: &DeferSignals,
    container: &str,
) -> Result<Found, Error> {
    let format = |reason: String| -> Error {
        ArchiveError::Format {
            archive: archive.to_path_buf(),
            reason,
        }
        .into()
    };
    let io_at = |what: &'static str, path: &Path| io_error_of(container, what, path);
    let mut reader = TarReader::new(
        ThreadedReader::spawn(decoder).map_err(io_at("start decompressing", archive))?,
    );
    let mut extractor = Extractor::new(rootfs).map_err(io_at("open", rootfs))?;
    let mut layout = layout::Layout::default();
    // Files in the archive's one top-level directory while it is not known whether that is
    // the container directory: (name, content, mode).
    let mut pending: Vec<(Vec<u8>, Vec<u8>, u32)> = Vec::new();
    let mut config: Option<Vec<u8>> = None;
    let mut entries = 0u64;
    let mut skipped = 0u64;
    let mut notes = Vec::new();
    // A new file only: what is in the directory already is the new store's (a mounted loop
    // image, an overlay's layer), which an archive's file of the same name must not replace.
    let write_file = |f: &[u8], data: &[u8], mode: u32| -> Result<(), Error> {
        let path = dir.join(OsStr::from_bytes(f));
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o7777)
            .open(&path)
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            other => other.map_err(io_at("write", &path))?,
        };
        file.write_all(data).map_err(io_at("write", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_at("write", &path))
    };
    loop {
        if signals.pending().is_some() {
            return Err(Error::Interrupted {
                container: container.to_string(),
                what: "restore",
            });
        }
        let Some(e) = reader.next_entry().map_err(|e| format(e.to_string()))? else {
            break;
        };
        entries += 1;
        let place = layout
            .place(&e.path, e.kind == Some(Kind::Dir))
            .ok_or_else(|| {
                format(format!(
                    "it holds {:?} beside container {:?}",
                    String::from_utf8_lossy(&e.path),
                    String::from_utf8_lossy(layout.name().unwrap_or_default())
                ))
            })?;
        if layout.is_known() && !pending.is_empty() {
            if layout.name().is_some() {
                for (f, data, mode) in pending.drain(..) {
                    write_file(&f, &data, mode)?;
                }
            } else {
                skipped += pending.len() as u64;
                pending.clear();
            }
        }
        // liblxc names every loop image `rootdev`: one in an archive (the Python module's of
        // a loop container) is an image, not a file of the container, whatever the new store.
        let container_file = |f: &[u8]| {
            e.kind == Some(Kind::File) && layout::is_container_file_archived(f, Some(b"rootdev"))
        };
        match place {
            layout::Place::Top => {}
            layout::Place::Config => {
                config = Some(read_small(&mut reader, &e).map_err(|e| format(e.to_string()))?);
            }
            layout::Place::ContainerFile(f) => {
                if container_file(f) {
                    let data = read_small(&mut reader, &e).map_err(|e| format(e.to_string()))?;
                    write_file(f, &data, e.mode)?;
                }
            }
            layout::Place::Pending(f) => {
                if container_file(f) {
                    let data = read_small(&mut reader, &e).map_err(|e| format(e.to_string()))?;
                    pending.push((f.to_vec(), data, e.mode));
                }
            }
            layout::Place::Rootfs(rel) => {
                let link = match e.kind {
                    Some(Kind::HardLink) => match layout.locate(&e.link) {
                        Some(layout::Place::Rootfs(t)) => Some(t.to_vec()),
                        _ => {
                            return Err(format(format!(
                                "hard link {:?} points outside the rootfs",
                                String::from_utf8_lossy(&e.path)
                            )))
                        }
                    },
                    _ => None,
                };
                let rel = rel.to_vec();
                extractor
                    .entry(&e, &rel, link.as_deref(), &mut |buf| reader.read_data(buf))
                    .map_err(|err| {
                        if signals.pending().is_some() {
                            return Error::Interrupted {
                                container: container.to_string(),
                                what: "restore",
                            };
                        }
                        let at = rootfs.join(OsStr::from_bytes(&rel));
                        if err.kind() == io::ErrorKind::InvalidData
                            || err.kind() == io::ErrorKind::UnexpectedEof
                        {
                            format(err.to_string())
                        } else {
                            io_at("restore", &at)(err)
                        }
                    })?;
            }
            layout::Place::Other(_) => skipped += 1,
        }
    }
    extractor.finish().map_err(io_at("restore", rootfs))?;
    if entries == 0 {
        return Err(format("it is empty".into()));
    }
    let config = config
        .ok_or_else(|| format("it has no container config (./config or NAME/config)".into()))?;
    let archived_name = match layout.name() {
        Some(name) => String::from_utf8_lossy(name).into_owned(),
        None => name_of_root_archive(&String::from_utf8_lossy(&config), archive),
    };
    if skipped > 0 {
        notes.push(format!(
            "{skipped} entries of the container directory of {archived_name} beside its \
             config, rootfs and files were not restored"
        ));
    }
    notes.extend(extractor.notes);
    Ok(Found {
        archived_name,
        config,
        entries,
        notes,
    })
}

fn read_small<R: Read>(reader: &mut TarReader<R>, e: &super::untar::Entry) -> io::Result<Vec<u8>> {
    if e.size > MAX_SMALL_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than 16 MiB", String::from_utf8_lossy(&e.path)),
        ));
    }
    let mut out = vec![0u8; e.size as usize];
    let mut got = 0;
    while got < out.len() {
        let n = reader.read_data(&mut out[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    out.truncate(got);
    Ok(out)
}

/// Decompresses on its own thread, so that decompression and extraction overlap. Dropped
/// (at the end of the archive or on an error), it waits for the thread to end: a failed
/// restore goes on to undo what it made (lvremove, zfs destroy), which is not done from a
/// multi-threaded process.
struct ThreadedReader {
    /// `None` once dropped, which makes the thread's next send fail.
    rx: Option<Receiver<io::Result<Vec<u8>>>>,
    handle: Option<JoinHandle<()>>,
    current: Vec<u8>,
    at: usize,
}

impl ThreadedReader {
    fn spawn(mut r: Box<dyn Read + Send>) -> io::Result<ThreadedReader> {
        let (tx, rx) = sync_channel(8);
        let handle = std::thread::Builder::new()
            .name("lxcform-decompress".into())
            .spawn(move || loop {
                let mut buf = vec![0u8; 1 << 20];
                let mut got = 0;
                let result = loop {
                    match r.read(&mut buf[got..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            got += n;
                            if got == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(got);
                let end = got == 0 || result.is_err();
                let item = match result {
                    Ok(()) => Ok(buf),
                    Err(e) => Err(e),
                };
                if tx.send(item).is_err() || end {
                    return;
                }
            })?;
        Ok(ThreadedReader {
            rx: Some(rx),
            handle: Some(handle),
            current: Vec::new(),
            at: 0,
        })
    }
}

impl Read for ThreadedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.current.len() {
            match self.rx.as_ref().map(Receiver::recv) {
                Some(Ok(Ok(block))) => {
                    self.current = block;
                    self.at = 0;
                }
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(_)) | None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for ThreadedReader {
    fn drop(&mut self) {
        // Without a receiver the thread's next send fails; it reads at most one more block
        // from the archive file, so the join ends.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Where the restored container goes.
pub struct NewPlace<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its directory.
    pub dir: &'a Path,
    /// Its `lxc.rootfs.path`.
    pub rootfs: &'a str,
    /// Keep MAC addresses.
    pub keep_hwaddr: bool,
}

/// A random locally administered MAC address in LXC's range (`00:16:3e:xx:xx:xx`).
fn random_mac() -> String {
    let mut b = [0u8; 3];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = [(t >> 16) as u8, (t >> 8) as u8, t as u8];
    }
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The archived container's directory, told by its rootfs path (`…/NAME/rootfs`,
/// `…/NAME/overlay/delta`, `…/NAME/rootdev`).
fn old_dir(rootfs: &str, old_name: &str) -> Option<PathBuf> {
    let rootfs = Rootfs::parse(rootfs);
    if matches!(rootfs.store, Store::Lvm | Store::Zfs) {
        return None;
    }
    rootfs.paths.iter().find_map(|p| {
        Path::new(p)
            .ancestors()
            .skip(1)
            .find(|a| {
                a.file_name()
                    .is_some_and(|n| n.as_bytes() == old_name.as_bytes())
            })
            .map(Path::to_path_buf)
    })
}

/// The first value of any of `keys` in `config` (as [`rewrite_config`] reads them).
fn config_value<'c>(config: &'c ConfigFile, keys: &[&str]) -> Option<&'c str> {
    config
        .entries()
        .find(|(k, _)| keys.contains(k))
        .map(|(_, v)| v)
}

/// The name of the container that an archive with its container directory at the root was
/// made of (such an archive does not say it): its config's `lxc.uts.name` (which liblxc sets
/// to the name at create, clone and rename) or the archive's file name without its extension
/// (`web1.tar.tgz`, as lxcform and the Python module name it); the first that names the
/// directory the archived rootfs lies in, so that [`rewrite_config`] moves paths into it.
fn name_of_root_archive(config: &str, archive: &Path) -> String {
    let config = ConfigFile::parse(config);
    let uts = config_value(&config, &["lxc.uts.name", "lxc.utsname"]).filter(|v| !v.is_empty());
    let rootfs = config_value(&config, &["lxc.rootfs.path", "lxc.rootfs"]).unwrap_or_default();
    let file = archive.file_name().map(|n| {
        let n = n.to_string_lossy();
        let extensions = Compression::ALL
            .iter()
            .map(|(_, c)| c.extension())
            .chain(["tar.gz", "tgz"]);
        extensions
            .filter_map(|ext| n.strip_suffix(ext)?.strip_suffix('.'))
            .max_by_key(|stem| std::cmp::Reverse(stem.len()))
            .unwrap_or(&n)
            .to_string()
    });
    let candidates: Vec<String> = uts.map(str::to_string).into_iter().chain(file).collect();
    candidates
        .iter()
        .find(|name| old_dir(rootfs, name).is_some())
        .or(candidates.first())
        .cloned()
        .unwrap_or_default()
}

fn replace_dir(value: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(old) {
        let after = &rest[i + old.len()..];
        let whole = after.is_empty() || after.starts_with(['/', ' ', '\t', ':', ',']);
        out.push_str(&rest[..i]);
        out.push_str(if whole { new } else { old });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Rewrites an archived config for its new name and place: `lxc.rootfs.path` and
/// `lxc.uts.name` set, paths into the old container directory moved to the new one, keys
/// renamed since LXC 2 translated, MAC addresses renewed (unless kept). Comments and order
/// stay. Returns the text and notes on what changed beyond name and rootfs.
pub fn rewrite_config(
    text: &str,
    old_name: &str,
    new: &NewPlace<'_>,
    mac: &mut dyn FnMut() -> String,
) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let parsed = ConfigFile::parse(text);
    let old_rootfs = config_value(&parsed, &["lxc.rootfs.path", "lxc.rootfs"]).unwrap_or_default();
    let old_dir = old_dir(old_rootfs, old_name).map(|p| p.to_string_lossy().into_owned());
    let new_dir = new.dir.to_string_lossy().into_owned();
    let (mut rootfs_done, mut uts_done) = (false, false);
    let mut out = String::with_capacity(text.len() + 64);
    let mut renewed = 0;
    for line in text.lines() {
        let t = line.trim_start();
        let Some((k, v)) = t.split_once('=').filter(|_| !t.starts_with('#')) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if k == "lxc.rootfs.backend" {
            continue;
        }
        let key = match modern_key(k) {
            Some(m) => {
                notes.push(format!("config key {k} renamed to {m}"));
                m
            }
            None => k.to_string(),
        };
        let value = match key.as_str() {
            "lxc.rootfs.path" if !rootfs_done => {
                rootfs_done = true;
                new.rootfs.to_string()
            }
            "lxc.uts.name" if !uts_done => {
                uts_done = true;
                new.name.to_string()
            }
            "lxc.rootfs.path" | "lxc.uts.name" => continue,
            _ if is_hwaddr(&key) && !new.keep_hwaddr && !v.contains('x') => {
                renewed += 1;
                mac()
            }
            _ => match &old_dir {
                Some(old) => replace_dir(v, old, &new_dir),
                None => v.to_string(),
            },
        };
        if key == k && value == v {
            out.push_str(line);
        } else {
            out.push_str(&format!("{key} = {value}"));
        }
        out.push('\n');
    }
    if !rootfs_done {
        out.push_str(&format!("lxc.rootfs.path = {}\n", new.rootfs));
    }
    if !uts_done {
        out.push_str(&format!("lxc.uts.name = {}\n", new.name));
    }
    if renewed > 0 {
        notes.push(format!("{renewed} MAC address(es) renewed"));
    }
    (out, notes)
}

fn is_hwaddr(key: &str) -> bool {
    key.strip_prefix("lxc.net.")
        .and_then(|r| r.strip_suffix(".hwaddr"))
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(dir: &'a Path, rootfs: &'a str) -> NewPlace<'a> {
        NewPlace {
            name: "new1",
            dir,
            rootfs,
            keep_hwaddr: false,
        }
    }

    #[test]
    fn config_is_rewritten_for_the_new_container() {
        let text = "# made by a template\n\
                    lxc.net.0.type = veth\n\
                    lxc.net.0.hwaddr = 00:16:3e:aa:bb:cc\n\
                    lxc.rootfs.path = dir:/var/lib/lxc/old1/rootfs\n\
                    lxc.mount.fstab = /var/lib/lxc/old1/fstab\n\
                    lxc.mount.entry = /var/lib/lxc/old10 mnt none bind 0 0\n\
                    lxc.uts.name = old1\n";
        let dir = Path::new("/srv/lxc/new1");
        let new = place(dir, "btrfs:/srv/lxc/new1/rootfs");
        let (out, notes) = rewrite_config(text, "old1", &new, &mut || "00:16:3e:01:02:03".into());
        assert_eq!(
            out,
            "# made by a template\n\
             lxc.net.0.type = veth\n\
             lxc.net.0.hwaddr = 00:16:3e:01:02:03\n\
             lxc.rootfs.path = btrfs:/srv/lxc/new1/rootfs\n\
             lxc.mount.fstab = /srv/lxc/new1/fstab\n\
             lxc.mount.entry = /var/lib/lxc/old10 mnt none bind 0 0\n\
             lxc.uts.name = new1\n"
        );
        assert_eq!(notes, ["1 MAC address(es) renewed"]);
    }

    #[test]
    fn lxc2_configs_of_the_python_module_era_are_modernized() {
        let text = "lxc.rootfs = /var/lib/lxc/old1/rootfs\n\
                    lxc.rootfs.backend = dir\n\
                    lxc.utsname = old1\n\
                    lxc.network.0.link = lxcbr0\n";
        let dir = Path::new("/l/new1");
        let mut new = place(dir, "dir:/l/new1/rootfs");
        new.keep_hwaddr = true;
        let (out, notes) = rewrite_config(text, "old1", &new, &mut || unreachable!());
        assert_eq!(
            out,
            "lxc.rootfs.path = dir:/l/new1/rootfs\n\
             lxc.uts.name = new1\n\
             lxc.net.0.link = lxcbr0\n"
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
    }

    #[test]
    fn missing_keys_are_added_and_overlay_dirs_found() {
        let (out, _) = rewrite_config(
            "lxc.net.0.type = empty\n",
            "a",
            &place(Path::new("/l/new1"), "dir:/l/new1/rootfs"),
            &mut || unreachable!(),
        );
        assert!(out.ends_with("lxc.rootfs.path = dir:/l/new1/rootfs\nlxc.uts.name = new1\n"));
        assert_eq!(
            old_dir("overlay:/l/base/rootfs:/l/a/overlay/delta", "a"),
            Some(PathBuf::from("/l/a"))
        );
        assert_eq!(old_dir("lvm:/dev/lxc/a", "a"), None);
        assert_eq!(old_dir("/srv/roots/a", "a"), None);
        assert_eq!(old_dir("zfs:tank/x", "a"), None);
    }

    #[test]
    fn a_root_archive_is_named_by_its_config_or_its_file() {
        let config = "lxc.uts.name = web1\nlxc.rootfs.path = dir:/var/lib/lxc/web1/rootfs\n";
        let name = |config: &str, file: &str| name_of_root_archive(config, Path::new(file));
        assert_eq!(name(config, "/b/web1.tar.tgz"), "web1");
        assert_eq!(name(config, "/b/monday.tgz"), "web1");
        // The host name changed since: the file name names the container directory.
        let renamed = "lxc.utsname = www\nlxc.rootfs = /var/lib/lxc/web1/rootfs\n";
        assert_eq!(name(renamed, "/b/web1.tar.bz2"), "web1");
        assert_eq!(name(renamed, "/b/web1.tar"), "web1");
        assert_eq!(name(renamed, "/b/x.tar.gz"), "www");
        assert_eq!(name("lxc.rootfs.path = zfs:tank/a\n", "/b/a.tar.zst"), "a");
    }

    #[test]
    fn hwaddr_keys() {
        assert!(is_hwaddr("lxc.net.0.hwaddr"));
        assert!(is_hwaddr("lxc.net.12.hwaddr"));
        assert!(!is_hwaddr("lxc.net..hwaddr"));
        assert!(!is_hwaddr("lxc.net.0.link"));
    }

    #[test]
    fn a_reader_dropped_mid_archive_leaves_no_thread_running() {
        let _serial = crate::archive::test_threads::serial();
        /// An endless, slow archive.
        struct Slow;
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(300));
                buf.fill(7);
                Ok(buf.len())
            }
        }
        let mut r = ThreadedReader::spawn(Box::new(Slow)).unwrap();
        let mut head = [0u8; 16];
        r.read_exact(&mut head).unwrap();
        assert_eq!(head, [7; 16]);
        // As when extracting fails: the reader is dropped with the thread in a read.
        drop(r);
        assert_eq!(crate::archive::test_threads::left(), 0);
    }

    #[test]
    fn random_macs_are_in_lxcs_range() {
        let m = random_mac();
        assert!(m.starts_with("00:16:3e:") && m.len() == 17, "{m}");
    }
}
