//! The few host system calls lxcform makes outside liblxc, kept here so that all `unsafe` code
//! lives in this module.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether another open file description holds a lock on `file`: a record lock (OFD or
/// POSIX, as liblxc's create holds on its `partial` marker) or an `flock` (its fallback).
pub fn is_locked_by_another(file: &File) -> bool {
    // SAFETY: a zeroed flock is a valid value; the fields F_OFD_GETLK reads are set below.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `file` is open for the call; `lk` is a valid flock that the kernel fills in.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lk) } == 0
        && lk.l_type != libc::F_UNLCK as libc::c_short
    {
        return true;
    }
    // SAFETY: `file` is open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        // SAFETY: as above; this releases the lock just taken.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Whether a process other than this one has `dir` (or a path below it) among its arguments:
/// a template (`--path=DIR`) or an rsync into `DIR/rootfs` that a killed run left behind,
/// still at work. Reads every `/proc/PID/cmdline`: for the rare case of an unfinished create
/// or clone, not for every run.
pub fn is_worked_on(dir: &Path) -> bool {
    let dir = dir.as_os_str().as_bytes();
    let names = |arg: &[u8]| {
        arg.windows(dir.len())
            .enumerate()
            .any(|(i, w)| w == dir && matches!(arg.get(i + dir.len()), None | Some(b'/')))
    };
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs
        .flatten()
        .filter(|p| {
            let n = p.file_name();
            n.as_bytes().iter().all(u8::is_ascii_digit) && n.as_bytes() != me.as_bytes()
        })
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .any(|cmdline| cmdline.split(|&b| b == 0).any(names))
}

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

/// Takes an exclusive `flock` on `file`, waiting for it.
///
/// The wait gives way to a signal that a [`DeferSignals`] recorded (the run is to stop, and
/// nothing has changed yet): it then fails with [`std::io::ErrorKind::Interrupted`]. A
/// blocking `flock` would not: the handlers restart it. So a lock held by another process is
/// polled, every few milliseconds at first and then every 50.
pub fn lock_exclusive(file: &File) -> std::io::Result<()> {
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        // SAFETY: `file` is an open descriptor for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
            _ => return Err(err),
        }
        if pending_signal().is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "a signal came while waiting for the lock",
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Tries to take an exclusive `flock` on `file` without waiting; false when it is held.
pub fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: `file` is an open descriptor for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// The `freezer.state` file of the cgroup v1 freezer cgroup that `pid` is in; `None` on a
/// host without a v1 freezer (cgroup2 freezes through `cgroup.freeze`).
pub fn freezer_v1_state_file(pid: i32) -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let root = mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "freezer"))
            .then(|| f[1].to_string())
    })?;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "freezer")
            .then(|| path.to_string())
    })?;
    let file = Path::new(&root)
        .join(rel.trim_start_matches('/'))
        .join("freezer.state");
    file.exists().then_some(file)
}

/// Writes `FROZEN` again to a v1 `freezer.state` that is stuck in `FREEZING`, every few
/// milliseconds, until `done` is set.
pub fn nudge_freezer(state_file: &Path, done: &std::sync::atomic::AtomicBool) {
    let mut pause = std::time::Duration::from_millis(5);
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
        if std::fs::read_to_string(state_file).is_ok_and(|s| s.trim() == "FREEZING") {
            let _ = std::fs::write(state_file, "FROZEN");
        }
    }
}

static PENDING_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal a [`DeferSignals`] recorded and nobody has taken yet, if any.
pub fn pending_signal() -> Option<i32> {
    Some(PENDING_SIGNAL.load(std::sync::atomic::Ordering::SeqCst)).filter(|&s| s != 0)
}

/// Installs `handler` for `sig`, interrupted calls restarting; returns the disposition it
/// replaced (to give to [`put_back`]), or `None` when the kernel refused.
fn catch(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> Option<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler and
    // flags are set before use.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: zeroed is a valid out-parameter value for sigaction.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the handlers passed here are
    // async-signal-safe (an atomic store, or nothing).
    (unsafe { libc::sigaction(sig, &action, &mut old) } == 0).then_some(old)
}

/// Puts back the disposition [`catch`] returned.
fn put_back(sig: libc::c_int, old: &libc::sigaction) {
    // SAFETY: `old` is a disposition sigaction returned; the pointer is valid for the call.
    unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) `sig` in the calling thread only.
