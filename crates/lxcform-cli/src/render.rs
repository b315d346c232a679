//! Human-readable output.

use lxcform::{CommandResult, Error, Facts, Options, Outcome};

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
        println!("{name}: {verb}: {}", steps.join(", "));
    } else {
        println!("{name}: ok, nothing to change");
    }
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(diff) = &o.diff {
        let before = diff.before.render();
        let after = diff.after.render();
        let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        for line in &b {
            if !a.contains(line) {
                println!("- {line}");
            }
        }
        for line in &a {
            if !b.contains(line) {
                println!("+ {line}");
            }
        }
    }
    if let Some(c) = &o.command {
        command_output(c);
    }
    facts_table(std::slice::from_ref(&o.facts));
}

/// Prints a command's status and output.
pub fn command_output(c: &CommandResult) {
    println!("command exited with {}", c.rc);
    for (label, text) in [("stdout", &c.stdout), ("stderr", &c.stderr)] {
        for line in text.lines() {
            println!("  {label}: {line}");
        }
    }
}

/// Prints facts as an aligned table.
pub fn facts_table(all: &[Facts]) {
    let width = all.iter().map(|f| f.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<8}  {:>8}  IPS", "NAME", "STATE", "PID");
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
        println!(
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
