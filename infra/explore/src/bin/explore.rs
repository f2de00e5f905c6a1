//! `flashstock-explore`: runs every pair exhaustively and a seeded sample of random schedules
//! over the larger groups, on the local stack, and ends with one line
//! `explored N schedules (P pairs exhaustive, R random), V violations`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use flashstock_explore::world::World;
use flashstock_explore::{Failure, exhaust, random, replay, scenarios};

#[derive(Parser, Debug)]
#[command(about = "Explores the interleavings of flashstock's use cases on the real local Redis and moto")]
struct Args {
    /// Workers, each with its own table, queues and key prefix.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Random (PCT) schedules over the groups of three or more.
    #[arg(long, default_value_t = 2000)]
    random: u64,
    /// First seed of the random schedules (schedule i uses seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most schedules per pair (the enumeration stops there and says so).
    #[arg(long, default_value_t = 50_000)]
    cap: usize,
    /// Bound the pairs' enumeration to schedules with at most this many preemptions (CHESS-style);
    /// unset: every interleaving.
    #[arg(long)]
    preemptions: Option<usize>,
    /// Skip the exhaustive pairs.
    #[arg(long)]
    no_pairs: bool,
    /// Only these scenarios (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Replay one schedule: `<scenario>@dfs:<choices>`, `<scenario>@pct:<seed>` or `<any>@script:<name>`.
    #[arg(long)]
    replay: Option<String>,
    /// DynamoDB endpoints, one per worker (comma-separated; `infra/explore.sh` starts them).
    #[arg(long, value_delimiter = ',')]
    dynamodb: Vec<String>,
    /// Failing schedules printed in full per scenario.
    #[arg(long, default_value_t = 2)]
    show: usize,
}

enum Job {
    Pair(flashstock_explore::world::Scenario),
    Random(flashstock_explore::world::Scenario, u64),
}

enum Report {
    Pair { name: &'static str, explored: flashstock_explore::Explored },
    Random { name: &'static str, failure: Option<Box<Failure>> },
    Error(String),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    flashstock::telemetry::init();
    let args = Args::parse();
    let stamp = flashstock::now_ms();
    if let Some(r) = &args.replay {
        let (name, how) = r.split_once('@').ok_or_else(|| anyhow::anyhow!("--replay takes <scenario>@<how>"))?;
        let world = Arc::new(World::new(&format!("xr{stamp}")).await?);
        let sc = match how.strip_prefix("script:") {
            Some(reg) => scenarios::regressions()
                .into_iter()
                .find(|x| x.name == reg)
                .map(|x| x.scenario)
                .ok_or_else(|| anyhow::anyhow!("no regression schedule {reg}"))?,
            None => scenarios::by_name(name).ok_or_else(|| anyhow::anyhow!("no scenario named {name}"))?,
        };
        let run = replay(&world, &sc, how).await?;
        let f = Failure { scenario: sc.name, replay: how.to_owned(), run };
        print!("{f}");
        println!("{} violations", f.run.violations.len());
        std::process::exit(if f.run.violations.is_empty() { 0 } else { 1 });
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let mut jobs = VecDeque::new();
    if !args.no_pairs {
        jobs.extend(scenarios::pairs().into_iter().filter(|s| wanted(s.name)).map(Job::Pair));
    }
    let groups: Vec<_> = scenarios::triples().into_iter().filter(|s| wanted(s.name)).collect();
    if !groups.is_empty() {
        for i in 0..args.random {
            jobs.push_back(Job::Random(groups[(i % groups.len() as u64) as usize].clone(), args.seed + i));
        }
    }
    let jobs = Arc::new(Mutex::new(jobs));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = Instant::now();
    for w in 0..args.workers.max(1) {
        let world =
            Arc::new(World::with_dynamodb(&format!("x{stamp}w{w}"), args.dynamodb.get(w).map(String::as_str)).await?);
        let (jobs, tx, cap, preemptions) = (jobs.clone(), tx.clone(), args.cap, args.preemptions);
        tokio::spawn(async move {
            loop {
                let job = jobs.lock().ok().and_then(|mut j| j.pop_front());
                let report = match job {
                    None => break,
                    Some(Job::Pair(sc)) => match exhaust(&world, &sc, cap, preemptions).await {
                        Ok(explored) => Report::Pair { name: sc.name, explored },
                        Err(e) => Report::Error(format!("{}: {e:#}", sc.name)),
                    },
                    Some(Job::Random(sc, seed)) => match random(&world, &sc, seed).await {
                        Ok((_, failure)) => Report::Random { name: sc.name, failure: failure.map(Box::new) },
                        Err(e) => Report::Error(format!("{} seed {seed}: {e:#}", sc.name)),
                    },
                };
                if tx.send(report).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let (mut schedules, mut pairs, mut randoms, mut violations, mut errors) = (0usize, 0usize, 0u64, 0usize, 0usize);
    let mut classes: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut random_by: BTreeMap<&'static str, (u64, usize)> = BTreeMap::new();
    let mut shown: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut note = |f: &Failure, shown: &mut BTreeMap<&'static str, usize>| {
        for v in &f.run.violations {
            let class: String = v.detail.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
            let e = classes
                .entry((f.scenario.to_owned(), format!("{} {class}", v.invariant)))
                .or_insert((0, f.replay.clone()));
            e.0 += 1;
        }
        let n = shown.entry(f.scenario).or_default();
        if *n < args.show {
            *n += 1;
            println!("{f}");
        }
    };
    while let Some(r) = rx.recv().await {
        match r {
            Report::Pair { name, explored } => {
                pairs += 1;
                schedules += explored.schedules;
                violations += explored.failures.len();
                println!(
                    "pair {name}: {} schedules{}{}, steps per operation {:?}, {:.1} s ({:.0} ms per schedule), {} violating",
                    explored.schedules,
                    if explored.capped { " (CAPPED)" } else { "" },
                    args.preemptions.map_or(String::new(), |k| format!(" (≤ {k} preemptions)")),
                    explored.steps_per_op,
                    explored.elapsed.as_secs_f64(),
                    explored.elapsed.as_secs_f64() * 1000.0 / explored.schedules.max(1) as f64,
                    explored.failures.len()
                );
                for f in &explored.failures {
                    note(f, &mut shown);
                }
            }
            Report::Random { name, failure } => {
                randoms += 1;
                schedules += 1;
                let e = random_by.entry(name).or_default();
                e.0 += 1;
                if let Some(f) = failure {
                    violations += 1;
                    e.1 += 1;
                    note(&f, &mut shown);
                }
            }
            Report::Error(e) => {
                errors += 1;
                eprintln!("error: {e}");
            }
        }
    }
    for (name, (n, bad)) in &random_by {
        println!("random {name}: {n} schedules, {bad} violating");
    }
    if !classes.is_empty() {
        println!("violation classes (scenario, invariant and detail: schedules, first replay):");
        for ((sc, class), (n, first)) in &classes {
            println!("  {sc} | {class}: {n} (--replay '{sc}@{first}')");
        }
    }
    println!("total time {:.1} s, {errors} errors", start.elapsed().as_secs_f64());
    println!("explored {schedules} schedules ({pairs} pairs exhaustive, {randoms} random), {violations} violations");
    std::process::exit(if violations == 0 && errors == 0 { 0 } else { 1 });
}