fn thread_mask(how: libc::c_int, sig: libc::c_int) {
    // SAFETY: `set` is initialised by sigemptyset before use; the pointers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

extern "C" fn record_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// Signals that would end the process in the middle of a step that must be undone or
/// finished first.
pub const DEFERRED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

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
        let old = DEFERRED
            .into_iter()
            .filter_map(|sig| catch(sig, record_signal).map(|previous| (sig, previous)))
            .collect();
        DeferSignals { old }
    }

    /// The signal received since deferring began, if any.
    pub fn pending(&self) -> Option<i32> {
        pending_signal()
    }

    /// Like [`pending`](Self::pending), but the caller takes the signal over: the drop will
    /// not raise it (the caller finishes its report, then calls [`die_by_signal`]).
    pub fn take(&self) -> Option<i32> {
        Some(PENDING_SIGNAL.swap(0, std::sync::atomic::Ordering::SeqCst)).filter(|&s| s != 0)
    }
}

/// Ends the process by signal `sig` under its default action, as if it had never been
/// caught; exits with 128 + `sig` where that action is to ignore it.
pub fn die_by_signal(sig: i32) -> ! {
    // Blocked, it would stay pending: apply blocks SIGPIPE in its own thread.
    thread_mask(libc::SIG_UNBLOCK, sig);
    // SAFETY: resetting a disposition and raising a signal in our own process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// The name of a signal lxcform defers or reports (`SIGINT`), else `signal N`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".to_string(),
        libc::SIGTERM => "SIGTERM".to_string(),
        libc::SIGHUP => "SIGHUP".to_string(),
        libc::SIGKILL => "SIGKILL".to_string(),
        libc::SIGPIPE => "SIGPIPE".to_string(),
        libc::SIGSEGV => "SIGSEGV".to_string(),
        libc::SIGABRT => "SIGABRT".to_string(),
        _ => format!("signal {sig}"),
    }
}

/// Waits until child `pid` has ended, without reaping it: while it is a zombie neither its pid
/// nor its process group id can be taken by another process. Returns the signal that ended
/// it, if one did.
pub fn wait_ended_unreaped(pid: u32) -> std::io::Result<Option<i32>> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid for writes; WNOWAIT leaves the child to be reaped later.
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            return Ok(match info.si_code {
                // SAFETY: for CLD_KILLED and CLD_DUMPED, si_status holds the signal.
                libc::CLD_KILLED | libc::CLD_DUMPED => Some(unsafe { info.si_status() }),
                _ => None,
            });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Sends `sig` to process `pid`.
pub fn signal_process(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions.
    check(unsafe { libc::kill(pid, sig) })
}

/// Sends `sig` to the process group `pgid` (a child started as the leader of its own group).
pub fn signal_group(pgid: u32, sig: i32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(std::io::Error::other)?;
    // SAFETY: kill has no memory-safety preconditions; a negative pid names a process group.
    check(unsafe { libc::kill(-pgid, sig) })
}

/// Blocks SIGPIPE in the calling thread only: a write to a closed pipe from this thread then
/// fails with EPIPE instead of ending the process (the signal a write raises goes to the
/// thread that wrote, and stays pending there until the thread ends).
pub fn block_sigpipe_in_this_thread() {
    thread_mask(libc::SIG_BLOCK, libc::SIGPIPE);
}

impl Default for DeferSignals {
    fn default() -> Self {
        DeferSignals::new()
    }
}

