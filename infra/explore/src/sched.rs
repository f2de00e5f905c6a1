//! The controller and its strategies. Operations run as tasks and park at their gates; the
//! controller repeatedly asks a [`Strategy`] which parked operation takes its next step (or which
//! one dies), releases it, and waits until it parks again or finishes. Only one operation runs at
//! a time, so a schedule is reproduced exactly by its sequence of choices.
//!
//! - [`Dfs`]: exhaustive depth-first enumeration by choice prefixes (pairs).
//! - [`Pct`]: seeded probabilistic concurrency testing: random priorities with a few change
//!   points, and at most one death at a random point (triples and more).
//! - [`Script`]: a written schedule ("run A until it reaches this call, then B, kill A …"), robust
//!   to steps being added elsewhere: the named regression schedules.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::gate::Event;

/// One alternative at a decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alt {
    /// Let this operation take its next step.
    Step(usize),
    /// This operation dies now, after the steps it took (its answer, if it had one, is lost).
    Kill(usize),
    /// Nothing is left to run: end the schedule (offered beside a last chance to kill).
    Stop,
}

/// What a strategy sees at a decision point.
pub struct View<'a> {
    /// The call each operation is parked at (`None`: finished or dead).
    pub heads: &'a [Option<&'static str>],
    /// Decisions taken so far.
    pub depth: usize,
}

pub trait Strategy: Send {
    /// Picks one of `alts` (never empty).
    fn choose(&mut self, alts: &[Alt], view: &View<'_>) -> usize;
    /// Whether any live operation may be killed at any point (scripts), or only the one that just
    /// stepped (the canonical form the enumerating strategies use, so no schedule repeats).
    fn kills_any(&self) -> bool {
        false
    }
}

/// Exhaustive enumeration: follows `prefix`, then always the first alternative; records every
/// decision so that [`Dfs::next`] gives the next unexplored prefix.
#[derive(Debug, Default)]
pub struct Dfs {
    prefix: Vec<usize>,
    /// (chosen, alternatives) per decision.
    pub taken: Vec<(usize, usize)>,
    /// At most this many preemptions (a switch away from an operation that could go on), as in
    /// CHESS's preemption bounding; `None`: every interleaving.
    bound: Option<usize>,
    last: Option<usize>,
    preemptions: usize,
}

impl Dfs {
    pub fn new(prefix: Vec<usize>) -> Self {
        Self::bounded(prefix, None)
    }

    pub fn bounded(prefix: Vec<usize>, bound: Option<usize>) -> Self {
        Self { prefix, taken: Vec::new(), bound, last: None, preemptions: 0 }
    }

    /// The next prefix in depth-first order, or `None` when the tree is exhausted.
    pub fn next(&self) -> Option<Vec<usize>> {
        let i = self.taken.iter().rposition(|&(c, n)| c + 1 < n)?;
        let mut p: Vec<usize> = self.taken[..i].iter().map(|&(c, _)| c).collect();
        p.push(self.taken[i].0 + 1);
        Some(p)
    }

