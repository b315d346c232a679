//! A small safe wrapper over liblxc (through `lxc-sys`): the only `unsafe` code in lxcform.
//!
//! Every call owns its C strings for the whole call, checks every returned pointer, frees what
//! liblxc allocates and turns a failure into an [`LxcError`] naming the container and the
//! operation, quoting liblxc's log when its own error string is empty.
//!
//! liblxc forks in `start`, `create`, `clone` and `attach`: call them from a single-threaded
//! process.

mod log;
pub mod sys;

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use std::os::unix::ffi::OsStrExt;

pub use log::{mark as log_mark, set_level as set_log_level, Mark as LogMark};

/// A liblxc log level, as `lxc.log.level` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Debug and everything above.
    Debug,
    /// Info and everything above.
    Info,
    /// Errors only.
    Error,
}

impl Level {
    /// The name liblxc knows the level by.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Error => "ERROR",
        }
    }
}

/// The liblxc operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `lxc_container_new`.
    Open,
    /// `load_config`.
    LoadConfig,
    /// `create`.
    Create,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `shutdown`.
    Shutdown,
    /// `freeze`.
    Freeze,
    /// `unfreeze`.
    Unfreeze,
    /// `destroy`.
    Destroy,
    /// `clone`.
    Clone,
    /// `get_config_item`.
    GetConfig,
    /// `set_config_item`.
    SetConfig,
    /// `clear_config_item`.
    ClearConfig,
    /// `save_config`.
    SaveConfig,
    /// `wait`.
    Wait,
    /// `attach_run_wait`.
    Attach,
    /// `list_defined_containers`.
    List,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::LoadConfig => "load config of",
            Op::Create => "create",
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Shutdown => "shut down",
            Op::Freeze => "freeze",
            Op::Unfreeze => "unfreeze",
            Op::Destroy => "destroy",
            Op::Clone => "clone",
            Op::GetConfig => "read config item of",
            Op::SetConfig => "set config item of",
            Op::ClearConfig => "clear config item of",
            Op::SaveConfig => "save config of",
            Op::Wait => "wait for",
            Op::Attach => "run a command in",
            Op::List => "list containers in",
        })
    }
}

/// A failed liblxc call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot {op} {}{container:?}: {detail}", if *op == Op::List { "" } else { "container " })]
pub struct LxcError {
    /// The container the call was about (or the lxc_path for [`Op::List`]).
    pub container: String,
    /// What was attempted.
    pub op: Op,
    /// Why it failed: liblxc's error string, its log's ERROR lines, or our own reason.
    pub detail: String,
    /// Every ERROR line liblxc logged during the call.
    pub log: Vec<String>,
}

/// Container states as liblxc reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running.
    Stopped,
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Start failed and is being undone.
    Aborting,
    /// Being frozen.
    Freezing,
    /// Frozen.
    Frozen,
    /// Just unfrozen.
    Thawed,
}

impl State {
    /// Parses liblxc's upper-case state name.
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "STOPPED" => State::Stopped,
            "STARTING" => State::Starting,
            "RUNNING" => State::Running,
            "STOPPING" => State::Stopping,
            "ABORTING" => State::Aborting,
            "FREEZING" => State::Freezing,
            "FROZEN" => State::Frozen,
            "THAWED" => State::Thawed,
            _ => return None,
        })
    }

    /// liblxc's upper-case name of the state, as `wait` expects it.
    pub fn as_lxc(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Stopping => "STOPPING",
            State::Aborting => "ABORTING",
            State::Freezing => "FREEZING",
            State::Frozen => "FROZEN",
            State::Thawed => "THAWED",
        }
    }
}

/// How to make the root filesystem in [`Container::create`] (liblxc's `struct bdev_specs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BdevSpecs {
    /// Filesystem type for block-backed stores (loop, lvm).
    pub fstype: Option<String>,
    /// Size in bytes for block-backed stores; 0 lets liblxc choose.
    pub fssize: u64,
    /// Directory to hold the rootfs (dir store).
    pub dir: Option<PathBuf>,
    /// ZFS dataset under which to create the rootfs.
    pub zfs_root: Option<String>,
    /// LVM volume group.
    pub lvm_vg: Option<String>,
    /// LVM logical volume name.
    pub lvm_lv: Option<String>,
    /// LVM thin pool.
    pub lvm_thinpool: Option<String>,
}

/// What [`Container::create`] is given.
#[derive(Debug, Clone, Default)]
pub struct CreateArgs<'a> {
    /// Template name (or path to a template script).
    pub template: &'a str,
    /// liblxc's storage type name (`dir`, `overlay`, `btrfs`, `loop`, `lvm`, `zfs`).
    pub bdevtype: &'a str,
    /// Storage details.
    pub specs: BdevSpecs,
    /// Arguments passed to the template after `--`.
    pub template_args: &'a [String],
}

/// What [`Container::clone_to`] is given.
#[derive(Debug, Clone, Default)]
pub struct CloneArgs<'a> {
    /// Name of the new container.
    pub new_name: &'a str,
    /// lxc_path for the new container; `None` keeps the origin's.
    pub lxc_path: Option<&'a Path>,
    /// Make a snapshot (copy-on-write) clone.
    pub snapshot: bool,
    /// Storage type of the clone; `None` keeps the origin's (or overlay for snapshots of dir).
    pub bdevtype: Option<&'a str>,
    /// Size in bytes of a block-backed clone; 0 keeps the origin's.
    pub new_size: u64,
    /// Allow cloning a running (e.g. frozen) origin, for stores that snapshot atomically.
    pub allow_running: bool,
}

