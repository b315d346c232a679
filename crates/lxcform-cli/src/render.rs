//! Human-readable output.

use lxcform::manifest::{EntryResult, Status};
use lxcform::{CommandResult, Error, Facts, Options, Outcome};

use crate::out::{errln, outln};

/// Prints what a run did (or would do).
pub fn outcome(o: &Outcome, options: Options) {
    let name = &o.facts.name;
    let verb = if options.check {
        "would change"
    } else {
        "changed"
    };
    if o.changed {
        let steps: Vec<String> = o.steps.iter().map(ToString::to_string).collect();
        outln!("{name}: {verb}: {}", steps.join(", "));
    } else {
        outln!("{name}: ok, nothing to change");
    }
    for w in &o.warnings {
        errln!("warning: {w}");
    }
    if let Some(diff) = &o.diff {
        let before = diff.before.render();
        let after = diff.after.render();
        let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        for line in &b {
            if !a.contains(line) {
                outln!("- {line}");
            }
        }
        for line in &a {
            if !b.contains(line) {
                outln!("+ {line}");
            }
        }
    }
    if let Some(c) = &o.command {
        for line in command_lines(c) {
            outln!("{line}");
        }
    }
    facts_table(std::slice::from_ref(&o.facts));
}

/// A command's status and output: `command exited with RC`, then each line of its stdout
/// and stderr, indented and labelled (blank lines around the output left out).
pub fn command_lines(c: &CommandResult) -> Vec<String> {
    let mut lines = vec![format!("command exited with {}", c.rc)];
    for (label, text) in [("stdout", &c.stdout), ("stderr", &c.stderr)] {
        let text = text.trim_end().trim_start_matches(['\n', '\r']);
        lines.extend(text.lines().map(|line| format!("  {label}: {line}")));
    }
    lines
}

/// Why an `apply` entry failed or was skipped, to follow its status word.
pub fn reason(r: &EntryResult) -> &str {
    r.report.error.as_deref().unwrap_or("")
}

/// The lines to show under a failed `apply` entry: its command's status and output when the
/// command is what failed ([`command_lines`]), else none.
pub fn failure_lines(r: &EntryResult) -> Vec<String> {
    match (r.status, &r.report.command) {
        (Status::Failed, Some(c)) => command_lines(c),
        _ => Vec::new(),
    }
}

/// Prints facts as an aligned table.
pub fn facts_table(all: &[Facts]) {
    let width = all.iter().map(|f| f.name.len()).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<8}  {:>8}  IPS", "NAME", "STATE", "PID");
    for f in all {
        let pid = if f.init_pid > 0 {
            f.init_pid.to_string()
        } else {
            "-".into()
        };
        let ips = if f.ips.is_empty() {
            "-".to_string()
        } else {
            f.ips.join(",")
        };
        outln!(
            "{:<width$}  {:<8}  {:>8}  {ips}",
            f.name,
            f.state.as_str(),
            pid
        );
    }
}

/// An error as JSON: `{"failed": true, "msg", "log": [..], "command": {rc, stdout, stderr}?}`.
pub fn error_json(e: &Error) -> String {
    let mut v = serde_json::json!({ "failed": true, "msg": e.to_string(), "log": e.log() });
    if let Some(c) = e.command() {
        v["command"] = serde_json::json!(c);
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: Status, error: &str, command: Option<CommandResult>) -> EntryResult {
        EntryResult {
            name: "web2".into(),
            lxc_path: "/srv/lxc".into(),
            line: 3,
            status,
            report: lxcform::manifest::Report {
                error: Some(error.into()),
                command,
                ..Default::default()
            },
            seconds: 0.0,
        }
    }

    #[test]
    fn a_failed_command_is_shown_with_its_status_and_trimmed_output() {
        let c = CommandResult {
            rc: 7,
            stdout: "\nout-text\n  indented\n\n".into(),
            stderr: "err-text\n".into(),
        };
        let r = entry(Status::Failed, "exited with status 7", Some(c.clone()));
        assert_eq!(
            failure_lines(&r),
            [
                "command exited with 7",
                "  stdout: out-text",
                "  stdout:   indented",
                "  stderr: err-text",
            ]
        );
        assert_eq!(failure_lines(&r), command_lines(&c));
        assert!(failure_lines(&entry(Status::Failed, "boom", None)).is_empty());
        let skipped = entry(Status::Skipped, "waits for web1", Some(c));
        assert!(failure_lines(&skipped).is_empty());
    }
}
