//! `lxcform apply FILE`: converge every container of a manifest, `--jobs` at a time, each in
//! a child process (`lxcform __converge`, options as JSON on stdin, report on stdout).
//!
//! Exit codes: 0 every container as declared, 1 some failed or were skipped (or the summary
//! could not be written), 2 invalid manifest (nothing changed); with `--detailed-exitcode`, 3
//! when all succeeded and something changed. With `--check` it is `plan`, exit codes
//! included: 3 when changes are pending. JSON (`--json`):
//! [`lxcform::manifest::ApplySummary`]. Stopped by SIGINT, SIGTERM or SIGHUP, it waits for
//! the running children, prints the summary, then ends by the signal.

use std::io::Read;
use std::num::IntErrorKind;
use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use lxcform::manifest::{self, ApplySummary, Status};

use crate::out::{errln, outln};
use crate::paint::{manifest_error, Paint};
use crate::progress::Progress;
use crate::render::{failure_lines, reason};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The manifest (YAML).
    pub file: PathBuf,
    /// How many containers to converge at once [default: the number of cores].
    // Negative numbers are values here, so that `--jobs -1` is told what a value must be
    // rather than taken for an unknown option.
    #[arg(long, short = 'j', value_parser = parse_jobs, allow_negative_numbers = true)]
    pub jobs: Option<usize>,
    /// Only show what would change, as `lxcform plan` does.
    #[arg(long)]
    pub check: bool,
    /// Exit with 3 when something changed, 0 when nothing did.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// `--jobs`: a whole number, at least 1.
fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
            Err(format!("is too large (at most {})", usize::MAX))
        }
        Err(_) => Err("must be a whole number, at least 1".to_string()),
    }
}

/// Runs the manifest; the exit code.
pub fn run(a: ApplyArgs, json: bool) -> u8 {
    if a.check {
        return crate::plan::run(&a.file, json);
    }
    // A reader that went away (`apply ... 2>&1 | head`) must not end the run with the
    // children not waited for: writes fail with EPIPE instead, and the output is dropped.
    lxcform::liblxc::sys::block_sigpipe_in_this_thread();
    let m = match manifest::load(&a.file) {
        Ok(m) => m,
        Err(e) => return manifest_error(&e, json),
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            errln!("lxcform: cannot find its own executable: {e}");
            return crate::FAILED;
        }
    };
    let child = || {
        let mut c = Command::new(&exe);
        c.arg("__converge");
        c
    };
    let mut progress = Progress::new(&m);
    let summary = manifest::apply(&m, jobs, &child, &mut |e| progress.event(e));
    progress.finish();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        let labels: Vec<String> = m.entries.iter().map(|e| e.label()).collect();
        render(&summary, &labels, Paint::stdout());
    }
    if let Some(sig) = summary.interrupted {
        // Reported (or said why it could not be); now end the way the signal asked.
        crate::out::flush();
        lxcform::liblxc::sys::die_by_signal(sig);
    }
    if summary.failed + summary.skipped > 0 {
        crate::FAILED
    } else if a.detailed_exitcode && summary.changed > 0 {
        crate::plan::CHANGES
    } else {
        0
    }
}

/// The summary table; `labels` name the entries (`name -> clone` for those making clones).
fn render(s: &ApplySummary, labels: &[String], p: Paint) {
    let width = labels.iter().map(String::len).max().unwrap_or(0).max(4);
    outln!(
        "{:width$}  {:<7}  {:<7}  {:>7}  DETAILS",
        "NAME",
        "RESULT",
        "STATE",
        "TIME"
    );
    for (c, label) in s.containers.iter().zip(labels) {
        let (word, details) = match c.status {
            Status::Ok => (p.green("ok     "), String::new()),
            Status::Changed => (p.yellow("changed"), c.report.steps.join(", ")),
            Status::Failed => (p.red("failed "), p.red(reason(c))),
            Status::Skipped => (p.dim("skipped"), p.dim(reason(c))),
        };
        let state = if c.report.state.is_empty() {
            "-"
        } else {
            &c.report.state
        };
        outln!(
            "{label:width$}  {word}  {state:<7}  {:>6.2}s  {details}",
            c.seconds
        );
        for line in &c.report.log {
            outln!("{:width$}  {}", "", p.dim(&format!("liblxc: {line}")));
        }
        for line in failure_lines(c) {
            outln!("{:width$}  {line}", "");
        }
    }
    outln!(
        "Apply: {} changed, {} ok, {} failed, {} skipped in {:.1}s.",
        s.changed,
        s.ok,
        s.failed,
        s.skipped,
        s.seconds
    );
    if let Some(sig) = s.interrupted {
        let name = lxcform::liblxc::sys::signal_name(sig);
        outln!("{}", p.red(&format!("Stopped by {name}.")));
    }
}

/// The child process: options as JSON on stdin, one report as JSON on the last line of stdout;
/// the exit code.
pub fn converge_child() -> u8 {
    let mut input = Vec::new();
    let report = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => manifest::converge(&input),
        Err(e) => manifest::Report {
            error: Some(format!("cannot read options on stdin: {e}")),
            ..Default::default()
        },
    };
    outln!("{}", serde_json::to_string(&report).unwrap_or_default());
    if let Some(sig) = report.signal {
        // Reported; now end the way the parent asked.
        lxcform::liblxc::sys::die_by_signal(sig);
    }
    if report.ok {
        0
    } else {
        crate::FAILED
    }
}
