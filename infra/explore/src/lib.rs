//! flashstock's concurrency explorer. It runs the real use cases of the domain crate against the
//! real local Redis and moto, with every port call as one step, under a controller that decides
//! which operation steps next (see `docs/EXPLORER.md`):
//!
//! - [`gate`] parks an operation before each port call; [`ports`] wraps the real adapters in it;
//! - [`sched`] is the controller and its strategies (exhaustive, PCT, written schedules);
//! - [`world`] is one worker's deployment: set-up, quiescence and the invariant checks I1–I9;
//! - [`scenarios`] lists the pairs, the random groups and the named regression schedules.

pub mod gate;
pub mod ports;
pub mod scenarios;
pub mod sched;
pub mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sched::{Dfs, Pct, Script};
use world::{Run, Scenario, World};

/// A schedule that broke an invariant, with what replays it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub scenario: &'static str,
    /// `dfs:<choices>` or `pct:<seed>` or `script:<name>`: pass to `--replay`.
    pub replay: String,
    pub run: Run,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "schedule {} (replay: --replay '{}@{}')", self.scenario, self.scenario, self.replay)?;
        writeln!(f, "  steps: {}", self.run.drive.trace.join(" → "))?;
        for a in &self.run.answers {
            writeln!(f, "  answer {} → {} {}", a.op, a.status, a.code)?;
        }
        for v in &self.run.violations {
            writeln!(f, "  VIOLATION {}: {}", v.invariant, v.detail)?;
        }
        Ok(())
    }
}

/// What exploring one scenario found.
#[derive(Debug, Default)]
pub struct Explored {
    pub schedules: usize,
    /// Steps per operation in the longest schedule (no deaths).
    pub steps_per_op: Vec<usize>,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
    /// The enumeration was cut at the cap before it was exhausted.
    pub capped: bool,
}

/// Every schedule of `sc` (interleavings × one death after any step), depth first.
pub async fn exhaust(
    world: &Arc<World>,
    sc: &Scenario,
    cap: usize,
    preemptions: Option<usize>,
) -> anyhow::Result<Explored> {
    let start = Instant::now();
    let mut out = Explored::default();
    let mut prefix = Vec::new();
    loop {
        let mut dfs = Dfs::bounded(prefix, preemptions);
        let run = world.run(sc, &mut dfs).await?;
        out.schedules += 1;
        if run.drive.killed.is_empty() && run.drive.steps.iter().sum::<usize>() > out.steps_per_op.iter().sum() {
            out.steps_per_op = run.drive.steps.clone();
        }
        if !run.violations.is_empty() {
            let choices: Vec<String> = dfs.choices().iter().map(usize::to_string).collect();
            let kind = preemptions.map_or("dfs".to_owned(), |k| format!("dfs{k}"));
            out.failures.push(Failure { scenario: sc.name, replay: format!("{kind}:{}", choices.join(".")), run });
        }
        match dfs.next() {
            Some(p) if out.schedules < cap => prefix = p,
            Some(_) => {
                out.capped = true;
                break;
            }
            None => break,
        }
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// One PCT schedule of `sc` from `seed`.
pub async fn random(world: &Arc<World>, sc: &Scenario, seed: u64) -> anyhow::Result<(Run, Option<Failure>)> {
    let mut pct = Pct::new(seed, sc.ops.len(), 6 * sc.ops.len(), 3);
    let run = world.run(sc, &mut pct).await?;
    let failure = (!run.violations.is_empty()).then(|| Failure {
        scenario: sc.name,
        replay: format!("pct:{seed}"),
        run: run.clone(),
    });
    Ok((run, failure))
}

/// Replays `dfs:<c.c.c>` (`dfsK:` under a bound of K preemptions), `pct:<seed>` or
/// `script:<regression name>` on `sc`.
pub async fn replay(world: &Arc<World>, sc: &Scenario, how: &str) -> anyhow::Result<Run> {
    if let Some((kind, c)) = how.split_once(':')
        && let Some(bound) = kind.strip_prefix("dfs")
    {
        let bound = if bound.is_empty() { None } else { Some(bound.parse()?) };
        let prefix = c.split('.').filter(|s| !s.is_empty()).map(str::parse).collect::<Result<Vec<usize>, _>>()?;
        return world.run(sc, &mut Dfs::bounded(prefix, bound)).await;
    }
    if let Some(seed) = how.strip_prefix("pct:") {
        return Ok(random(world, sc, seed.parse()?).await?.0);
    }
    if let Some(name) = how.strip_prefix("script:") {
        let r = scenarios::regressions()
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow::anyhow!("no regression schedule named {name}"))?;
        return world.run(&r.scenario, &mut Script::new(&r.script)).await;
    }
    anyhow::bail!("replay takes dfs:<choices>, pct:<seed> or script:<name>, not {how:?}")
}
