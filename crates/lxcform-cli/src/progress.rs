//! Progress of `apply` on stderr: on a terminal, one live line per running container and an
//! overall bar, redrawn in place; elsewhere, one plain line per container as it ends.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use lxcform::liblxc::sys::signal_name;
use lxcform::manifest::{EntryResult, Event, Manifest, Status};

use crate::paint::Paint;
use crate::render::{failure_lines, reason};

pub struct Progress {
    names: Vec<String>,
    live: bool,
    paint: Paint,
    start: Instant,
    running: Vec<(usize, String, Instant)>,
    done: usize,
    failed: usize,
    skipped: usize,
    /// Lines of the live block now on screen.
    drawn: usize,
}

impl Progress {
    pub fn new(m: &Manifest) -> Progress {
        Progress {
            names: m.entries.iter().map(|e| e.label()).collect(),
            live: std::io::stderr().is_terminal(),
            paint: Paint::stderr(),
            start: Instant::now(),
            running: Vec::new(),
            done: 0,
            failed: 0,
            skipped: 0,
            drawn: 0,
        }
    }

    pub fn event(&mut self, e: Event<'_>) {
        let mut line = None;
        match e {
            Event::Started { index, steps } => {
                self.running.push((index, steps.join(", "), Instant::now()));
            }
            Event::Finished { index, result } => {
                self.running.retain(|(i, ..)| *i != index);
                self.done += 1;
                match result.status {
                    Status::Failed => self.failed += 1,
                    Status::Skipped => self.skipped += 1,
                    Status::Ok | Status::Changed => {}
                }
                line = Some(self.finished_line(index, result));
            }
            Event::Tick => {}
            Event::Interrupted { signal } => {
                line = Some(format!(
                    "{} no more containers start; waiting for the {} running",
                    self.paint
                        .red(&format!("stopping on {}:", signal_name(signal))),
                    self.running.len()
                ));
            }
        }
        let mut err = std::io::stderr().lock();
        if !self.live {
            if let Some(l) = line {
                let _ = writeln!(err, "{l}");
            }
            return;
        }
        // Move up over the live block and clear it; finished lines stay above it.
        if self.drawn > 0 {
            let _ = write!(err, "\x1b[{}A\x1b[J", self.drawn);
        }
        if let Some(l) = line {
            let _ = writeln!(err, "{l}");
        }
        let p = self.paint;
        let mut block = Vec::new();
        for (i, steps, since) in &self.running {
            block.push(format!(
                "  {} {}  {}",
                p.yellow("…"),
                self.names[*i],
                p.dim(&format!("{steps}  {:.1}s", since.elapsed().as_secs_f64()))
            ));
        }
        block.push(self.bar());
        // Auto-wrap off while drawing: a long line is clipped at the edge instead of taking a
        // second row, so the block is exactly as many rows as lines when it is cleared.
        let _ = write!(err, "\x1b[?7l");
        for l in &block {
            let _ = writeln!(err, "{l}");
        }
        let _ = write!(err, "\x1b[?7h");
        self.drawn = block.len();
    }

    fn finished_line(&self, index: usize, r: &EntryResult) -> String {
        let p = self.paint;
        let (word, detail) = match r.status {
            Status::Ok => (p.green("ok"), String::new()),
            Status::Changed => (
                p.yellow("changed"),
                format!(" ({})", r.report.steps.join(", ")),
            ),
            Status::Failed => (p.red("failed"), format!(": {}", reason(r))),
            Status::Skipped => (p.dim("skipped"), format!(": {}", reason(r))),
        };
        let mut line = format!(
            "[{}/{}] {}: {word}{detail} {}",
            self.done,
            self.names.len(),
            self.names[index],
            p.dim(&format!("{:.2}s", r.seconds))
        );
        for l in failure_lines(r) {
            line.push_str("\n    ");
            line.push_str(&l);
        }
        line
    }

    fn bar(&self) -> String {
        const WIDTH: usize = 30;
        let total = self.names.len().max(1);
        let filled = self.done * WIDTH / total;
        let p = self.paint;
        format!(
            "[{}{}] {}/{} done, {} running, {} failed, {} skipped  {:.1}s",
            p.green(&"#".repeat(filled)),
            "-".repeat(WIDTH - filled),
            self.done,
            self.names.len(),
            self.running.len(),
            self.failed,
            self.skipped,
            self.start.elapsed().as_secs_f64()
        )
    }

    /// Clears the live block before the summary is printed.
    pub fn finish(&mut self) {
        if self.live && self.drawn > 0 {
            let _ = write!(std::io::stderr(), "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }
}
