//! liblxc's own log, captured in memory.
//!
//! liblxc's `error_string` is almost always empty; the reason for a failure is in its log. The
//! log is process-global, so lxcform points it once at an anonymous memory file and, after a
//! failed call, quotes the ERROR lines written since the call began. A container whose config
//! names its own `lxc.log.file` keeps logging there (and at its own `lxc.log.level`), as under
//! `lxc-start`; a failure then refers to that file.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::{Mutex, OnceLock};

use super::Level;

struct Capture {
    file: File,
}

static CAPTURE: OnceLock<Option<Mutex<Capture>>> = OnceLock::new();
static LEVEL: OnceLock<Level> = OnceLock::new();

/// Chooses the level liblxc logs at. Only the first call before the log opens has an effect.
pub fn set_level(level: Level) {
    let _ = LEVEL.set(level);
}

fn capture() -> Option<&'static Mutex<Capture>> {
    CAPTURE.get_or_init(open).as_ref()
}

fn open() -> Option<Mutex<Capture>> {
    let name = c"lxcform-liblxc-log";
    // SAFETY: `name` is a valid NUL-terminated string; memfd_create has no other preconditions.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    let path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let level = CString::new(LEVEL.get().copied().unwrap_or(Level::Error).as_str()).ok()?;
    let prefix = c"lxcform";
    let mut log = lxc_sys::lxc_log {
        name: std::ptr::null(),
        lxcpath: std::ptr::null(),
        file: path.as_ptr(),
        level: level.as_ptr(),
        prefix: prefix.as_ptr(),
        quiet: true,
    };
    // SAFETY: every pointer in `log` points to a NUL-terminated string that outlives the call;
    // liblxc copies what it keeps.
    let rc = unsafe { lxc_sys::lxc_log_init(&mut log) };
    if rc != 0 {
        return None;
    }
    unchain_stderr();
    let_containers_keep_their_own_log();
    Some(Mutex::new(Capture { file }))
}

unsafe extern "C" {
    /// Set by `lxc_log_init` when it is given a file: from then on every container logs there,
    /// whatever its `lxc.log.file` and `lxc.log.level` say (an exported symbol of liblxc.so;
    /// a C `bool` in LXC 5, an `int` before: only its lowest byte is written, which clears
    /// either on the little-endian targets LXC runs on here).
    static mut lxc_log_use_global_fd: u8;
}

/// Lets a container's own `lxc.log.file` and `lxc.log.level` apply again, as with `lxc-start`
/// without `-o`: liblxc then logs an operation on a container to that container's file when
/// its config names one, and to ours otherwise. Without this, a user's log file stays empty
/// for everything lxcform does, and their daemonised container's monitor too.
fn let_containers_keep_their_own_log() {
    // SAFETY: a static of liblxc written once, inside the OnceLock that opens the log, before
    // any container is opened through this wrapper; nothing else runs liblxc meanwhile.
    unsafe { (&raw mut lxc_log_use_global_fd).write(0) };
}

/// `struct lxc_log_appender` of liblxc's log.h (unchanged from LXC 3 to 6).
#[repr(C)]
struct Appender {
    name: *const std::ffi::c_char,
    append: *const std::ffi::c_void,
    next: *mut Appender,
}

/// `struct lxc_log_category` of liblxc's log.h (unchanged from LXC 3 to 6).
#[repr(C)]
struct Category {
    name: *const std::ffi::c_char,
    priority: std::ffi::c_int,
    appender: *mut Appender,
    parent: *const Category,
}

unsafe extern "C" {
    /// The root category of liblxc's log, an exported symbol of liblxc.so.
    static mut lxc_log_category_lxc: Category;
}

/// Takes liblxc's stderr appender out of its log.
///
/// With a log file, LXC 5's `lxc_log_init` chains a stderr appender after the file whatever
/// `quiet` says, so every ERROR line of a failed call would also land on lxcform's stderr,
/// beside lxcform's own message that quotes it (and in an Ansible module's stderr). The chain
/// is changed only when it is exactly the expected `lxc` → `logfile` → `stderr`; with any
/// other layout it is left alone.
fn unchain_stderr() {
    let named = |p: *const std::ffi::c_char, want: &std::ffi::CStr| {
        // SAFETY: a non-NULL name in liblxc's log structs is a static NUL-terminated string.
        !p.is_null() && unsafe { std::ffi::CStr::from_ptr(p) } == want
    };
    // SAFETY: the category is a static of liblxc with the layout above. This runs once, inside
    // the OnceLock that opens the log, which every wrapper call on a container goes through
    // first. The few global calls that skip it (config_item_is_supported, global_config_item,
    // version) run at start-up, on the main thread, before any thread exists: no other thread
    // is logging while the chain changes.
    unsafe {
        let root = &raw mut lxc_log_category_lxc;
        if !named((*root).name, c"lxc") {
            return;
        }
        let file = (*root).appender;
        if file.is_null() || !named((*file).name, c"logfile") {
            return;
        }
        let next = (*file).next;
        if !next.is_null() && named((*next).name, c"stderr") && (*next).next.is_null() {
            (*file).next = std::ptr::null_mut();
        }
    }
}

/// A position in the log; [`Mark::errors`] returns the ERROR lines written after it.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

/// Opens the log if needed and returns the current end of it.
pub fn mark() -> Mark {
    let Some(capture) = capture() else {
        return Mark(0);
    };
    let guard = capture.lock().unwrap_or_else(|e| e.into_inner());
    Mark(guard.file.metadata().map(|m| m.len()).unwrap_or(0))
}

impl Mark {
    /// The ERROR lines liblxc logged since this mark, without their timestamp prefix.
    pub fn errors(self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter_map(|line| {
                let at = line.find(" ERROR ")?;
                Some(line[at + 7..].trim().to_string())
            })
            .collect()
    }

    /// Every line liblxc logged since this mark.
    pub fn lines(self) -> Vec<String> {
        let Some(capture) = capture() else {
            return Vec::new();
        };
        let mut guard = capture.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::new();
        if guard.file.seek(SeekFrom::Start(self.0)).is_err()
            || guard.file.read_to_end(&mut buf).is_err()
        {
            return Vec::new();
        }
        String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_string)
            .collect()
    }
}