/// The network of a running container, as its facts report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Interface names, each once.
    pub interfaces: Vec<String>,
    /// IPv4 and global IPv6 addresses of every interface but `lo`.
    pub ips: Vec<String>,
}

impl Network {
    /// The lists liblxc's `get_interfaces` and `get_ips(NULL, NULL, 0)` make of these entries,
    /// in their order: liblxc sorts both (byte order; `add_to_array` keeps them sorted).
    pub fn from_ifaddrs(entries: &[sys::IfAddr]) -> Network {
        let mut net = Network::default();
        for e in entries {
            if !net.interfaces.contains(&e.name) {
                net.interfaces.push(e.name.clone());
            }
            let Some(addr) = e.addr else { continue };
            if e.name != "lo" && (addr.is_ipv4() || e.scope_id == 0) {
                net.ips.push(addr.to_string());
            }
        }
        net.interfaces.sort();
        net.ips.sort();
        net
    }
}

/// liblxc's `partial` marker of a container (see [`Container::create_marker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMarker {
    /// There is none: no create is running, and none was cut off.
    None,
    /// A create holds it: one is running now.
    Ongoing,
    /// Nobody holds it: a create was cut off (killed, or the host went down). liblxc then
    /// refuses to start the container ("Ongoing container creation detected") forever.
    Interrupted,
}

/// What a command run with [`Container::attach_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// Exit status; 128 + signal number when killed by a signal.
    pub rc: i32,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

/// A handle on one container in one lxc_path. The container need not exist.
pub struct Container {
    ptr: NonNull<lxc_sys::lxc_container>,
    name: String,
    lxc_path: PathBuf,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("lxc_path", &self.lxc_path)
            .finish()
    }
}

fn cstring(container: &str, op: Op, what: &str, value: &[u8]) -> Result<CString, LxcError> {
    CString::new(value).map_err(|_| LxcError {
        container: container.to_string(),
        op,
        detail: format!("{what} contains a NUL byte"),
        log: Vec::new(),
    })
}

fn path_cstring(container: &str, op: Op, what: &str, path: &Path) -> Result<CString, LxcError> {
    cstring(container, op, what, path.as_os_str().as_bytes())
}

/// Copies a NUL-terminated array of malloc'ed strings into Rust and frees it.
///
/// # Safety
/// `list` is NULL or a NULL-terminated array allocated with malloc whose elements are
/// malloc'ed NUL-terminated strings, owned by the caller.
unsafe fn take_string_list(list: *mut *mut c_char) -> Vec<String> {
    let mut out = Vec::new();
    if list.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: the array is NULL-terminated (caller's contract) and we stop at the NULL.
        let item = unsafe { *list.add(i) };
        if item.is_null() {
            break;
        }
        // SAFETY: each element is a NUL-terminated string (caller's contract).
        out.push(
            unsafe { CStr::from_ptr(item) }
                .to_string_lossy()
                .into_owned(),
        );
        // SAFETY: each element was malloc'ed by liblxc and is not used after this.
        unsafe { libc::free(item.cast()) };
        i += 1;
    }
    // SAFETY: the array itself was malloc'ed by liblxc and is not used after this.
    unsafe { libc::free(list.cast()) };
    out
}

/// Whether this liblxc knows the config key (e.g. `lxc.net.0.ipv4.address`).
pub fn config_item_is_supported(key: &str) -> bool {
    let Ok(key) = CString::new(key) else {
        return false;
    };
    // SAFETY: `key` is a valid NUL-terminated string for the duration of the call.
    unsafe { lxc_sys::lxc_config_item_is_supported(key.as_ptr()) }
}

/// liblxc's default lxc_path (`lxc.lxcpath`, usually `/var/lib/lxc`).
pub fn default_lxc_path() -> PathBuf {
    global_config_item("lxc.lxcpath")
        .unwrap_or_else(|| "/var/lib/lxc".to_string())
        .into()
}

