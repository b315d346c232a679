//! Converging a manifest: entries run N at a time, each in a child process, because liblxc
//! forks (see DESIGN.md). The parent plans each entry first and spawns a child only for
//! entries with something to do; a child validates its options again, runs
//! [`ensure`](crate::ensure) and writes a [`Report`] as JSON on its stdout.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Entry, Manifest, Scheduler};
use crate::facts::CommandResult;
use crate::liblxc::sys::{self, DeferSignals};
use crate::spec::SpecArgs;
use crate::{Error, Options, Outcome};

/// What a child process reports on its stdout, as one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Whether the container was made what the entry declares.
    pub ok: bool,
    /// Whether anything changed.
    pub changed: bool,
    /// The steps run.
    pub steps: Vec<String>,
    /// The container's state afterwards (`running`, `stopped`, `frozen`, `absent`; empty
    /// when unknown).
    pub state: String,
    /// Notes for the user.
    pub warnings: Vec<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// liblxc's log lines about the failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// What `container_command` did, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandResult>,
    /// The signal that stopped the child between two steps (it reports, then ends by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

impl Report {
    fn of(result: Result<Outcome, Error>) -> Report {
        match result {
            Ok(o) => Report {
                ok: true,
                changed: o.changed,
                steps: o.steps.iter().map(ToString::to_string).collect(),
                state: o.facts.state.to_string(),
                warnings: o.warnings,
                command: o.command,
                ..Report::default()
            },
            Err(e) => Report {
                error: Some(e.to_string()),
                log: e.log().to_vec(),
                command: e.command().cloned(),
                ..Report::default()
            },
        }
    }

    fn failed(error: String) -> Report {
        Report {
            error: Some(error),
            ..Report::default()
        }
    }
}

/// The child's side: converges the container whose options (an entry's
/// [`Entry::args`]) are given as JSON.
///
/// A failed entry reports the state the container was left in. SIGINT, SIGTERM and SIGHUP
/// stop [`ensure`](crate::ensure) between two steps as usual, but the child reports first:
/// the signal is in [`Report::signal`], for the caller to end by once the report is out.
pub fn converge(args: &[u8]) -> Report {
    let signals = DeferSignals::new();
    let spec = match serde_json::from_slice::<SpecArgs>(args) {
        Ok(a) => a.validate(),
        Err(e) => return Report::failed(format!("invalid options from the parent: {e}")),
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return Report::failed(Error::from(e).to_string()),
    };
    let mut report = Report::of(crate::ensure(&spec, Options::default()));
    if !report.ok {
        if let Ok(f) = crate::facts(&spec.name, &spec.lxc_path) {
            report.state = f.state.to_string();
        }
    }
    report.signal = signals.take();
    report
}

/// How an entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Already as declared; nothing changed.
    Ok,
    /// Made as declared; something changed.
    Changed,
    /// Could not be made as declared.
    Failed,
    /// Not run, because an entry it waits for failed.
    Skipped,
}

/// The result of one entry. As JSON: `{"name", "lxc_path", "line", "status":
/// "ok"|"changed"|"failed"|"skipped", "steps", "state", "warnings", "error"?, "log"?,
/// "command"?, "seconds"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryResult {
    /// Container name.
    pub name: String,
    /// Where it lives.
    pub lxc_path: PathBuf,
    /// Line of its entry in the manifest.
    pub line: u64,
    /// How it ended.
    pub status: Status,
    /// The child's report (for skipped entries: why in `error`).
    #[serde(flatten)]
    pub report: Report,
    /// Wall time of the entry, in seconds.
    pub seconds: f64,
}