    pub fn choices(&self) -> Vec<usize> {
        self.taken.iter().map(|&(c, _)| c).collect()
    }
}

impl Strategy for Dfs {
    fn choose(&mut self, alts: &[Alt], _: &View<'_>) -> usize {
        let last_can_go_on = self.last.is_some_and(|l| alts.contains(&Alt::Step(l)));
        let preempts = |a: &Alt| matches!(a, Alt::Step(op) if last_can_go_on && Some(*op) != self.last);
        let exhausted = self.bound.is_some_and(|b| self.preemptions >= b);
        let allowed: Vec<usize> = (0..alts.len()).filter(|&k| !(exhausted && preempts(&alts[k]))).collect();
        let i = self.taken.len();
        let c = self.prefix.get(i).copied().unwrap_or(0).min(allowed.len() - 1);
        self.taken.push((c, allowed.len()));
        let pick = allowed[c];
        if preempts(&alts[pick]) {
            self.preemptions += 1;
        }
        self.last = match alts[pick] {
            Alt::Step(op) => Some(op),
            Alt::Kill(_) | Alt::Stop => None,
        };
        pick
    }
}

/// Probabilistic concurrency testing (Burckhardt et al.): distinct random priorities, `depth - 1`
/// change points where the running operation drops to the lowest priority, and (with probability
/// one half) one death at a random decision.
pub struct Pct {
    prio: Vec<i64>,
    change_points: Vec<usize>,
    kill_at: Option<usize>,
    pub choices: Vec<usize>,
}

impl Pct {
    pub fn new(seed: u64, ops: usize, expected_steps: usize, depth: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut prio: Vec<i64> = (0..ops as i64).map(|i| i + depth as i64).collect();
        for i in (1..prio.len()).rev() {
            let j = rng.random_range(0..=i);
            prio.swap(i, j);
        }
        let steps = expected_steps.max(2);
        let change_points = (1..depth).map(|_| rng.random_range(1..steps)).collect();
        let kill_at = rng.random_bool(0.5).then(|| rng.random_range(0..steps));
        Self { prio, change_points, kill_at, choices: Vec::new() }
    }
}

impl Strategy for Pct {
    fn choose(&mut self, alts: &[Alt], view: &View<'_>) -> usize {
        let step = view.depth;
        let pick = if self.kill_at.is_some_and(|k| step >= k)
            && let Some(i) = alts.iter().position(|a| matches!(a, Alt::Kill(_)))
        {
            self.kill_at = None;
            i
        } else {
            let best = alts
                .iter()
                .enumerate()
                .filter_map(|(i, a)| match a {
                    Alt::Step(op) => Some((self.prio[*op], i)),
                    Alt::Kill(_) | Alt::Stop => None,
                })
                .max();
            match best {
                Some((_, i)) => i,
                None => 0,
            }
        };
        if let Alt::Step(op) = alts[pick]
            && let Some(cp) = self.change_points.iter().position(|&c| c == step)
        {
            self.prio[op] = -(cp as i64) - 1;
        }
        self.choices.push(pick);
        pick
    }
}

/// One directive of a written schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// One step of this operation (skipped when it has none left).
    Step(usize),
    /// Steps of this operation until it is parked at the call with this label (or finishes).
    Until(usize, &'static str),
    /// This operation to its end.
    Finish(usize),
    /// This operation dies now.
    Kill(usize),
}

/// A written schedule; once its directives are used up, operations run in index order.
#[derive(Debug, Clone, Default)]
pub struct Script {
    dirs: Vec<Dir>,
    pos: usize,
}

impl Script {
    pub fn new(dirs: &[Dir]) -> Self {
        Self { dirs: dirs.to_vec(), pos: 0 }
    }
}

impl Strategy for Script {
    fn choose(&mut self, alts: &[Alt], view: &View<'_>) -> usize {
        let find = |a: Alt| alts.iter().position(|x| *x == a);
        loop {
            let Some(d) = self.dirs.get(self.pos).copied() else {
                return alts.iter().position(|a| matches!(a, Alt::Step(_) | Alt::Stop)).unwrap_or(0);
            };
            match d {
                Dir::Step(op) => {
                    self.pos += 1;
                    if let Some(i) = find(Alt::Step(op)) {
                        return i;
                    }
                }
                Dir::Until(op, label) => match find(Alt::Step(op)) {
                    Some(i) if view.heads[op] != Some(label) => return i,
                    _ => self.pos += 1,
                },
                Dir::Finish(op) => match find(Alt::Step(op)) {
                    Some(i) => return i,
                    None => self.pos += 1,
                },
                Dir::Kill(op) => {
                    self.pos += 1;
                    if let Some(i) = find(Alt::Kill(op)) {
                        return i;
                    }
                }
            }
        }
    }

