//! `lxcform plan FILE`: what `apply` would change, container by container.
//!
//! Exit codes: 0 nothing to change, 3 changes pending, 1 some container cannot be planned,
//! 2 invalid manifest. JSON (`--json`): [`lxcform::manifest::ManifestPlan`].

use std::path::{Path, PathBuf};

use clap::Args;
use lxcform::manifest::{self, Action, ConfigChange, EntryPlan, ManifestPlan};

use crate::out::outln;
use crate::paint::{manifest_error, Paint};

/// Exit code of a plan with changes pending (and of `apply --detailed-exitcode` that changed
/// something).
pub const CHANGES: u8 = 3;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The manifest (YAML).
    pub file: PathBuf,
}

/// Prints the plan; the exit code.
pub fn run(file: &Path, json: bool) -> u8 {
    let m = match manifest::load(file) {
        Ok(m) => m,
        Err(e) => return manifest_error(&e, json),
    };
    let plan = manifest::plan(&m);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    } else {
        render(&plan, Paint::stdout());
    }
    if plan.errors > 0 {
        crate::FAILED
    } else if plan.changes > 0 {
        CHANGES
    } else {
        0
    }
}

fn render(plan: &ManifestPlan, p: Paint) {
    let width = plan.containers.iter().map(|c| label(c).len()).max();
    let width = width.unwrap_or(0);
    let mut unchanged = Vec::new();
    for c in &plan.containers {
        if let Some(err) = &c.error {
            let name = format!("{:width$}", label(c));
            outln!("{} {}  {}", p.red("!"), p.bold(&name), p.red(err));
            continue;
        }
        if !c.changed {
            unchanged.push(label(c));
            continue;
        }
        let (mark, word) = match c.action {
            Action::Create => (p.green("+"), p.green("create")),
            Action::Destroy => (p.red("-"), p.red("destroy")),
            Action::Update | Action::None => (p.yellow("~"), p.yellow("update")),
        };
        outln!(
            "{mark} {}  {word}: {}{}",
            p.bold(&format!("{:width$}", label(c))),
            c.steps.join(", "),
            predicted_note(c, p)
        );
        for change in &c.config {
            outln!("      {}", config_line(change, p));
        }
        for w in &c.warnings {
            outln!("      {}", p.dim(&format!("warning: {w}")));
        }
    }
    if !unchanged.is_empty() {
        outln!(
            "  {}",
            p.dim(&format!("unchanged: {}", unchanged.join(", ")))
        );
    }
    let errors = if plan.errors > 0 {
        format!(", {} cannot be planned", plan.errors)
    } else {
        String::new()
    };
    outln!(
        "Plan: {} to change, {} unchanged{errors}.",
        plan.changes,
        plan.unchanged
    );
}

/// `name`, or `name -> clone` for an entry that makes a clone.
fn label(c: &EntryPlan) -> String {
    match &c.clone {
        Some(clone) => format!("{} -> {clone}", c.name),
        None => c.name.clone(),
    }
}

fn predicted_note(c: &EntryPlan, p: Paint) -> String {
    if c.predicted {
        p.dim(&format!(
            " (planned on what {} will leave)",
            c.waits_for.join(", ")
        ))
    } else {
        String::new()
    }
}

fn config_line(c: &ConfigChange, p: Paint) -> String {
    match c {
        ConfigChange::Add { key, value } => p.green(&format!("+ {key} = {value}")),
        ConfigChange::Replace { key, value, old } => {
            p.yellow(&format!("~ {key} = {value}  (was {old})"))
        }
        ConfigChange::Remove { key, value } => p.red(&format!("- {key} = {value}")),
    }
}
