//! `lxcform archive NAME` and `lxcform restore ARCHIVE --name NEW`: flags in, library call,
//! result out (human text with a progress bar on a terminal, or JSON).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use lxcform::archive::{self, Progress, RestoreSpec, WriteOptions};
use lxcform::spec::{validate_name, ArchiveSpec, Compression};
use lxcform::{Error, SpecArgs};

use crate::out::{errln, outln};

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The container to archive.
    pub name: String,
    /// gzip (.tar.tgz), bzip2 (.tar.bz2), xz (.tar.xz), zstd (.tar.zst), none (.tar).
    #[arg(long, short = 'c', default_value = "gzip")]
    pub compression: String,
    /// Directory for the archive, created if missing [default: the current directory].
    #[arg(long, short = 'p', visible_alias = "archive-path")]
    pub path: Option<PathBuf>,
    /// Where containers live [default: liblxc's lxc.lxcpath].
    #[arg(long, short = 'P')]
    pub lxc_path: Option<PathBuf>,
    /// Print nothing on success (no progress bar, no summary).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive made by `lxcform archive`, `archive: true`, or Ansible's Python module.
    pub archive: PathBuf,
    /// Name of the new container.
    #[arg(long, short = 'n')]
    pub name: String,
    /// dir, overlay, btrfs, loop, lvm, zfs [default: dir].
    #[arg(long, short = 'B')]
    pub backing_store: Option<String>,
    /// Where containers live [default: liblxc's lxc.lxcpath].
    #[arg(long, short = 'P')]
    pub lxc_path: Option<PathBuf>,
    /// Filesystem size for loop and lvm, e.g. 5G [default: 5G].
    #[arg(long)]
    pub fs_size: Option<String>,
    /// Filesystem type for loop and lvm [default: ext4].
    #[arg(long)]
    pub fs_type: Option<String>,
    /// LVM volume group [default: lxc].
    #[arg(long)]
    pub vg_name: Option<String>,
    /// LVM logical volume [default: the container name].
    #[arg(long)]
    pub lv_name: Option<String>,
    /// LVM thin pool.
    #[arg(long)]
    pub thinpool: Option<String>,
    /// ZFS dataset under which to create the rootfs.
    #[arg(long)]
    pub zfs_root: Option<String>,
    /// Directory for the rootfs (dir store).
    #[arg(long)]
    pub directory: Option<PathBuf>,
    /// Keep the archived MAC addresses (by default new ones are made, as for a clone).
    #[arg(long)]
    pub keep_hwaddr: bool,
}

/// `lxcform archive`.
pub fn archive(a: ArchiveArgs, json: bool) -> Result<(), Error> {
    validate_name("name", &a.name)?;
    let compression = Compression::parse(&a.compression)?;
    let dir = a.path.unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let spec = ArchiveSpec {
        path: dir,
        compression,
    };
    let lxc_path = crate::args::lxc_path(a.lxc_path);
    let live = !a.quiet && !json && std::io::stderr().is_terminal();
    let mut bar = |p: Progress| draw(&p);
    let options = WriteOptions {
        progress: live.then_some(&mut bar as &mut dyn FnMut(Progress)),
    };
    let result = archive::archive_container(&a.name, &lxc_path, &spec, options);
    if live {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
    let info = result?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
        return Ok(());
    }
    if a.quiet {
        return Ok(());
    }
    outln!(
        "{}: archived to {} ({}, {:.1} MB/s read, sha256 {})",
        a.name,
        info.path.display(),
        mb(info.size),
        info.bytes_read as f64 / 1e6 / info.seconds.max(1e-3),
        info.sha256
    );
    for n in &info.notes {
        errln!("note: {n}");
    }
    Ok(())
}

/// `lxcform restore`.
pub fn restore(a: RestoreArgs, json: bool) -> Result<(), Error> {
    let spec = SpecArgs {
        name: Some(a.name),
        backing_store: a.backing_store,
        lxc_path: a.lxc_path,
        fs_size: a.fs_size,
        fs_type: a.fs_type,
        vg_name: a.vg_name,
        lv_name: a.lv_name,
        thinpool: a.thinpool,
        zfs_root: a.zfs_root,
        directory: a.directory,
        ..Default::default()
    }
    .validate()?;
    let restore = RestoreSpec {
        keep_hwaddr: a.keep_hwaddr,
        ..RestoreSpec::from_spec(&spec)
    };
    let info = archive::restore(&a.archive, &restore)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&info).unwrap_or_default()
        );
        return Ok(());
    }
    outln!(
        "{}: restored from {} (archive of {}) on {} in {:.1} s",
        info.name,
        a.archive.display(),
        info.archived_name,
        info.store,
        info.seconds
    );
    for n in &info.notes {
        errln!("note: {n}");
    }
    Ok(())
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// One progress line, redrawn in place: bytes read, rate, ETA.
fn draw(p: &Progress) {
    let mut line = format!("archiving: {} read, {:.1} MB/s", mb(p.read), p.rate() / 1e6);
    if let (Some(total), Some(eta)) = (p.total, p.eta()) {
        let pct = (p.read as f64 / total.max(1) as f64 * 100.0).min(100.0);
        line = format!(
            "archiving: {} of {} ({pct:.0}%), {:.1} MB/s, ETA {}s",
            mb(p.read),
            mb(total),
            p.rate() / 1e6,
            eta.as_secs()
        );
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}
