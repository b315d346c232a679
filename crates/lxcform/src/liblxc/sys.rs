//! The few host system calls lxcform makes outside liblxc, kept here so that all `unsafe` code
//! lives in this module.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The filesystem type magic (`statfs.f_type`) of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is NUL-terminated; `buf` is large enough for a statfs and only read on success.
    let rc = unsafe { libc::statfs(c.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statfs returned 0, so it filled `buf`.
    let stat = unsafe { buf.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type is not i64 on every target
    Some(stat.f_type as i64)
}

/// Takes an exclusive `flock` on `file`, waiting for it (retrying on EINTR).
pub fn lock_exclusive(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: `file` is an open descriptor for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Tries to take an exclusive `flock` on `file` without waiting; false when it is held.
pub fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: `file` is an open descriptor for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}