/// The result of a run. As JSON: `{"ok", "changed", "failed", "skipped", "seconds",
/// "containers": [EntryResult]}`, containers in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplySummary {
    /// Entries already as declared.
    pub ok: usize,
    /// Entries that changed.
    pub changed: usize,
    /// Entries that failed.
    pub failed: usize,
    /// Entries not run because something they wait for failed.
    pub skipped: usize,
    /// Wall time of the run, in seconds.
    pub seconds: f64,
    /// The signal (SIGINT, SIGTERM, SIGHUP) that stopped the run: no entry started after it,
    /// running children were passed it and waited for. The caller reports, then ends by it
    /// ([`sys::die_by_signal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<i32>,
    /// Every entry, in file order.
    pub containers: Vec<EntryResult>,
}

/// What happens during a run, for progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// Entry `index` started in a child process; the steps planned for it.
    Started {
        /// The entry.
        index: usize,
        /// Its planned steps.
        steps: &'a [String],
    },
    /// Entry `index` ended (also for entries found unchanged and for skipped ones).
    Finished {
        /// The entry.
        index: usize,
        /// How.
        result: &'a EntryResult,
    },
    /// Nothing ended for a while (every 100 ms), to redraw timers.
    Tick,
    /// A signal stopped the run: the running entries were passed it and are waited for.
    Interrupted {
        /// The signal.
        signal: i32,
        /// Not the first: it went to what the running steps run, too.
        again: bool,
    },
}

fn result_of(e: &Entry, report: Report, started: Instant) -> EntryResult {
    let status = match (report.ok, report.changed) {
        (false, _) => Status::Failed,
        (true, true) => Status::Changed,
        (true, false) => Status::Ok,
    };
    EntryResult {
        name: e.spec.name.clone(),
        lxc_path: e.spec.lxc_path.clone(),
        line: e.at.line,
        status,
        report,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn report_of(output: std::io::Result<Output>) -> Report {
    let out = match output {
        Ok(o) => o,
        Err(e) => return Report::failed(format!("cannot wait for the child process: {e}")),
    };
    // The report is the last line: anything printed before it (by liblxc, say) is not.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    match last.map(serde_json::from_str::<Report>) {
        Some(Ok(r)) => r,
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let how = match out.status.signal() {
                Some(sig) => format!("was stopped by {}", sys::signal_name(sig)),
                None => format!("ended with {} and no report", out.status),
            };
            let tail = tail.join(" | ");
            let sep = if tail.is_empty() { "" } else { ": " };
            Report::failed(format!("the child process {how}{sep}{tail}"))
        }
    }
}

