//! Which entry waits for which, and a [`Scheduler`] that hands out the entries that may run.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Entry, Problem};

/// A container's identity: its lxc_path and name.
type Key = (PathBuf, String);

fn key(e: &Entry) -> Key {
    (e.spec.lxc_path.clone(), e.spec.name.clone())
}

fn clone_key(e: &Entry) -> Option<Key> {
    e.spec
        .clone
        .as_ref()
        .map(|c| (e.spec.lxc_path.clone(), c.name.clone()))
}

/// For each entry, the entries it waits for: the entry that clones its container into being,
/// and the nearest entry above declaring the same container. Two entries making the same clone
/// and circular waits are problems.
pub(super) fn waits(entries: &[Entry]) -> Result<Vec<Vec<usize>>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut maker: HashMap<Key, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(k) = clone_key(e) {
            if let Some(&first) = maker.get(&k) {
                problems.push(Problem {
                    at: e.at,
                    container: Some(e.label()),
                    message: format!(
                        "clone {} is already made by the entry at line {}",
                        k.1, entries[first].at.line
                    ),
                });
            } else {
                maker.insert(k, i);
            }
        }
    }
    let mut last: HashMap<Key, usize> = HashMap::new();
    let mut waits = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let k = key(e);
        let mut w: Vec<usize> = maker.get(&k).copied().into_iter().collect();
        if let Some(prev) = last.insert(k, i) {
            if !w.contains(&prev) {
                w.push(prev);
            }
        }
        w.sort_unstable();
        waits.push(w);
    }
    if let Some(cycle) = find_cycle(&waits) {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| entries[i].spec.name.as_str())
            .collect();
        let first = cycle[0];
        problems.push(Problem {
            at: entries[first].at,
            container: Some(entries[first].label()),
            message: format!(
                "entries wait for each other in a circle: {} waits for {}",
                names.join(" waits for "),
                names[0]
            ),
        });
    }
    if problems.is_empty() {
        Ok(waits)
    } else {
        Err(problems)
    }
}

fn find_cycle(waits: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(i: usize, waits: &[Vec<usize>], mark: &mut [Mark], path: &mut Vec<usize>) -> bool {
        match mark[i] {
            Mark::Done => return false,
            Mark::Open => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                path.drain(..from);
                return true;
            }
            Mark::New => {}
        }
        mark[i] = Mark::Open;
        path.push(i);
        for &w in &waits[i] {
            if visit(w, waits, mark, path) {
                return true;
            }
        }
        path.pop();
        mark[i] = Mark::Done;
        false
    }
    let mut mark = vec![Mark::New; waits.len()];
    for i in 0..waits.len() {
        let mut path = Vec::new();
        if visit(i, waits, &mut mark, &mut path) {
            return Some(path);
        }
    }
    None
}

/// The entries in an order where each comes after those it waits for (file order otherwise).
pub(super) fn sorted(entries: &[Entry]) -> Vec<usize> {
    let mut s = Scheduler::new(entries.iter().map(|e| e.waits_for.clone()).collect());
    let mut out = Vec::with_capacity(entries.len());
    while let Some(i) = s.next() {
        s.finish(i, true);
        out.push(i);
    }
    out
}

/// Where an entry is in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Not started yet.
    Waiting,
    /// Handed out by [`Scheduler::next`].
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Never run: something it waits for failed or was skipped.
    Skipped,
}

/// Hands out entries whose waits are over, and skips those whose waits failed. Pure: the
/// caller runs the entries.
#[derive(Debug, Clone)]
pub struct Scheduler {
    waits: Vec<Vec<usize>>,
    slots: Vec<Slot>,
}

impl Scheduler {
    /// A scheduler for entries with these waits (indices into the same list; no cycles).
    pub fn new(waits: Vec<Vec<usize>>) -> Scheduler {
        let slots = vec![Slot::Waiting; waits.len()];
        Scheduler { waits, slots }
    }