/// A host-wide liblxc setting such as `lxc.lxcpath` or `lxc.bdev.lvm.vg`.
pub fn global_config_item(key: &str) -> Option<String> {
    let key = CString::new(key).ok()?;
    // SAFETY: `key` is NUL-terminated; the result is a static or NULL and must not be freed.
    let value = unsafe { lxc_sys::lxc_get_global_config_item(key.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-NULL results are NUL-terminated strings owned by liblxc.
    Some(
        unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The liblxc version string.
pub fn version() -> String {
    // SAFETY: lxc_get_version returns a static NUL-terminated string.
    let v = unsafe { lxc_sys::lxc_get_version() };
    if v.is_null() {
        return String::new();
    }
    // SAFETY: checked non-NULL; static string.
    unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned()
}

/// Names of the containers defined in `lxc_path`, sorted.
pub fn list_defined(lxc_path: &Path) -> Result<Vec<String>, LxcError> {
    // An lxc_path that does not exist holds no containers (as lxc-ls and `facts` see it);
    // liblxc's opendir would fail instead.
    let missing =
        std::fs::metadata(lxc_path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    if missing {
        return Ok(Vec::new());
    }
    let label = lxc_path.display().to_string();
    let path = path_cstring(&label, Op::List, "lxc_path", lxc_path)?;
    let mark = log::mark();
    let mut names: *mut *mut c_char = ptr::null_mut();
    // SAFETY: `path` is NUL-terminated; `names` receives a malloc'ed array we free below;
    // passing NULL for the container list asks for names only.
    let n = unsafe { lxc_sys::list_defined_containers(path.as_ptr(), &mut names, ptr::null_mut()) };
    if n < 0 {
        return Err(fail(&label, Op::List, None, mark));
    }
    let mut out = Vec::with_capacity(n as usize);
    if !names.is_null() {
        for i in 0..n as usize {
            // SAFETY: liblxc returned `n` entries in `names`.
            let item = unsafe { *names.add(i) };
            if !item.is_null() {
                // SAFETY: each entry is a malloc'ed NUL-terminated string we now own.
                out.push(
                    unsafe { CStr::from_ptr(item) }
                        .to_string_lossy()
                        .into_owned(),
                );
                // SAFETY: owned by us, not used again.
                unsafe { libc::free(item.cast()) };
            }
        }
        // SAFETY: the array is malloc'ed and owned by us.
        unsafe { libc::free(names.cast()) };
    }
    Ok(out)
}

fn fail(container: &str, op: Op, error_string: Option<String>, mark: log::Mark) -> LxcError {
    let log = mark.errors();
    let detail = match error_string.filter(|s| !s.trim().is_empty()) {
        Some(s) => s,
        None if !log.is_empty() => log.join("; "),
        None => "liblxc reported failure without a reason (see its log)".to_string(),
    };
    LxcError {
        container: container.to_string(),
        op,
        detail,
        log,
    }
}

/// An anonymous in-memory file, used to capture output without a pipe that could fill up.
fn memfd(name: &CStr) -> std::io::Result<File> {
    // SAFETY: `name` is NUL-terminated; memfd_create has no other preconditions.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn read_all(mut file: &File) -> Vec<u8> {
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = file.read_to_end(&mut buf);
    }
    buf
}

/// Redirects this process's stdout and stderr into a memory file while alive, so that what
/// a template prints never reaches a caller that expects only JSON on stdout.
struct StdioCapture {
    file: File,
    saved: [OwnedFd; 2],
    _lock: std::sync::MutexGuard<'static, ()>,
}

static STDIO_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl StdioCapture {
    fn start() -> std::io::Result<StdioCapture> {
        let file = memfd(c"lxcform-template-output")?;
        // Two captures at once would save each other's descriptors and never restore stdout.
        let lock = STDIO_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut saved = Vec::with_capacity(2);
        for fd in [1, 2] {
            // Close-on-exec: the copies must not reach the template and what it leaves running,
            // which would hold the caller's stdout open (a pipe to Ansible) after we return.
            // SAFETY: F_DUPFD_CLOEXEC of a standard descriptor; the result is checked.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if copy < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `copy` is a fresh descriptor we own.
            saved.push(unsafe { OwnedFd::from_raw_fd(copy) });
        }
        let saved: [OwnedFd; 2] = saved.try_into().expect("two descriptors were pushed");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let capture = StdioCapture {
            file,
            saved,
            _lock: lock,
        };
        for fd in [1, 2] {
            // SAFETY: both descriptors are open; dup2 replaces fd 1/2 atomically. On failure,
            // dropping `capture` puts back whichever of them was replaced.
            if unsafe { libc::dup2(capture.file.as_raw_fd(), fd) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(capture)
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&read_all(&self.file)).into_owned()
    }
}

impl Drop for StdioCapture {
    fn drop(&mut self) {
        for (fd, saved) in [1, 2].into_iter().zip(&self.saved) {
            // SAFETY: `saved` holds the original descriptors; restoring them with dup2.
            unsafe { libc::dup2(saved.as_raw_fd(), fd) };
        }
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Container {
    /// Opens a handle on container `name` in `lxc_path`. Nothing on disk is created.
    pub fn new(name: &str, lxc_path: &Path) -> Result<Container, LxcError> {
        let cname = cstring(name, Op::Open, "name", name.as_bytes())?;
        let cpath = path_cstring(name, Op::Open, "lxc_path", lxc_path)?;
        let mark = log::mark();
        // SAFETY: both strings are NUL-terminated and outlive the call; liblxc copies them.
        let raw = unsafe { lxc_sys::lxc_container_new(cname.as_ptr(), cpath.as_ptr()) };
        let ptr = NonNull::new(raw).ok_or_else(|| fail(name, Op::Open, None, mark))?;
        Ok(Container {
            ptr,
            name: name.to_string(),
            lxc_path: lxc_path.to_path_buf(),
        })
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lxc_path the container lives in.
    pub fn lxc_path(&self) -> &Path {
        &self.lxc_path
    }

    fn raw(&self) -> *mut lxc_sys::lxc_container {
        self.ptr.as_ptr()
    }

    fn error_string(&self) -> Option<String> {
        // SAFETY: `raw()` is a live container; error_string is NULL or a NUL-terminated string.
        let s = unsafe { (*self.raw()).error_string };
        if s.is_null() {
            return None;
        }
        // SAFETY: checked non-NULL above.
        Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
    }

    fn fail(&self, op: Op, mark: log::Mark) -> LxcError {
        let mut err = fail(&self.name, op, self.error_string(), mark);
        if err.log.is_empty() {
            // Its own log file has the lines ours did not get (see `log`).
            if let Ok(Ok(Some(file))) = self.config_item(c"lxc.log.file") {
                err.detail = format!("{}; its lxc.log.file {file} has liblxc's log", err.detail);
            }
        }
        err
    }

    fn check(&self, op: Op, mark: log::Mark, ok: bool) -> Result<(), LxcError> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(op, mark))
        }
    }

    fn missing(&self, op: Op, what: &str) -> LxcError {
        LxcError {
            container: self.name.clone(),
            op,
            detail: format!("liblxc has no {what} function"),
            log: Vec::new(),
        }
    }

    fn cstr(&self, op: Op, what: &str, value: &str) -> Result<CString, LxcError> {
        cstring(&self.name, op, what, value.as_bytes())
    }

    /// Whether the container exists (has a config file in its lxc_path).
    pub fn is_defined(&self) -> bool {
        // SAFETY: live container; function pointer checked by `is_some_and`.
        unsafe { (*self.raw()).is_defined.is_some_and(|f| f(self.raw())) }
    }

    /// The container's current state.
    pub fn state(&self) -> State {
        // SAFETY: live container; the function returns a static string or NULL.
        let s = unsafe { (*self.raw()).state.map_or(ptr::null(), |f| f(self.raw())) };
        if s.is_null() {
            return State::Stopped;
        }
        // SAFETY: checked non-NULL; static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(s) }.to_string_lossy();
        State::parse(&s).unwrap_or(State::Stopped)
    }

    /// PID of the container's init on the host, or `None` when it is not running.
    pub fn init_pid(&self) -> Option<i32> {
        // SAFETY: live container; plain integer result.
        let pid = unsafe { (*self.raw()).init_pid.map_or(-1, |f| f(self.raw())) };
        (pid > 0).then_some(pid)
    }

    /// Drops the in-memory configuration: the handle is then as on a container that does not
    /// exist (a create loads liblxc's default config again).
    pub fn clear_config(&self) -> Result<(), LxcError> {
        let clear = unsafe_fn(self, Op::LoadConfig, "clear_config", |c| c.clear_config)?;
        // SAFETY: live container; liblxc frees its config and leaves NULL. No pointer into the
        // old config is held here.
        unsafe { clear(self.raw()) };
        Ok(())
    }

    /// What liblxc's `partial` marker (kept while a create runs, removed when it completes)
    /// says of the container.
    pub fn create_marker(&self) -> CreateMarker {
        let path = self.lxc_path.join(&self.name).join("partial");
        match File::open(path) {
            Err(_) => CreateMarker::None,
            Ok(f) if sys::is_locked_by_another(&f) => CreateMarker::Ongoing,
            Ok(_) => CreateMarker::Interrupted,
        }
    }

    /// Replaces the in-memory configuration with the container's config file (after lxcform
    /// edited it).
    ///
    /// liblxc's `load_config` parses the file into the config it already holds, so list-valued
    /// keys (`lxc.mount.entry`, hooks, `lxc.cap.drop` …) would end up twice: it is cleared
    /// first.
    pub fn reload_config(&self) -> Result<(), LxcError> {
        let load = unsafe_fn(self, Op::LoadConfig, "load_config", |c| c.load_config)?;
        self.clear_config()?;
        let mark = log::mark();
        // SAFETY: live container; NULL means "the container's own config file"; load_config
        // makes a fresh config in place of the cleared one.
        let ok = unsafe { load(self.raw(), ptr::null()) };
        self.check(Op::LoadConfig, mark, ok)
    }

    /// Loads an alternative config file into the in-memory config (as `lxc-create -f` does).
    pub fn load_config_file(&self, path: &Path) -> Result<(), LxcError> {
        let mark = log::mark();
        let cpath = path_cstring(&self.name, Op::LoadConfig, "config path", path)?;
        let f = unsafe_fn(self, Op::LoadConfig, "load_config", |c| c.load_config)?;
        // SAFETY: live container; `cpath` is NUL-terminated and outlives the call.
        let ok = unsafe { f(self.raw(), cpath.as_ptr()) };
        self.check(Op::LoadConfig, mark, ok)
    }

    /// Creates the container's rootfs and config by running `args.template`.
    ///
    /// What the template prints is captured and quoted in the error when it fails.
    pub fn create(&self, args: &CreateArgs<'_>) -> Result<(), LxcError> {
        let op = Op::Create;
        let template = self.cstr(op, "template", args.template)?;
        let bdevtype = self.cstr(op, "backing store", args.bdevtype)?;
        let opt = |what: &str, v: &Option<String>| -> Result<Option<CString>, LxcError> {
            v.as_deref().map(|s| self.cstr(op, what, s)).transpose()
        };
        let fstype = opt("fs_type", &args.specs.fstype)?;
        let zfs_root = opt("zfs_root", &args.specs.zfs_root)?;
        let vg = opt("vg_name", &args.specs.lvm_vg)?;
        let lv = opt("lv_name", &args.specs.lvm_lv)?;
        let thinpool = opt("thinpool", &args.specs.lvm_thinpool)?;
        let dir = args
            .specs
            .dir
            .as_deref()
            .map(|d| path_cstring(&self.name, op, "directory", d))
            .transpose()?;
        let as_mut = |c: &Option<CString>| {
            c.as_ref()
                .map_or(ptr::null_mut(), |c| c.as_ptr().cast_mut())
        };
        let mut specs = lxc_sys::bdev_specs {
            fstype: as_mut(&fstype),
            fssize: args.specs.fssize,
            zfs: lxc_sys::bdev_specs__bindgen_ty_1 {
                zfsroot: as_mut(&zfs_root),
            },
            lvm: lxc_sys::bdev_specs__bindgen_ty_2 {
                vg: as_mut(&vg),
                lv: as_mut(&lv),
                thinpool: as_mut(&thinpool),
            },
            dir: as_mut(&dir),
            rbd: lxc_sys::bdev_specs__bindgen_ty_3 {
                rbdname: ptr::null_mut(),
                rbdpool: ptr::null_mut(),
            },
        };
        let targs = args
            .template_args
            .iter()
            .map(|a| self.cstr(op, "template option", a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*mut c_char> = targs.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv.push(ptr::null_mut());
        let f = unsafe_fn(self, op, "create", |c| c.create)?;
        let mark = log::mark();
        let _sigpipe = sys::SigpipeResetOnExec::new();
        let capture = StdioCapture::start().ok();
        // SAFETY: live container; every string pointer in `specs` and `argv` points into a
        // CString above that outlives the call; `argv` is NULL-terminated; liblxc does not
        // keep the pointers or write through them.
        let ok = unsafe {
            f(
                self.raw(),
                template.as_ptr(),
                bdevtype.as_ptr(),
                &mut specs,
                0,
                argv.as_ptr(),
            )
        };
        let output = capture
            .as_ref()
            .map(StdioCapture::output)
            .unwrap_or_default();
        drop(capture);
        if ok {
            return Ok(());
        }
        let mut err = self.fail(op, mark);
        let tail = last_lines(&output, 15);
        if !tail.is_empty() {
            err.detail = format!("{}; template output:\n{tail}", err.detail);
        }
        Err(err)
    }

    /// Boots the container's own init in the background and waits until it runs.
    pub fn start(&self) -> Result<(), LxcError> {
        let mark = log::mark();
        // Without these the container would run in this process, in the foreground, holding
        // our stdout (Ansible waits for it to close): not a start to attempt.
        let daemonize = unsafe_fn(self, Op::Start, "want_daemonize", |c| c.want_daemonize)?;
        let close_fds = unsafe_fn(self, Op::Start, "want_close_all_fds", |c| {
            c.want_close_all_fds
        })?;
        // SAFETY: live container; these setters take a plain bool.
        unsafe {
            daemonize(self.raw(), true);
            close_fds(self.raw(), true);
        }
        let _sigpipe = sys::SigpipeResetOnExec::new();
        let f = unsafe_fn(self, Op::Start, "start", |c| c.start)?;
        // SAFETY: live container; a NULL argv boots the container's configured init.
        let ok = unsafe { f(self.raw(), 0, ptr::null()) };
        self.check(Op::Start, mark, ok)?;
        if !self.wait(State::Running, 30)? {
            return Err(LxcError {
                container: self.name.clone(),
                op: Op::Start,
                detail: format!("still {:?} 30 s after start", self.state()),
                log: mark.errors(),
            });
        }
        Ok(())
    }

    /// Kills the container at once (liblxc's `stop`).
    pub fn stop(&self) -> Result<(), LxcError> {
        let mark = log::mark();
        let f = unsafe_fn(self, Op::Stop, "stop", |c| c.stop)?;
        // SAFETY: live container.
        let ok = unsafe { f(self.raw()) };
        self.check(Op::Stop, mark, ok)?;
        self.wait(State::Stopped, 30)?;
        Ok(())
    }

    /// Asks init to power off and waits up to `timeout_secs` for it; false on time-out.
    pub fn shutdown(&self, timeout_secs: i32) -> Result<bool, LxcError> {
        let f = unsafe_fn(self, Op::Shutdown, "shutdown", |c| c.shutdown)?;
        // SAFETY: live container; plain integer argument.
        Ok(unsafe { f(self.raw(), timeout_secs) })
    }

    /// Freezes every process of the container.
    ///
    /// On a cgroup v1 freezer liblxc writes `FROZEN` once and then polls every second, forever:
    /// when a task could not be frozen at that instant (common right after a start) the cgroup
    /// stays `FREEZING` until `FROZEN` is written again. So while liblxc waits, a thread of
    /// ours writes it again whenever the cgroup is still `FREEZING`.
    pub fn freeze(&self) -> Result<(), LxcError> {
        let mark = log::mark();
        let f = unsafe_fn(self, Op::Freeze, "freeze", |c| c.freeze)?;
        let nudge = self.init_pid().and_then(sys::freezer_v1_state_file);
        let done = std::sync::atomic::AtomicBool::new(false);
        let ok = std::thread::scope(|scope| {
            if let Some(state_file) = &nudge {
                // Without the thread liblxc's freeze still runs; it only lacks the nudge.
                let _ = std::thread::Builder::new()
                    .name("lxcform-freeze".into())
                    .spawn_scoped(scope, || sys::nudge_freezer(state_file, &done));
            }
            // SAFETY: live container; the nudging thread does not touch liblxc.
            let ok = unsafe { f(self.raw()) };
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            ok
        });
        self.check(Op::Freeze, mark, ok)
    }

    /// Thaws a frozen container.
    pub fn unfreeze(&self) -> Result<(), LxcError> {
        let mark = log::mark();
        let f = unsafe_fn(self, Op::Unfreeze, "unfreeze", |c| c.unfreeze)?;
        // SAFETY: live container.
        let ok = unsafe { f(self.raw()) };
        self.check(Op::Unfreeze, mark, ok)
    }

    /// Removes the container: its rootfs, its storage and its config.
    pub fn destroy(&self) -> Result<(), LxcError> {
        let mark = log::mark();
        let _sigpipe = sys::SigpipeResetOnExec::new();
        let f = unsafe_fn(self, Op::Destroy, "destroy", |c| c.destroy)?;
        // SAFETY: live container.
        let ok = unsafe { f(self.raw()) };
        self.check(Op::Destroy, mark, ok)
    }

    /// Clones the container; returns a handle on the new one.
    pub fn clone_to(&self, args: &CloneArgs<'_>) -> Result<Container, LxcError> {
        let op = Op::Clone;
        let new_name = self.cstr(op, "clone name", args.new_name)?;
        let lxc_path = args
            .lxc_path
            .map(|p| path_cstring(&self.name, op, "lxc_path", p))
            .transpose()?;
        let bdevtype = args
            .bdevtype
            .map(|b| self.cstr(op, "backing store", b))
            .transpose()?;
        let mut flags = 0;
        if args.snapshot {
            flags |= lxc_sys::LXC_CLONE_SNAPSHOT as c_int;
        }
        if args.allow_running {
            flags |= lxc_sys::LXC_CLONE_ALLOW_RUNNING as c_int;
        }
        let _sigpipe = sys::SigpipeResetOnExec::new();
        let f = unsafe_fn(self, op, "clone", |c| c.clone)?;
        let mark = log::mark();
        // SAFETY: live container; all strings outlive the call; NULL pointers select liblxc's
        // defaults; the returned container (if any) is a new reference we own.
        let raw = unsafe {
            f(
                self.raw(),
                new_name.as_ptr(),
                lxc_path.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
                flags,
                bdevtype.as_ref().map_or(ptr::null(), |b| b.as_ptr()),
                ptr::null(),
                args.new_size,
                ptr::null_mut(),
            )
        };
        let ptr = NonNull::new(raw).ok_or_else(|| self.fail(op, mark))?;
        Ok(Container {
            ptr,
            name: args.new_name.to_string(),
            lxc_path: args.lxc_path.unwrap_or(&self.lxc_path).to_path_buf(),
        })
    }

    /// Reads a config item from the in-memory config; `None` when it is unset.
    pub fn get_config_item(&self, key: &str) -> Result<Option<String>, LxcError> {
        let op = Op::GetConfig;
        let ckey = self.cstr(op, "config key", key)?;
        let mark = log::mark();
        self.config_item(&ckey)?.map_err(|()| self.fail(op, mark))
    }

    /// liblxc's value of `key` (`Ok(None)` when unset, `Err(())` when liblxc fails: the
    /// caller reports that, so that reporting a failure can read an item too).
    fn config_item(&self, ckey: &CStr) -> Result<Result<Option<String>, ()>, LxcError> {
        let f = unsafe_fn(self, Op::GetConfig, "get_config_item", |c| {
            c.get_config_item
        })?;
        // SAFETY: live container; a NULL buffer with length 0 asks for the needed length.
        let len = unsafe { f(self.raw(), ckey.as_ptr(), ptr::null_mut(), 0) };
        if len < 0 {
            return Ok(Err(()));
        }
        if len == 0 {
            return Ok(Ok(None));
        }
        let mut buf = vec![0u8; len as usize + 1];
        // SAFETY: `buf` has room for `len` bytes plus the NUL liblxc writes.
        let got = unsafe {
            f(
                self.raw(),
                ckey.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len() as c_int,
            )
        };
        if got < 0 {
            return Ok(Err(()));
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(Ok(Some(String::from_utf8_lossy(&buf[..end]).into_owned())))
    }

    /// Sets a config item in memory; liblxc checks the key and parses the value.
    pub fn set_config_item(&self, key: &str, value: &str) -> Result<(), LxcError> {
        let op = Op::SetConfig;
        let ckey = self.cstr(op, "config key", key)?;
        let cvalue = self.cstr(op, "config value", value)?;
        let f = unsafe_fn(self, op, "set_config_item", |c| c.set_config_item)?;
        let mark = log::mark();
        // SAFETY: live container; both strings outlive the call and liblxc copies them.
        let ok = unsafe { f(self.raw(), ckey.as_ptr(), cvalue.as_ptr()) };
        self.check(op, mark, ok)
    }

    /// Clears a config item in memory.
    pub fn clear_config_item(&self, key: &str) -> Result<(), LxcError> {
        let op = Op::ClearConfig;
        let ckey = self.cstr(op, "config key", key)?;
        let f = unsafe_fn(self, op, "clear_config_item", |c| c.clear_config_item)?;
        let mark = log::mark();
        // SAFETY: live container; `ckey` outlives the call.
        let ok = unsafe { f(self.raw(), ckey.as_ptr()) };
        self.check(op, mark, ok)
    }

    /// Writes the in-memory config to the container's config file.
    pub fn save_config(&self) -> Result<(), LxcError> {
        let f = unsafe_fn(self, Op::SaveConfig, "save_config", |c| c.save_config)?;
        let mark = log::mark();
        // SAFETY: live container; NULL means the container's own config file.
        let ok = unsafe { f(self.raw(), ptr::null()) };
        self.check(Op::SaveConfig, mark, ok)
    }

    /// Path of the container's config file (`<lxc_path>/<name>/config`).
    pub fn config_file_name(&self) -> PathBuf {
        // SAFETY: live container; the result is NULL or a malloc'ed string we must free.
        let s = unsafe {
            (*self.raw())
                .config_file_name
                .map_or(ptr::null_mut(), |f| f(self.raw()))
        };
        if s.is_null() {
            return self.lxc_path.join(&self.name).join("config");
        }
        // SAFETY: checked non-NULL; NUL-terminated.
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(
            unsafe { CStr::from_ptr(s) }.to_bytes(),
        ));
        // SAFETY: malloc'ed by liblxc, no longer used.
        unsafe { libc::free(s.cast()) };
        path
    }

    /// The network interfaces and IP addresses inside the container whose init is `pid`.
    ///
    /// The same lists as liblxc's `get_interfaces` and `get_ips(NULL, NULL, 0)`: every
    /// interface name once, in the kernel's order; the addresses of every interface but `lo`,
    /// IPv4 and global IPv6 (scope id 0). Read by joining the namespace from a thread
    /// ([`sys::netns_ifaddrs`]); liblxc, which forks a child for each list, only when that
    /// is refused (an unprivileged caller).
    pub fn network(&self, pid: i32) -> Network {
        match sys::netns_ifaddrs(pid) {
            Ok(entries) => Network::from_ifaddrs(&entries),
            Err(_) => Network {
                interfaces: self.lxc_interfaces(),
                ips: self.lxc_ips(),
            },
        }
    }

    fn lxc_interfaces(&self) -> Vec<String> {
        // SAFETY: live container; the result is NULL or a list we own (freed by the helper).
        unsafe {
            let list = (*self.raw())
                .get_interfaces
                .map_or(ptr::null_mut(), |f| f(self.raw()));
            take_string_list(list)
        }
    }

    fn lxc_ips(&self) -> Vec<String> {
        // SAFETY: live container; NULL interface and family mean "all"; the result is NULL or
        // a list we own (freed by the helper).
        unsafe {
            let list = (*self.raw()).get_ips.map_or(ptr::null_mut(), |f| {
                f(self.raw(), ptr::null(), ptr::null(), 0)
            });
            take_string_list(list)
        }
    }

    /// Waits up to `timeout_secs` for `state`; false on time-out.
    pub fn wait(&self, state: State, timeout_secs: i32) -> Result<bool, LxcError> {
        let cstate = self.cstr(Op::Wait, "state", state.as_lxc())?;
        let f = unsafe_fn(self, Op::Wait, "wait", |c| c.wait)?;
        // SAFETY: live container; `cstate` outlives the call.
        Ok(unsafe { f(self.raw(), cstate.as_ptr(), timeout_secs) })
    }

    /// Runs `program` with `args` inside the running container, stdin from /dev/null, and
    /// returns its exit status and output.
    ///
    /// It gets this process's environment, as with `lxc-attach` and the Python module (whose
    /// `attach_wait` keeps it): an Ansible task's `environment:` (a proxy, say) reaches it.
    pub fn attach_run(&self, program: &str, args: &[&str]) -> Result<RunResult, LxcError> {
        let op = Op::Attach;
        let io_err = |e: std::io::Error| LxcError {
            container: self.name.clone(),
            op,
            detail: format!("cannot set up output capture: {e}"),
            log: Vec::new(),
        };
        let cprogram = self.cstr(op, "program", program)?;
        let cargs = std::iter::once(program)
            .chain(args.iter().copied())
            .map(|a| self.cstr(op, "argument", a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
        argv.push(ptr::null());
        let stdin = File::open("/dev/null").map_err(io_err)?;
        let stdout = memfd(c"lxcform-attach-stdout").map_err(io_err)?;
        let stderr = memfd(c"lxcform-attach-stderr").map_err(io_err)?;
        let mut options = lxc_sys::lxc_attach_options_t {
            attach_flags: lxc_sys::LXC_ATTACH_DEFAULT as c_int,
            namespaces: -1,
            personality: lxc_sys::LXC_ATTACH_DETECT_PERSONALITY as libc::c_long,
            initial_cwd: ptr::null_mut(),
            uid: u32::MAX,
            gid: u32::MAX,
            env_policy: lxc_sys::lxc_attach_env_policy_t_LXC_ATTACH_KEEP_ENV,
            extra_env_vars: ptr::null_mut(),
            extra_keep_env: ptr::null_mut(),
            stdin_fd: stdin.as_raw_fd(),
            stdout_fd: stdout.as_raw_fd(),
            stderr_fd: stderr.as_raw_fd(),
            log_fd: -libc::EBADF,
            lsm_label: ptr::null_mut(),
            groups: lxc_sys::lxc_groups_t {
                size: 0,
                list: ptr::null_mut(),
            },
        };
        let _sigpipe = sys::SigpipeResetOnExec::new();
        let f = unsafe_fn(self, op, "attach_run_wait", |c| c.attach_run_wait)?;
        let mark = log::mark();
        // SAFETY: live container; `options` mirrors LXC_ATTACH_OPTIONS_DEFAULT with our fds;
        // every pointer in it and in `argv` stays valid for the call; `argv` is
        // NULL-terminated; liblxc only reads them.
        let status = unsafe { f(self.raw(), &mut options, cprogram.as_ptr(), argv.as_ptr()) };
        if status < 0 {
            return Err(self.fail(op, mark));
        }
        let rc = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            status
        };
        Ok(RunResult {
            rc,
            stdout: read_all(&stdout),
            stderr: read_all(&stderr),
        })
    }
}

/// Fetches a function pointer from the container's method table.
fn unsafe_fn<F>(
    c: &Container,
    op: Op,
    what: &str,
    get: impl FnOnce(&lxc_sys::lxc_container) -> Option<F>,
) -> Result<F, LxcError> {
    // SAFETY: `c.raw()` is a live container for as long as `c` is; we only read one field.
    get(unsafe { &*c.raw() }).ok_or_else(|| c.missing(op, what))
}

impl Drop for Container {
    fn drop(&mut self) {
        // SAFETY: we hold exactly one reference, taken in `new` or returned by `clone`.
        unsafe { lxc_sys::lxc_container_put(self.raw()) };
    }
}

/// Checks a config line with liblxc's own parser, on an in-memory container that exists
/// nowhere; returns liblxc's reason when it refuses the key or the value.
///
/// Two keys act on the host as liblxc parses them: `lxc.log.file` opens (and creates) its
/// file, `lxc.log.syslog` opens syslog and adds it to this process's log. Those are checked
/// here instead, as liblxc would check them, so that checking changes nothing (check mode).
pub fn check_config_item(key: &str, value: &str) -> Result<(), String> {
    match key {
        // Any path liblxc could open; empty clears it.
        "lxc.log.file" => return Ok(()),
        "lxc.log.syslog" => {
            const FACILITIES: [&str; 9] = [
                "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                "local7",
            ];
            return if value.is_empty() || FACILITIES.iter().any(|f| f.eq_ignore_ascii_case(value)) {
                Ok(())
            } else {
                Err(format!(
                    "unsupported lxc.log.syslog facility {value:?} (one of {})",
                    FACILITIES.join(", ")
                ))
            };
        }
        _ => {}
    }
    // No container can live under /proc, so nothing is loaded and nothing is written.
    let c = Container::new("lxcform-validate", Path::new("/proc/lxcform-validate"))
        .map_err(|e| e.detail)?;
    // liblxc prints its complaint to stderr too; the caller reports it once, properly.
    let quiet = StdioCapture::start().ok();
    let result = c.set_config_item(key, value);
    drop(quiet);
    result.map_err(|e| {
        if e.log.is_empty() {
            format!("liblxc refuses {key} = {value:?}")
        } else {
            let reason = e.log.join("; ");
            // "confile - ../src/lxc/confile.c:set_config_x:12 - Invalid argument - Unsupported ..."
            reason.rsplit(" - ").next().unwrap_or(&reason).to_string()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::sys::IfAddr;
    use super::{check_config_item, Network};

    fn entry(name: &str, addr: Option<&str>, scope_id: u32) -> IfAddr {
        IfAddr {
            name: name.to_string(),
            addr: addr.map(|a| a.parse().unwrap()),
            scope_id,
        }
    }

    #[test]
    fn checking_log_keys_changes_nothing_on_the_host() {
        let dir = std::env::temp_dir().join(format!("lxcform-logcheck-{}", std::process::id()));
        let file = dir.join("created-by-check.log");
        assert_eq!(
            check_config_item("lxc.log.file", file.to_str().unwrap()),
            Ok(())
        );
        assert!(
            !dir.exists(),
            "checking lxc.log.file made {}",
            file.display()
        );
        assert_eq!(check_config_item("lxc.log.syslog", "local3"), Ok(()));
        assert_eq!(check_config_item("lxc.log.syslog", "DAEMON"), Ok(()));
        let err = check_config_item("lxc.log.syslog", "kern").unwrap_err();
        assert!(err.contains("\"kern\"") && err.contains("local7"), "{err}");
        assert_eq!(check_config_item("lxc.log.level", "DEBUG"), Ok(()));
        assert!(check_config_item("lxc.log.level", "99").is_err());
    }

    #[test]
    fn network_lists_names_once_and_the_addresses_liblxc_reports() {
        let entries = [
            entry("lo", None, 0),
            entry("eth0", None, 0),
            entry("lo", Some("127.0.0.1"), 0),
            entry("eth0", Some("10.0.3.5"), 0),
            entry("lo", Some("::1"), 0),
            entry("eth0", Some("fd00::5"), 0),
            entry("eth0", Some("fe80::1"), 2),
            entry("eth1", Some("10.0.4.5"), 0),
            entry("eth1", Some("10.0.3.9"), 0),
        ];
        let net = Network::from_ifaddrs(&entries);
        assert_eq!(net.interfaces, ["eth0", "eth1", "lo"]);
        assert_eq!(net.ips, ["10.0.3.5", "10.0.3.9", "10.0.4.5", "fd00::5"]);
    }

    #[test]
    fn network_of_the_calling_process_matches_its_own_interfaces() {
        // Joining one's own namespace is allowed only with CAP_SYS_ADMIN; without it the
        // caller falls back to liblxc, which this test does not cover.
        let Ok(entries) = super::sys::netns_ifaddrs(std::process::id() as i32) else {
            eprintln!("SKIP netns_ifaddrs: cannot join a network namespace (not root)");
            return;
        };
        let net = Network::from_ifaddrs(&entries);
        assert!(net.interfaces.iter().any(|i| i == "lo"), "{net:?}");
        assert!(!net.ips.iter().any(|ip| ip == "127.0.0.1"), "{net:?}");
    }
}