/// Waits for a child and collects its output. A child killed by a signal it does not handle
/// (SIGKILL, the OOM killer, a crash) could not clean up: what it ran in its process group (a
/// template) is killed too, rather than left to go on writing into a container directory.
/// The next run removes what such a create left (see [`crate::Observed`]). A child that ended
/// by SIGINT, SIGTERM or SIGHUP did so on purpose, after its report: its group is left alone
/// (what `container_command` started in the background stays).
fn wait_for(mut proc: std::process::Child) -> std::io::Result<Output> {
    let pid = proc.id();
    let stdout = drain(proc.stdout.take());
    let stderr = drain(proc.stderr.take());
    // Killed before the child is reaped, while its group id is still its own.
    if sys::wait_ended_unreaped(pid)?.is_some_and(|sig| !sys::DEFERRED.contains(&sig)) {
        let _ = sys::signal_group(pid, libc::SIGKILL);
    }
    let status = proc.wait()?;
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads all of a child's pipe on a thread of its own (so that neither pipe fills up while
/// the other is read); empty when there is no pipe.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Starts the child for entry `index` and returns its pid; its result arrives on `tx`.
///
/// The child leads its own process group, so a Ctrl-C on the terminal reaches only the
/// parent, which decides what the children hear ([`apply`]). Its input is written by the
/// thread that waits for it, with SIGPIPE blocked there: a child that dies before reading
/// is a failed entry, not the end of the parent.
fn spawn(
    child: &dyn Fn() -> Command,
    e: &Entry,
    index: usize,
    tx: mpsc::Sender<(usize, Report)>,
) -> Result<u32, String> {
    let mut cmd = child();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut proc = cmd
        .spawn()
        .map_err(|e| format!("cannot start a child process: {e}"))?;
    let pid = proc.id();
    let input = serde_json::to_vec(&e.args).unwrap_or_default();
    let stdin = proc.stdin.take();
    thread::spawn(move || {
        sys::block_sigpipe_in_this_thread();
        let written = stdin.map_or(Ok(()), |mut s| s.write_all(&input));
        let mut report = report_of(wait_for(proc));
        if let (Err(e), false) = (written, report.ok) {
            report.error = Some(format!(
                "cannot write to the child process: {e}; {}",
                report.error.unwrap_or_default()
            ));
        }
        let _ = tx.send((index, report));
    });
    Ok(pid)
}

/// Records an entry's end, and skips the entries that waited for it if it failed.
fn finish(
    entries: &[Entry],
    i: usize,
    report: Report,
    at: Instant,
    sched: &mut Scheduler,
    results: &mut [Option<EntryResult>],
    on_event: &mut dyn FnMut(Event<'_>),
) {
    let r = result_of(&entries[i], report, at);
    let skipped = sched.finish(i, r.status != Status::Failed);
    on_event(Event::Finished {
        index: i,
        result: &r,
    });
    results[i] = Some(r);
    for j in skipped {
        // Only the entries it waited for that did not succeed: the reason it did not run.
        let waited: Vec<String> = sched
            .waits(j)
            .iter()
            .filter(|&&w| {
                results[w]
                    .as_ref()
                    .is_some_and(|r| matches!(r.status, Status::Failed | Status::Skipped))
            })
            .map(|&w| entries[w].label())
            .collect();
        let report = Report::failed(format!("waits for {}", waited.join(", ")));
        let r = EntryResult {
            status: Status::Skipped,
            ..result_of(&entries[j], report, Instant::now())
        };
        on_event(Event::Finished {
            index: j,
            result: &r,
        });
        results[j] = Some(r);
    }
}

/// Converges every entry, at most `jobs` children at a time, entries waiting for those they
/// depend on. `child` makes the command of a child process: one that reads an entry's
/// [`Entry::args`] on stdin, calls [`converge`] and prints its [`Report`] as JSON. A failure
/// does not stop the other entries; entries waiting for a failed one are skipped.
///
/// SIGINT, SIGTERM and SIGHUP stop the run: no entry starts after one, the running children
/// are passed it (each stops after its current step, removing a container it created and
/// never started, and reports) and waited for, and the entries not started are skipped. A
/// further signal goes to the children's process groups: what their steps run (a template,
/// `container_command`) is interrupted too. The summary says which signal it was, for the
/// caller to end by it once it has reported.
pub fn apply(
    manifest: &Manifest,
    jobs: usize,
    child: &dyn Fn() -> Command,
    on_event: &mut dyn FnMut(Event<'_>),
) -> ApplySummary {
    let signals = DeferSignals::new();
    let run_started = Instant::now();
    let entries = &manifest.entries;
    let mut sched = Scheduler::new(entries.iter().map(|e| e.waits_for.clone()).collect());
    let mut results: Vec<Option<EntryResult>> = vec![None; entries.len()];
    let mut started: Vec<Option<Instant>> = vec![None; entries.len()];
    let (tx, rx) = mpsc::channel::<(usize, Report)>();
    let mut running: HashMap<usize, u32> = HashMap::new();
    let mut interrupted = None;

    while !sched.is_done() {
        if let Some(sig) = signals.take() {
            // The first signal reaches the children only: each finishes its current step
            // (a template runs to its end) and stops. A further one reaches their process
            // groups, so what the steps run (a template, container_command) hears it too.
            let again = interrupted.is_some();
            interrupted.get_or_insert(sig);
            for &pid in running.values() {
                let _ = if again {
                    sys::signal_group(pid, sig)
                } else {
                    sys::signal_process(pid, sig)
                };
            }
            on_event(Event::Interrupted { signal: sig, again });
        }
        while interrupted.is_none() && running.len() < jobs.max(1) {
            let Some(i) = sched.next() else { break };
            let e = &entries[i];
            let at = Instant::now();
            started[i] = Some(at);
            // The parent's own look finds what is already as declared without a child, except
            // where `container_log` wants every run logged, as `ensure` logs it. Looking only
            // reads (files and liblxc's monitor socket); whatever changes a container, and so
            // may fork, runs in the child.
            let looked = crate::execute::observe_spec(&e.spec)
                .ok()
                .and_then(|o| crate::plan(&e.spec, &o).ok());
            let steps: Vec<String> = match looked {
                Some(p) if !p.changed() && e.spec.container_log.is_none() => {
                    let report = Report {
                        ok: true,
                        state: p.after.state.to_string(),
                        warnings: e.spec.warnings.iter().chain(&p.warnings).cloned().collect(),
                        ..Report::default()
                    };
                    finish(entries, i, report, at, &mut sched, &mut results, on_event);
                    continue;
                }
                Some(p) => p
                    .steps
                    .iter()
                    .chain(p.clone_plan.as_deref().map_or(&[][..], |s| &s.steps))
                    .map(ToString::to_string)
                    .collect(),
                // The child reports what went wrong.
                None => Vec::new(),
            };
            match spawn(child, e, i, tx.clone()) {
                Ok(pid) => {
                    running.insert(i, pid);
                    on_event(Event::Started {
                        index: i,
                        steps: &steps,
                    });
                }
                Err(msg) => finish(
                    entries,
                    i,
                    Report::failed(msg),
                    at,
                    &mut sched,
                    &mut results,
                    on_event,
                ),
            }
        }
        if running.is_empty() {
            if interrupted.is_some() {
                break;
            }
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, report)) => {
                running.remove(&i);
                let at = started[i].unwrap_or_else(Instant::now);
                finish(entries, i, report, at, &mut sched, &mut results, on_event);
            }
            Err(_) => on_event(Event::Tick),
        }
    }
    if let Some(sig) = interrupted {
        for (i, e) in entries.iter().enumerate() {
            if results[i].is_none() {
                let report = Report::failed(format!(
                    "not started: the run was stopped by {}",
                    sys::signal_name(sig)
                ));
                let r = EntryResult {
                    status: Status::Skipped,
                    ..result_of(e, report, Instant::now())
                };
                on_event(Event::Finished {
                    index: i,
                    result: &r,
                });
                results[i] = Some(r);
            }
        }
    }
    // A signal after the last entry ended, or a second one, is the caller's to act on too
    // (taken, so that dropping `signals` does not end the process before the summary).
    let late = signals.take();
    let interrupted = interrupted.or(late);
    let containers: Vec<EntryResult> = results.into_iter().flatten().collect();
    let count = |s: Status| containers.iter().filter(|r| r.status == s).count();
    ApplySummary {
        ok: count(Status::Ok),
        changed: count(Status::Changed),
        failed: count(Status::Failed),
        skipped: count(Status::Skipped),
        seconds: run_started.elapsed().as_secs_f64(),
        interrupted,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_json() {
        let r = Report {
            ok: false,
            error: Some("boom".into()),
            log: vec!["ERROR x".into()],
            command: Some(CommandResult {
                rc: 3,
                stdout: "o".into(),
                stderr: "e".into(),
            }),
            ..Report::default()
        };
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn bad_input_from_the_parent_is_a_failed_report() {
        let r = converge(b"{\"nme\": 1}");
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("unknown field"));
        let r = converge(b"{\"lxc_path\": \"/tmp/x\"}");
        assert_eq!(r.error.as_deref(), Some("missing required option: name"));
    }

    #[test]
    fn a_child_without_a_report_is_a_failure_quoting_its_stderr() {
        let out = Command::new("sh")
            .args(["-c", "echo oops >&2; exit 7"])
            .output();
        let r = report_of(out);
        assert!(!r.ok);
        let msg = r.error.unwrap();
        assert!(
            msg.contains("exit status: 7") && msg.contains("oops"),
            "{msg}"
        );
    }
}
