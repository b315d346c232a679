//! `lxc_container`: Ansible's `lxc_container` module as a binary module over lxcform.
//!
//! Ansible runs it as `lxc_container <args file>`; it prints exactly one JSON object on
//! stdout (see [`output`]) and exits 0 on success, 1 on failure. Put it in a playbook's
//! `library/`, in `ANSIBLE_LIBRARY`, or in a collection's `plugins/modules/`, with
//! `lxc_container.yml` (its documentation) beside it.

mod args;
mod coerce;
mod options;
mod output;

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Map, Value};

use args::Raw;

fn main() -> ExitCode {
    // What Ansible (or its caller) left open must not reach templates or container_command.
    lxcform::liblxc::sys::cloexec_inherited_fds();
    // Even a bug must answer Ansible in JSON: print the panic as a failure and exit.
    std::panic::set_hook(Box::new(|info| {
        print(&output::fail(&format!(
            "lxc_container: internal error: {info}"
        )));
        std::process::exit(1);
    }));
    // A signal (Ansible's timeout, a Ctrl-C) stops the run between two steps; the result is
    // still printed, then the module ends by the signal.
    let signals = lxcform::liblxc::sys::DeferSignals::new();
    let mut params = None;
    let (result, ok) = match run(&mut params) {
        Ok(v) => (v, true),
        Err(v) => (v, false),
    };
    print(&output::with_invocation(result, params));
    if let Some(sig) = signals.take() {
        lxcform::liblxc::sys::die_by_signal(sig);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print(v: &Value) {
    let text = serde_json::to_string(v).unwrap_or_else(|_| {
        r#"{"failed": true, "msg": "lxc_container: cannot serialize the result"}"#.into()
    });
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if Ansible closed the pipe.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Reads the args file, ensures the container, and returns the result (`Err`: failed);
/// `params` gets the options for `invocation` as soon as they are known.
fn run(params: &mut Option<Map<String, Value>>) -> Result<Value, Value> {
    let path = std::env::args_os().nth(1).ok_or_else(|| {
        output::fail(
            "no arguments file: Ansible runs a binary module as `lxc_container <args file>`",
        )
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        output::fail(&format!(
            "cannot read the arguments file {}: {e}",
            std::path::Path::new(&path).display()
        ))
    })?;
    let raw = Raw::read(&text).map_err(|m| output::fail(&m))?;
    let options = lxcform::Options {
        check: raw.check,
        diff: raw.diff,
    };
    let args = raw.into_args();
    *params = Some(args.params);
    let spec = args
        .spec
        .map_err(|m| output::fail(&m))?
        .validate()
        .map_err(|e| output::fail(&e.to_string()))?;
    match lxcform::ensure(&spec, options) {
        Ok(outcome) => Ok(output::success(&outcome, &spec)),
        Err(e) => Err(output::failure(
            &e,
            lxcform::facts(&spec.name, &spec.lxc_path).ok(),
        )),
    }
}