impl Drop for DeferSignals {
    fn drop(&mut self) {
        for (sig, previous) in self.old.drain(..).rev() {
            put_back(sig, &previous);
        }
        if let Some(sig) = self.take() {
            // SAFETY: raising a signal in our own process; its original handler now applies.
            unsafe { libc::raise(sig) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files, extended attributes and directory-relative calls, for archives: reading a tree
// without following symlinks, and extracting one without ever resolving a path through a
// symlink that the archive itself created.

fn path_c(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn bytes_c(bytes: &[u8]) -> std::io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Calls a size-probing xattr function (`f(buf, len)` returns the needed or written length)
/// until the buffer is large enough; the value may grow between the two calls.
fn sized_call(mut f: impl FnMut(*mut libc::c_void, usize) -> isize) -> std::io::Result<Vec<u8>> {
    loop {
        let need = f(std::ptr::null_mut(), 0);
        if need < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if need == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; need as usize];
        let got = f(buf.as_mut_ptr().cast(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
    }
}

/// The names of the extended attributes of `path` itself (a symlink is not followed).
pub fn xattr_names(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let c = path_c(path)?;
    let list = sized_call(|buf, len| {
        // SAFETY: `c` is NUL-terminated; `buf` is NULL with len 0 (size probe) or points to
        // `len` writable bytes.
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    });
    match list {
        Ok(list) => Ok(list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect()),
        // Filesystems without xattr support have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The value of extended attribute `name` of `path` itself (a symlink is not followed).
pub fn xattr_get(path: &Path, name: &[u8]) -> std::io::Result<Vec<u8>> {
    let c = path_c(path)?;
    let n = bytes_c(name)?;
    sized_call(|buf, len| {
        // SAFETY: both strings are NUL-terminated; `buf` is NULL with len 0 or points to `len`
        // writable bytes.
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf, len) }
    })
}

/// Sets extended attribute `name` of entry `name_in_dir` of the directory `dir`, without
/// following it if it is a symlink.
pub fn xattr_set_at(
    dir: BorrowedFd<'_>,
    name_in_dir: &OsStr,
    name: &[u8],
    value: &[u8],
) -> std::io::Result<()> {
    // No *xattrat call exists before Linux 6.13: go through the directory's descriptor, so the
    // directory is the one already opened without following symlinks.
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name_in_dir.as_bytes());
    let c = bytes_c(&path)?;
    let n = bytes_c(name)?;
    // SAFETY: both strings are NUL-terminated; `value` is valid for its length.
    check(unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

fn seek(file: &File, from: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    // SAFETY: `file` is open for the duration of the call; lseek has no memory arguments.
    let off = unsafe { libc::lseek(file.as_raw_fd(), from as libc::off_t, whence) };
    if off < 0 {
        let err = std::io::Error::last_os_error();
        // ENXIO: no data (or no hole) at or after `from`.
        if err.raw_os_error() == Some(libc::ENXIO) {
            return Ok(None);
        }
        return Err(err);
    }
    Ok(Some(off as u64))
}

/// The start of the first data region at or after `from` (`SEEK_DATA`); `None` past the last.
pub fn seek_data(file: &File, from: u64) -> std::io::Result<Option<u64>> {
    seek(file, from, libc::SEEK_DATA)
}

/// The start of the first hole at or after `from` (`SEEK_HOLE`); the end of file counts as one.
pub fn seek_hole(file: &File, from: u64) -> std::io::Result<Option<u64>> {
    seek(file, from, libc::SEEK_HOLE)
}

/// Opens directory `name` in `dir` for use as the base of further `*_at` calls, refusing a
/// symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates directory `name` in `dir`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), n.as_ptr(), mode as libc::mode_t) })
}

/// Creates a new regular file `name` in `dir` for writing; fails if anything is there.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> std::io::Result<File> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated, `dir` is open for the call, and the mode is passed as
    // the variadic argument O_CREAT requires.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates symlink `name` in `dir` pointing to `target`.
pub fn symlink_at(target: &[u8], dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<()> {
    let t = bytes_c(target)?;
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and `dir` is open for the call.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) })
}

/// Makes `new_name` in `new_dir` a hard link to `old_name` in `old_dir` (never following a
/// symlink at `old_name`).
pub fn hard_link_at(
    old_dir: BorrowedFd<'_>,
    old_name: &OsStr,
    new_dir: BorrowedFd<'_>,
    new_name: &OsStr,
) -> std::io::Result<()> {
    let o = bytes_c(old_name.as_bytes())?;
    let n = bytes_c(new_name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and both descriptors are open for the call.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            o.as_ptr(),
            new_dir.as_raw_fd(),
            n.as_ptr(),
            0,
        )
    })
}

/// Creates a device node or FIFO `name` in `dir`; `mode` includes the file type bits.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, dev: u64) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    check(unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            n.as_ptr(),
            mode as libc::mode_t,
            dev as libc::dev_t,
        )
    })
}

/// Removes `name` from `dir` (a directory when `is_dir`; it must be empty).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), n.as_ptr(), flags) })
}

/// Sets the owner of `name` in `dir` itself (a symlink is not followed).
pub fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            n.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Sets the mode (permission, setuid, setgid and sticky bits) of `name` in `dir`, which must
/// not be a symlink.
pub fn chmod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    // SAFETY: `n` is NUL-terminated and `dir` is open for the call.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), n.as_ptr(), mode as libc::mode_t, 0) })
}

/// Sets the access and modification times of `name` in `dir` itself (a symlink is not
/// followed) to `secs`.`nanos` since the epoch.
pub fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    secs: i64,
    nanos: u32,
) -> std::io::Result<()> {
    let n = bytes_c(name.as_bytes())?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nanos as _,
    };
    let times = [t, t];
    // SAFETY: `n` is NUL-terminated, `dir` is open and `times` holds the two timespecs
    // utimensat reads.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            n.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// The device number of `major`:`minor`.
pub fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

/// The major and minor numbers of device number `dev`.
pub fn dev_parts(dev: u64) -> (u32, u32) {
    (libc::major(dev), libc::minor(dev))
}

