//! `lxcform`: make LXC containers what you declare, from the command line.
//!
//! Exit codes: 0 success, 1 failure (nothing or only part was done, or the output could not
//! be written), 2 bad usage (invalid options; nothing on the host was touched), 3 changes
//! pending (`plan` and `apply --check`, and `apply --detailed-exitcode` when something
//! changed).

mod apply;
mod archive_cmd;
mod args;
mod out;
mod paint;
mod plan;
mod progress;
mod render;

use std::process::ExitCode;

use clap::Parser;
use lxcform::{Error, Options};

use args::{Cli, Command};
use out::{errln, outln};

/// Exit code of a failed run.
const FAILED: u8 = 1;
/// Exit code of bad usage.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    lxcform::liblxc::sys::cloexec_inherited_fds();
    lxcform::liblxc::sys::default_sigpipe();
    out::exit(dispatch())
}

/// Runs the command line; the exit code.
fn dispatch() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            // Help and version go to stdout, where a failed write is a failure.
            if let (Err(err), 0) = (e.print(), code) {
                out::failed(&err);
            }
            return code;
        }
    };
    let json = cli.json;
    let command = match cli.command {
        Command::Plan(a) => return plan::run(&a.file, json),
        Command::Apply(a) => return apply::run(a, json),
        Command::Converge => return apply::converge_child(),
        other => other,
    };
    // A signal stops the run between two steps (see `ensure`); what was done is still
    // reported, then the process ends by the signal.
    let signals = lxcform::liblxc::sys::DeferSignals::new();
    let code = report(run(command, json), json);
    if let Some(sig) = signals.take() {
        out::flush();
        lxcform::liblxc::sys::die_by_signal(sig);
    }
    code
}

/// Prints a run's error, if any; the exit code.
fn report(result: Result<(), Error>, json: bool) -> u8 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            if json {
                outln!("{}", render::error_json(&e));
            } else {
                errln!("lxcform: {e}");
                for line in e.log() {
                    errln!("  liblxc: {line}");
                }
                if let Some(c) = e.command() {
                    for line in render::command_lines(c) {
                        outln!("{line}");
                    }
                }
            }
            if matches!(e, Error::Spec(_)) {
                USAGE
            } else {
                FAILED
            }
        }
    }
}

fn run(command: Command, json: bool) -> Result<(), Error> {
    match command {
        Command::Ensure(a) => {
            let options = Options {
                check: a.check,
                diff: a.diff,
            };
            let spec = a.spec.into_spec_args().validate()?;
            print_outcome(&lxcform::ensure(&spec, options)?, options, json);
        }
        Command::Clone(a) => {
            let options = Options {
                check: a.check,
                diff: false,
            };
            let spec = a.into_spec_args().validate()?;
            if !lxcform::exists(&spec.name, &spec.lxc_path)? {
                return Err(Error::NotFound {
                    container: spec.name,
                    lxc_path: spec.lxc_path,
                });
            }
            print_outcome(&lxcform::ensure(&spec, options)?, options, json);
        }
        Command::Facts { name, lxc_path } => {
            lxcform::spec::validate_name("name", &name)?;
            let facts = lxcform::facts(&name, &args::lxc_path(lxc_path))?;
            if json {
                print_json(&facts);
            } else {
                render::facts_table(&[facts]);
            }
        }
        Command::Plan(_) | Command::Apply(_) | Command::Converge => {
            unreachable!("manifest commands are dispatched in main")
        }
        Command::Archive(a) => archive_cmd::archive(a, json)?,
        Command::Restore(a) => archive_cmd::restore(a, json)?,
        Command::List { lxc_path } => {
            let all = lxcform::list(&args::lxc_path(lxc_path))?;
            if json {
                print_json(&all);
            } else {
                render::facts_table(&all);
            }
        }
    }
    Ok(())
}

fn print_outcome(outcome: &lxcform::Outcome, options: Options, json: bool) {
    if json {
        print_json(outcome);
    } else {
        render::outcome(outcome, options);
    }
}

fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
