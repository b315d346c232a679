//! Output that never ends the process. `println!` panics when a write fails (a full disk, a
//! terminal that hung up), and with `panic = "abort"` that is exit 134 in the middle of the
//! work, `apply`'s children not waited for. Here the first failed write to stdout is said
//! once on stderr and later output is dropped; the work goes on, and [`exit`] turns the
//! failure into the exit code.
//!
//! A closed pipe (EPIPE, reached only where SIGPIPE is blocked: SIGPIPE itself ends the
//! process quietly, as a pipeline expects) is not said, and ends the process by SIGPIPE.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::OnceLock;

/// What the first failed write to stdout failed with.
static FAILURE: OnceLock<io::ErrorKind> = OnceLock::new();

/// `println!` without the panic: writes a line to stdout ([`line`]).
macro_rules! outln {
    ($($arg:tt)+) => {
        $crate::out::line(format_args!($($arg)+))
    };
}

/// `eprintln!` without the panic: writes a line to stderr, if stderr takes it ([`err_line`]).
macro_rules! errln {
    ($($arg:tt)+) => {
        $crate::out::err_line(format_args!($($arg)+))
    };
}

pub(crate) use {errln, outln};

/// Writes `args` and a newline to stdout; after a failed write, does nothing.
pub fn line(args: fmt::Arguments<'_>) {
    if FAILURE.get().is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        failed(&e);
    }
}

/// Writes `args` and a newline to stderr. A failure there cannot be reported anywhere, and
/// must not stop the work.
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Flushes stdout, so that a failure of what is still buffered counts too.
pub fn flush() {
    if FAILURE.get().is_none() {
        if let Err(e) = io::stdout().flush() {
            failed(&e);
        }
    }
}

/// Records a failed write to stdout made elsewhere (clap's help), and says it unless EPIPE.
pub fn failed(e: &io::Error) {
    if FAILURE.set(e.kind()).is_ok() && e.kind() != io::ErrorKind::BrokenPipe {
        err_line(format_args!("lxcform: cannot write to stdout: {e}"));
    }
}

/// The process's exit code: `code`, except that after a failed write to stdout a success (0,
/// or 3 for changes pending) becomes 1, since the output it promises was lost; a failure (1)
/// or bad usage (2) keeps its code. After EPIPE the process ends by SIGPIPE.
pub fn exit(code: u8) -> ExitCode {
    flush();
    match FAILURE.get() {
        None => ExitCode::from(code),
        Some(io::ErrorKind::BrokenPipe) => lxcform::liblxc::sys::die_by_signal(libc::SIGPIPE),
        Some(_) if code == 0 || code == crate::plan::CHANGES => ExitCode::from(crate::FAILED),
        Some(_) => ExitCode::from(code),
    }
}