/// While alive, SIGPIPE is caught by a handler that does nothing; on drop the previous
/// disposition comes back.
///
/// Rust starts programs with SIGPIPE ignored, and an ignored signal, unlike a caught one,
/// survives `exec`: everything liblxc runs (templates, hooks, a container's init and its
/// services, `container_command`) would inherit it and spin or misbehave on a closed pipe.
/// A caught signal is reset to its default action by `exec`, so they start as under a shell;
/// this process meanwhile still gets EPIPE from a write to a closed pipe (liblxc's own
/// sockets to its helpers), as when ignored, rather than being killed. Wrapper calls that
/// fork and exec hold one of these.
pub struct SigpipeResetOnExec {
    old: Option<libc::sigaction>,
}

extern "C" fn ignore_signal(_: libc::c_int) {}

impl SigpipeResetOnExec {
    /// Installs the handler.
    pub fn new() -> SigpipeResetOnExec {
        SigpipeResetOnExec {
            old: catch(libc::SIGPIPE, ignore_signal),
        }
    }
}

impl Default for SigpipeResetOnExec {
    fn default() -> Self {
        SigpipeResetOnExec::new()
    }
}

impl Drop for SigpipeResetOnExec {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            put_back(libc::SIGPIPE, old);
        }
    }
}

/// Marks every descriptor above stderr that this process inherited close-on-exec.
///
/// liblxc's create and attach do not close what their caller holds, so a descriptor the
/// caller of lxcform left open (to a host directory, a socket) would reach templates and the
/// processes of `container_command` inside the container. lxcform's own descriptors are made
/// close-on-exec; binaries call this first, before they open any.
pub fn cloexec_inherited_fds() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on open descriptors.
    let rc = unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: one at a time.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; a closed one just fails (EBADF).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Rows and columns of the terminal on descriptor `fd`, when it is one that tells.
pub fn terminal_size(fd: i32) -> Option<(usize, usize)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which is valid and
    // exclusive for the call; on a descriptor that is not a terminal it fails and writes
    // nothing.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_row > 0 && size.ws_col > 0)
        .then(|| (usize::from(size.ws_row), usize::from(size.ws_col)))
}

/// Restores the default action of SIGPIPE, so that a command line tool writing into a closed
/// pipe (`lxcform list | head`) ends quietly instead of failing on every write.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// One entry of `getifaddrs(3)`: an interface name and, for IPv4 and IPv6 entries, the address
/// (with the IPv6 scope id; 0 for global addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name.
    pub name: String,
    /// The address, when the entry carries an IP address.
    pub addr: Option<std::net::IpAddr>,
    /// `sin6_scope_id` of an IPv6 address; 0 otherwise.
    pub scope_id: u32,
}

/// The `getifaddrs(3)` list of the network namespace that process `pid` is in, in its order.
///
/// What liblxc's `get_interfaces` and `get_ips` read, without their fork apiece: a network
/// namespace belongs to a thread, not a process, so a short-lived thread joins the namespace
/// (`setns`), asks netlink there and ends; the calling thread never leaves its own namespace.
/// Needs the right to join the namespace (root on the host, or liblxc's own fallback).
pub fn netns_ifaddrs(pid: i32) -> std::io::Result<Vec<IfAddr>> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    // A thread that cannot be made is an error (the caller falls back), not a panic.
    std::thread::Builder::new()
        .name("lxcform-netns".into())
        .spawn(move || {
            // SAFETY: `ns` is an open namespace file; CLONE_NEWNET moves only this thread.
            check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
            read_ifaddrs()
        })?
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("netns reader thread panicked")))
}

/// `getifaddrs(3)` of the calling thread's network namespace.
fn read_ifaddrs() -> std::io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success it owns a list freed below.
    check(unsafe { libc::getifaddrs(&mut head) })?;
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: a non-NULL ifa_addr points to a sockaddr whose real type its family names.
        let (addr, scope_id) = unsafe { sockaddr_ip(ifa.ifa_addr) };
        out.push(IfAddr {
            name,
            addr,
            scope_id,
        });
    }
    // SAFETY: `head` came from getifaddrs and nothing borrowed from it outlives this.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address (and IPv6 scope id) in `sa`, when it is an IPv4 or IPv6 socket address.
///
/// # Safety
/// `sa` is NULL or points to a socket address at least as large as its family's struct.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> (Option<std::net::IpAddr>, u32) {
    if sa.is_null() {
        return (None, 0);
    }
    // SAFETY: non-NULL; every sockaddr starts with its family (caller's contract).
    match libc::c_int::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in (caller's contract).
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            (Some(ip.into()), 0)
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6 (caller's contract).
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            (Some(ip.into()), sin6.sin6_scope_id)
        }
        _ => (None, 0),
    }
}