    fn kills_any(&self) -> bool {
        true
    }
}

/// What the controller saw of one schedule.
#[derive(Debug, Default, Clone)]
pub struct Drive {
    /// `operation:call` per step, `✝operation` per death.
    pub trace: Vec<String>,
    /// Operations that died (their answer is lost; their trigger retries them).
    pub killed: Vec<usize>,
    /// Steps taken per operation.
    pub steps: Vec<usize>,
    /// Set when an operation stopped answering (the schedule is reported, not trusted).
    pub stuck: Option<String>,
}

struct Op {
    parked: VecDeque<(&'static str, oneshot::Sender<()>)>,
    executing: usize,
    done: bool,
    dead: bool,
}

/// Runs `handles` (each an operation whose gates send to `rx`) under `strategy`. `may_die[i]`
/// says whether operation `i` may be killed; at most `max_deaths` die.
pub async fn drive(
    mut rx: mpsc::UnboundedReceiver<Event>,
    names: &[String],
    handles: Vec<JoinHandle<()>>,
    strategy: &mut dyn Strategy,
    may_die: &[bool],
    max_deaths: usize,
) -> Drive {
    let n = handles.len();
    let mut ops: Vec<Op> =
        (0..n).map(|_| Op { parked: VecDeque::new(), executing: 0, done: false, dead: false }).collect();
    let mut out = Drive { steps: vec![0; n], ..Drive::default() };
    const PATIENCE: Duration = Duration::from_secs(60);

    // Every operation first parks at its first call or finishes.
    while ops.iter().any(|o| !o.done && o.parked.is_empty()) {
        match tokio::time::timeout(PATIENCE, rx.recv()).await {
            Ok(Some(ev)) => apply(&mut ops, ev),
            _ => {
                out.stuck = Some("an operation never reached its first call".into());
                abort_all(&handles);
                return out;
            }
        }
    }
    let mut last: Option<usize> = None;
    let mut deaths = 0;
    loop {
        let mut alts: Vec<Alt> = (0..n).filter(|&i| !ops[i].dead && !ops[i].parked.is_empty()).map(Alt::Step).collect();
        let mut kills: Vec<Alt> = Vec::new();
        if deaths < max_deaths {
            if strategy.kills_any() {
                kills.extend((0..n).filter(|&i| may_die[i] && !ops[i].dead).map(Alt::Kill));
            } else if let Some(l) = last.filter(|&l| may_die[l] && !ops[l].dead) {
                kills.push(Alt::Kill(l));
            }
        }
        if alts.is_empty() {
            if kills.is_empty() {
                break;
            }
            alts.push(Alt::Stop);
        }
        alts.extend(kills);
        let heads: Vec<Option<&'static str>> =
            ops.iter().map(|o| if o.dead { None } else { o.parked.front().map(|p| p.0) }).collect();
        let pick = alts[strategy.choose(&alts, &View { heads: &heads, depth: out.trace.len() })];
        match pick {
            Alt::Stop => break,
            Alt::Kill(op) => {
                ops[op].dead = true;
                ops[op].parked.clear();
                handles[op].abort();
                deaths += 1;
                out.killed.push(op);
                out.trace.push(format!("✝{}", names[op]));
                last = None;
            }
            Alt::Step(op) => {
                let Some((label, go)) = ops[op].parked.pop_front() else { continue };
                out.trace.push(format!("{}:{label}", names[op]));
                out.steps[op] += 1;
                ops[op].executing += 1;
                let _ = go.send(());
                if let Err(why) = settle(&mut rx, &mut ops, op).await {
                    out.stuck = Some(format!("operation {op} after {label}: {why}"));
                    abort_all(&handles);
                    return out;
                }
                last = Some(op);
            }
        }
    }
    for (i, h) in handles.into_iter().enumerate() {
        if !ops[i].dead {
            let _ = h.await;
        }
    }
    out
}

fn apply(ops: &mut [Op], ev: Event) {
    match ev {
        Event::Arrived { op, label, go } => ops[op].parked.push_back((label, go)),
        Event::StepDone { op } => ops[op].executing = ops[op].executing.saturating_sub(1),
        Event::Done { op } => ops[op].done = true,
    }
}

/// Waits until `op` (just released) is parked again or finished. An operation with concurrent
/// branches (reconciliation heals entries concurrently) may have other calls parked already; it
/// is taken as settled when it says nothing for a moment after its call returned.
async fn settle(rx: &mut mpsc::UnboundedReceiver<Event>, ops: &mut [Op], op: usize) -> Result<(), &'static str> {
    let parked_before = ops[op].parked.len();
    let mut heard = false;
    loop {
        if ops[op].done {
            return Ok(());
        }
        if ops[op].executing == 0 && (heard || ops[op].parked.len() > parked_before) {
            return Ok(());
        }
        let wait = if ops[op].executing == 0 && parked_before > 0 {
            Duration::from_millis(30)
        } else {
            Duration::from_secs(60)
        };
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(ev)) => {
                if matches!(&ev, Event::Arrived { op: o, .. } | Event::Done { op: o } if *o == op) {
                    heard = true;
                }
                apply(ops, ev);
            }
            Ok(None) => return Err("event channel closed"),
            Err(_) if ops[op].executing == 0 && parked_before > 0 => return Ok(()),
            Err(_) => return Err("no answer within 60 s"),
        }
    }
}

