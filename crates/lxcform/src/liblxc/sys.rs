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

static PENDING_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn record_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// Signals that would end the process in the middle of a step that must be undone or
/// finished first.
const DEFERRED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While alive, SIGINT, SIGTERM and SIGHUP are recorded instead of ending the process; on
/// drop the previous handlers come back and a recorded signal is raised again, so the process
/// ends the way it was asked to, but only after the guarded work cleaned up.
///
/// Handlers, unlike a blocked signal mask, are not inherited by the programs liblxc runs
/// (rsync, a container's init), so those still receive and act on signals normally.
pub struct DeferSignals {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl DeferSignals {
    /// Starts deferring.
    pub fn new() -> DeferSignals {
        let mut old = Vec::with_capacity(DEFERRED.len());
        for sig in DEFERRED {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we fill the
            // handler and flags before use.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = record_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: zeroed is a valid out-parameter value for sigaction.
            let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: both pointers are valid for the call; `record_signal` is async-signal-safe
            // (one atomic store).
            if unsafe { libc::sigaction(sig, &action, &mut previous) } == 0 {
                old.push((sig, previous));
            }
        }
        DeferSignals { old }
    }

    /// The signal received since deferring began, if any.
    pub fn pending(&self) -> Option<i32> {
        match PENDING_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }
}

impl Default for DeferSignals {
    fn default() -> Self {
        DeferSignals::new()
    }
}

impl Drop for DeferSignals {
    fn drop(&mut self) {
        for (sig, previous) in self.old.drain(..).rev() {
            // SAFETY: restoring the action sigaction gave us; the pointer is valid.
            unsafe { libc::sigaction(sig, &previous, std::ptr::null_mut()) };
        }
        let sig = PENDING_SIGNAL.swap(0, std::sync::atomic::Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: raising a signal in our own process; its original handler now applies.
            unsafe { libc::raise(sig) };
        }
    }
}
