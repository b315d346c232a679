//! Progress of `apply` on stderr: on a terminal, one live line per running container and an
//! overall bar, redrawn in place; elsewhere, one plain line per container as it ends.
//!
//! The live block is redrawn by moving the cursor up over it, which cannot go above the top
//! of the screen: a block taller than the terminal would leave a copy of its top in the
//! scrollback at every redraw. So it is never taller than the terminal's rows less one (the
//! row the cursor rests on), the running containers beyond that told as `+N more running`.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use lxcform::liblxc::sys::signal_name;
use lxcform::manifest::{EntryResult, Event, Manifest, Status};

use crate::paint::Paint;
use crate::render::{failure_lines, reason};

/// The size assumed for a terminal that does not tell its own (a serial console says 0×0).
const DEFAULT_SIZE: (usize, usize) = (24, 80);

/// One running container as the live block shows it.
#[derive(Debug)]
struct Running<'a> {
    name: &'a str,
    steps: &'a str,
    seconds: f64,
}

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
            Event::Interrupted { signal, again } => {
                let stopping = self
                    .paint
                    .red(&format!("stopping on {}:", signal_name(signal)));
                let n = self.running.len();
                line = Some(if again {
                    format!(
                        "{stopping} passed to what the {n} running are running; waiting for them"
                    )
                } else {
                    format!("{stopping} no more containers start; waiting for the {n} running to finish their step")
                });
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
        let running: Vec<Running<'_>> = self
            .running
            .iter()
            .map(|(i, steps, since)| Running {
                name: &self.names[*i],
                steps,
                seconds: since.elapsed().as_secs_f64(),
            })
            .collect();
        let (rows, cols) = lxcform::liblxc::sys::terminal_size(2).unwrap_or(DEFAULT_SIZE);
        let block = frame(&running, self.bar(), rows, cols, self.paint);
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

/// The live block: a line per running container, oldest first, then `bar`; at most `rows` - 1
/// lines (at least the bar), the containers that do not fit folded into `+N more running`.
/// A container's steps and time are cut to `cols` columns (the terminal clips the rest, with
/// auto-wrap off, but a cut line says it was cut).
fn frame(running: &[Running<'_>], bar: String, rows: usize, cols: usize, p: Paint) -> Vec<String> {
    let room = rows.saturating_sub(1).max(1) - 1;
    let (shown, more) = if running.len() <= room {
        (running.len(), 0)
    } else {
        let shown = room.saturating_sub(1);
        (shown, running.len() - shown)
    };
    let mut block = Vec::with_capacity(shown + 2);
    for r in &running[..shown] {
        let head = format!("  … {}  ", r.name);
        let tail = cut(
            &format!("{}  {:.1}s", r.steps, r.seconds),
            cols.saturating_sub(head.chars().count()),
        );
        block.push(format!("  {} {}  {}", p.yellow("…"), r.name, p.dim(&tail)));
    }
    if more > 0 && room > 0 {
        block.push(p.dim(&format!("  +{more} more running")));
    }
    block.push(bar);
    block
}

/// `text` cut to `width` characters, the last one `…` when it was cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(n: usize) -> Vec<Running<'static>> {
        const NAMES: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
        NAMES[..n]
            .iter()
            .map(|name| Running {
                name,
                steps: "create, start",
                seconds: 1.25,
            })
            .collect()
    }

    fn layout(n: usize, rows: usize, cols: usize) -> Vec<String> {
        frame(&running(n), "BAR".to_string(), rows, cols, Paint::plain())
    }

    #[test]
    fn a_block_that_fits_shows_every_running_container_then_the_bar() {
        assert_eq!(
            layout(3, 24, 80),
            [
                "  … c0  create, start  1.2s",
                "  … c1  create, start  1.2s",
                "  … c2  create, start  1.2s",
                "BAR",
            ]
        );
        // Exactly rows - 1 lines still fits.
        assert_eq!(layout(6, 8, 80).len(), 7);
        assert!(!layout(6, 8, 80).iter().any(|l| l.contains("more")));
        assert_eq!(layout(0, 8, 80), ["BAR"]);
    }

    #[test]
    fn ten_running_on_eight_rows_fold_into_more_running_within_seven_lines() {
        let block = layout(10, 8, 80);
        assert_eq!(block.len(), 7, "{block:#?}");
        assert_eq!(block[0], "  … c0  create, start  1.2s");
        assert_eq!(block[4], "  … c4  create, start  1.2s");
        assert_eq!(block[5], "  +5 more running");
        assert_eq!(block[6], "BAR");
        // One more than fits: two are told as more, since the line saying so takes a row.
        let block = layout(7, 8, 80);
        assert_eq!(block.len(), 7, "{block:#?}");
        assert_eq!(block[5], "  +2 more running");
    }

    #[test]
    fn a_tiny_terminal_gets_the_bar_and_what_fits() {
        assert_eq!(layout(10, 3, 80), ["  +10 more running", "BAR"]);
        assert_eq!(layout(10, 2, 80), ["BAR"]);
        assert_eq!(layout(10, 1, 80), ["BAR"]);
        assert_eq!(layout(10, 0, 80), ["BAR"]);
        assert_eq!(layout(1, 3, 80), ["  … c0  create, start  1.2s", "BAR"]);
    }

    #[test]
    fn lines_are_cut_to_the_columns() {
        let block = layout(1, 24, 20);
        assert_eq!(block[0], "  … c0  create, sta…");
        assert_eq!(block[0].chars().count(), 20);
        // No room for steps at all: the name is left for the terminal to clip.
        assert_eq!(layout(1, 24, 5)[0], "  … c0  ");
    }

    #[test]
    fn cut_keeps_what_fits() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdef", 5), "abcd…");
        assert_eq!(cut("abcdef", 1), "…");
        assert_eq!(cut("abcdef", 0), "");
    }
}