    /// The first waiting entry whose waits all succeeded, now marked running.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<usize> {
        let i = (0..self.slots.len()).find(|&i| {
            self.slots[i] == Slot::Waiting
                && self.waits[i]
                    .iter()
                    .all(|&w| self.slots[w] == Slot::Succeeded)
        })?;
        self.slots[i] = Slot::Running;
        Some(i)
    }

    /// Records that entry `i` finished; returns the entries skipped because of it.
    pub fn finish(&mut self, i: usize, ok: bool) -> Vec<usize> {
        self.slots[i] = if ok { Slot::Succeeded } else { Slot::Failed };
        let mut skipped = Vec::new();
        loop {
            let doomed = (0..self.slots.len()).find(|&j| {
                self.slots[j] == Slot::Waiting
                    && self.waits[j]
                        .iter()
                        .any(|&w| matches!(self.slots[w], Slot::Failed | Slot::Skipped))
            });
            match doomed {
                Some(j) => {
                    self.slots[j] = Slot::Skipped;
                    skipped.push(j);
                }
                None => return skipped,
            }
        }
    }

    /// Where entry `i` is.
    pub fn slot(&self, i: usize) -> Slot {
        self.slots[i]
    }

    /// The entries `i` waits for.
    pub fn waits(&self, i: usize) -> &[usize] {
        &self.waits[i]
    }

    /// Whether every entry has finished or been skipped.
    pub fn is_done(&self) -> bool {
        !self
            .slots
            .iter()
            .any(|s| matches!(s, Slot::Waiting | Slot::Running))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Position;
    use crate::spec::SpecArgs;

    /// Entries `(name, clone_name)`.
    fn entries(list: &[(&str, Option<&str>)]) -> Vec<Entry> {
        list.iter()
            .enumerate()
            .map(|(i, (name, clone))| {
                let spec = SpecArgs {
                    name: Some((*name).into()),
                    lxc_path: Some("/tmp/order".into()),
                    clone_name: clone.map(Into::into),
                    ..Default::default()
                }
                .validate()
                .unwrap();
                Entry {
                    at: Position {
                        line: i as u64 + 1,
                        column: 3,
                    },
                    spec,
                    args: serde_json::Value::Null,
                    waits_for: Vec::new(),
                }
            })
            .collect()
    }

    #[test]
    fn a_clone_waits_for_its_origin() {
        // base is cloned to web1; web1 is declared before and after the entry that makes it.
        let e = entries(&[
            ("web1", None),
            ("base", Some("web1")),
            ("other", None),
            ("web1", Some("web2")),
            ("web2", None),
        ]);
        let w = waits(&e).unwrap();
        assert_eq!(w, vec![vec![1], vec![], vec![], vec![0, 1], vec![3]]);
        let mut with = e.clone();
        for (x, w) in with.iter_mut().zip(w) {
            x.waits_for = w;
        }
        assert_eq!(sorted(&with), [1, 0, 2, 3, 4]);
    }

    #[test]
    fn the_same_container_twice_runs_in_file_order() {
        let e = entries(&[("a", None), ("b", None), ("a", Some("c"))]);
        assert_eq!(waits(&e).unwrap(), vec![vec![], vec![], vec![0]]);
    }

    #[test]
    fn two_entries_making_one_clone_is_a_problem() {
        let e = entries(&[("a", Some("c")), ("b", Some("c"))]);
        let p = waits(&e).unwrap_err();
        assert_eq!(
            p[0].to_string(),
            "2:3: b -> c: clone c is already made by the entry at line 1"
        );
    }

    #[test]
    fn circular_clones_are_a_problem() {
        let e = entries(&[("a", Some("b")), ("b", Some("a"))]);
        let p = waits(&e).unwrap_err();
        assert_eq!(
            p[0].message,
            "entries wait for each other in a circle: a waits for b waits for a"
        );
    }

    #[test]
    fn scheduler_runs_what_is_ready_and_skips_what_waits_on_a_failure() {
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![1], vec![]]);
        assert_eq!(s.next(), Some(0));
        assert_eq!(s.next(), Some(3), "1 waits for 0");
        assert_eq!(s.next(), None);
        assert!(s.finish(3, true).is_empty());
        assert_eq!(s.finish(0, false), [1, 2]);
        assert_eq!(s.slot(2), Slot::Skipped);
        assert!(s.is_done());
        let mut s = Scheduler::new(vec![vec![], vec![0]]);
        assert_eq!(s.next(), Some(0));
        assert!(!s.is_done());
        s.finish(0, true);
        assert_eq!(s.next(), Some(1));
    }
}