fn abort_all(handles: &[JoinHandle<()>]) {
    for h in handles {
        h.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dfs_walks_every_prefix_once() {
        // A tree with 2 alternatives at depth 0 and 3 at depth 1: six leaves.
        let mut prefix = Vec::new();
        let mut leaves = Vec::new();
        loop {
            let mut d = Dfs::new(prefix);
            let view = View { heads: &[], depth: 0 };
            let alts2 = [Alt::Step(0), Alt::Step(1)];
            let alts3 = [Alt::Step(0), Alt::Step(1), Alt::Kill(0)];
            let a = d.choose(&alts2, &view);
            let b = d.choose(&alts3, &view);
            leaves.push((a, b));
            match d.next() {
                Some(p) => prefix = p,
                None => break,
            }
        }
        assert_eq!(leaves.len(), 6);
        leaves.sort();
        leaves.dedup();
        assert_eq!(leaves.len(), 6);
    }

    #[test]
    fn a_preemption_bound_cuts_the_interleavings() {
        // Two operations of three steps each: 20 interleavings; with no preemption only the two
        // where one runs to its end first.
        let count = |bound| {
            let (mut prefix, mut n) = (Vec::new(), 0);
            loop {
                let mut d = Dfs::bounded(prefix, bound);
                let mut left = [3, 3];
                while left.iter().any(|&l| l > 0) {
                    let alts: Vec<Alt> = (0..2).filter(|&o| left[o] > 0).map(Alt::Step).collect();
                    let Alt::Step(op) = alts[d.choose(&alts, &View { heads: &[], depth: 0 })] else { unreachable!() };
                    left[op] -= 1;
                }
                n += 1;
                match d.next() {
                    Some(p) => prefix = p,
                    None => return n,
                }
            }
        };
        assert_eq!(count(None), 20);
        assert_eq!(count(Some(0)), 2);
        assert!(count(Some(1)) < count(Some(2)) && count(Some(2)) < 20);
    }

    #[test]
    fn pct_is_reproducible_from_its_seed() {
        let alts = [Alt::Step(0), Alt::Step(1), Alt::Step(2), Alt::Kill(1)];
        let view = View { heads: &[], depth: 0 };
        let run = |seed| {
            let mut p = Pct::new(seed, 3, 12, 3);
            (0..12).map(|d| p.choose(&alts, &View { depth: d, ..view })).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert!((0..20).map(run).collect::<std::collections::HashSet<_>>().len() > 1);
    }
}
