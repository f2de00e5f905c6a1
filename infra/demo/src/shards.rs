//! BENCHMARKS.md section 12: one hot drop's Tries over cache shards, on the local three-node Redis
//! Cluster. **Spread**: the Try's one Redis call (`deduct.lua` through the adapter) on a collection
//! with stock to spare, over one cache shard (two other one-shard collections driven alike on the
//! other primaries) and over three on the three primaries, runs interleaved: each primary's CPU
//! time per Try (`used_cpu_user` + `used_cpu_sys`), the time inside commands next to it
//! (`INFO commandstats`), and the driven Tries/s. **Nothing stranded**: a sell-out over three
//! shards whose buyers all hash to one of them, through the whole Try (SQS included) and persist:
//! every unit sold, no buyer told SOLD_OUT while one was left, every shard and DynamoDB at 0.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use flashstock::domain::buckets::home_shard;
use flashstock::domain::{CollectionId, OrderId, OrderKey, UserId};
use flashstock::ports::{DeductRequest, OrderCache};
use flashstock_local::stack::{Stack, StackOptions};
use futures::StreamExt;

use crate::bench::{BenchApp, median};

/// One spread run: the busiest node's Redis time per Try and the driven rate.
#[derive(Debug, Clone, Default)]
pub struct SpreadRun {
    pub shards: u32,
    pub tries: usize,
    /// Each primary's CPU time (user + sys), µs per Try, the busiest first.
    pub node_cpu_per_try: Vec<f64>,
    /// Σ usec of every command per primary, per Try, the busiest first (wall time inside the
    /// commands: inflated when primaries share cores and one is descheduled mid-command).
    pub node_usec_per_try: Vec<f64>,
    pub tries_per_s: f64,
}

impl SpreadRun {
    pub fn busiest(&self) -> f64 {
        self.node_cpu_per_try.first().copied().unwrap_or(f64::NAN)
    }
}

/// The cluster's primaries (`host:port`), from `CLUSTER SLOTS`, with their slot ranges.
async fn primaries(con: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<Vec<(String, Vec<(i64, i64)>)>> {
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query_async(con).await?;
    let mut out: Vec<(String, Vec<(i64, i64)>)> = Vec::new();
    for s in slots {
        let redis::Value::Array(parts) = s else { continue };
        let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi)), Some(redis::Value::Array(node))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let host = match node.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        let Some(redis::Value::Int(port)) = node.get(1) else { continue };
        let addr = format!("{host}:{port}");
        match out.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, ranges)) => ranges.push((*lo, *hi)),
            None => out.push((addr, vec![(*lo, *hi)])),
        }
    }
    out.sort();
    Ok(out)
}

/// Σ `usec` over every command a node ran since its last `CONFIG RESETSTAT` (but INFO's and
/// CONFIG's own).
async fn command_usec(con: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(con).await?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info") && !l.starts_with("cmdstat_config"))
        .filter_map(|l| l.split("usec=").nth(1)?.split(',').next()?.parse::<f64>().ok())
        .sum())
}

/// A primary's CPU time so far, µs (`used_cpu_user` + `used_cpu_sys`).
async fn cpu_usec(con: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<f64> {
    Ok(crate::bench::redis_stats(con).await?.cpu_seconds * 1e6)
}

/// A collection id whose `shards` cache shards' hash tags sit on `shards` different primaries,
/// none of them in `taken`, with the primary (index in `nodes`) of each shard.
async fn spread_id(
    con: &mut impl redis::aio::ConnectionLike,
    nodes: &[(String, Vec<(i64, i64)>)],
    prefix: &str,
    tag: &str,
    shards: u32,
    taken: &[usize],
) -> anyhow::Result<(CollectionId, Vec<usize>)> {
    for i in 0..10_000 {
        let id = CollectionId::parse(&format!("{tag}-{i}"))?;
        let mut on = Vec::new();
        for r in 0..shards {
            let key = flashstock::adapters::redis_cache::Keys::new(prefix, &id, r).stock(shards);
            let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(con).await?;
            let node = nodes.iter().position(|(_, rs)| rs.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot)));
            on.extend(node);
        }
        let distinct: std::collections::BTreeSet<usize> = on.iter().copied().collect();
        if distinct.len() == shards as usize && on.iter().all(|n| !taken.contains(n)) {
            return Ok((id, on));
        }
    }
    anyhow::bail!("no collection id spreads over {shards} free primaries")
}

/// One collection's Tries in a spread run: id, cache shards, Tries, Tries in flight.
type Job = (CollectionId, u32, usize, usize);

/// Runs `jobs` at once, each Try the Try's one Redis call (distinct buyers, stock to spare):
/// each primary's CPU and time inside commands over the run (µs), and the run's seconds.
async fn spread_run(
    b: &BenchApp,
    nodes: &mut [(String, redis::aio::MultiplexedConnection)],
    jobs: &[Job],
) -> anyhow::Result<(Vec<f64>, Vec<f64>, f64)> {
    let mut cpu_before = Vec::new();
    for (_, con) in nodes.iter_mut() {
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(con).await?;
        cpu_before.push(cpu_usec(con).await?);
    }
    let started = Instant::now();
    let now = flashstock::now_ms();
    let drive = |(id, shards, tries, in_flight): &Job| {
        let (id, shards) = (id.clone(), *shards);
        futures::stream::iter(0..*tries)
            .map(move |i| {
                let id = id.clone();
                async move {
                    let key = OrderKey::new(id, UserId::parse(&format!("s{i}"))?, OrderId::parse("o")?);
                    let req = DeductRequest {
                        key: &key,
                        shards,
                        quantity: 1,
                        now_ms: now,
                        per_user_limit: None,
                        budget: None,
                        stale_before_ms: now - 1_080_000,
                    };
                    match b.app.cache.deduct(&req).await? {
                        flashstock::ports::DeductOutcome::Accepted { .. } => Ok(()),
                        other => anyhow::bail!("a Try with stock to spare answered {other:?}"),
                    }
                }
            })
            .buffer_unordered(*in_flight)
            .collect::<Vec<anyhow::Result<()>>>()
    };
    let done = futures::future::join_all(jobs.iter().map(drive)).await;
    done.into_iter().flatten().collect::<anyhow::Result<Vec<()>>>()?;
    let seconds = started.elapsed().as_secs_f64();
    let (mut cpu, mut inside) = (Vec::new(), Vec::new());
    for ((_, con), before) in nodes.iter_mut().zip(cpu_before) {
        cpu.push(cpu_usec(con).await? - before);
        inside.push(command_usec(con).await?);
    }
    Ok((cpu, inside, seconds))
}

/// What the sell-out whose buyers all hash to one shard came to.
#[derive(Debug, Clone, Default)]
pub struct StrandRun {
    pub units: usize,
    pub buyers: usize,
    pub accepted: usize,
    pub sold_out: usize,
    /// 503 answers the buyers retried (moves meeting each other near sell-out).
    pub retried: usize,
    /// Accepted Tries sent after a SOLD_OUT answer (a unit was left when it was given).
    pub accepted_after_sold_out: usize,
    /// Each shard's Redis stock at the end, and DynamoDB's saleable.
    pub shard_stocks: Vec<Option<i64>>,
    pub saleable: i64,
    pub identity_failures: Vec<String>,
}

async fn strand_run(stack: &Stack, b: &BenchApp, units: usize) -> anyhow::Result<StrandRun> {
    let shards = 3;
    let id = CollectionId::parse(&format!("strand-{}", ulid::Ulid::new().to_string().to_lowercase()))?;
    b.collection_spread(&id, units as u64, Some(3), Some(shards)).await?;
    let buyers: Vec<UserId> = (0..)
        .map(|i| UserId::parse(&format!("h{i}")))
        .filter_map(Result::ok)
        .filter(|u| home_shard(u, shards) == 0)
        .take(units + units / 3)
        .collect();
    let started = Instant::now();
    let answers: Vec<(u16, usize, Duration, Duration)> = futures::stream::iter(buyers.iter().cloned())
        .map(|user| {
            let (app, id) = (&b.app, &id);
            async move {
                let mut retried = 0;
                loop {
                    let from = started.elapsed();
                    let input = flashstock::app::reserve::ReserveInput {
                        collection: id.clone(),
                        order: OrderId::parse("o").expect("an order id"),
                        user: user.clone(),
                        quantity: 1,
                    };
                    let status = match app.reserve(input, flashstock::now_ms()).await {
                        Ok(_) => 202,
                        Err(flashstock::app::AppError::SoldOut) => 409,
                        Err(flashstock::app::AppError::Unavailable(_)) if retried < 50 => {
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(10 * retried as u64)).await;
                            continue;
                        }
                        Err(_) => 500,
                    };
                    return (status, retried, from, started.elapsed());
                }
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let first_sold_out = answers.iter().filter(|a| a.0 == 409).map(|a| a.3).min();
    let mut run = StrandRun {
        units,
        buyers: buyers.len(),
        accepted: answers.iter().filter(|a| a.0 == 202).count(),
        sold_out: answers.iter().filter(|a| a.0 == 409).count(),
        retried: answers.iter().map(|a| a.1).sum(),
        accepted_after_sold_out: answers
            .iter()
            .filter(|a| a.0 == 202 && first_sold_out.is_some_and(|s| a.2 > s))
            .count(),
        ..StrandRun::default()
    };
    // Persist (the stack's consumers) until Redis has heard back, then both stores.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let f = stack.store_figures(id.as_str()).await?;
        if (f.redis_pending == 0 && f.saleable == 0) || Instant::now() > deadline {
            run.shard_stocks = f.redis_shards.iter().map(|(s, _)| *s).collect();
            run.saleable = f.saleable;
            run.identity_failures = f.identity_failures(true);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(run)
}

/// Runs section 12 and writes it.
pub async fn section(cluster_url: &str, prefix: &str, tiny: bool, runs: u32, md: &mut String) -> anyhow::Result<()> {
    let stack = Stack::launch(
        &format!("{prefix}-shards"),
        cluster_url,
        StackOptions { run_timers: false, schedule_interval: None, ..StackOptions::default() },
        |c| c.redis_cluster = true,
    )
    .await?;
    let b = BenchApp::new(&stack, |s| s.emit_emf = false).await?;
    let client = redis::Client::open(cluster_url)?;
    let mut seed = client.get_multiplexed_async_connection().await?;
    let layout = primaries(&mut seed).await?;
    let mut nodes = Vec::new();
    for (addr, _) in &layout {
        let con = redis::Client::open(format!("redis://{addr}"))?.get_multiplexed_async_connection().await?;
        nodes.push((addr.clone(), con));
    }
    let (tries, concurrency) = if tiny { (300, 16) } else { (20_000, 64) };
    let key_prefix = stack.config.key_prefix.clone();
    let mut spread: Vec<SpreadRun> = Vec::new();
    for run in 0..runs {
        for shards in [1u32, 3] {
            // One shard: the collection on one primary, and two other one-shard collections
            // driven alike on the other two, so that every primary is as busy as with three
            // shards (three primaries and the driver share this machine's cores either way).
            // Three shards: the collection alone, over the three primaries. Each primary has
            // `concurrency` Tries in flight: its CPU per call falls with its load (more commands
            // per read and per event-loop turn), and the cap is at full load.
            let (id, on) =
                spread_id(&mut seed, &layout, &key_prefix, &format!("sp{shards}r{run}"), shards, &[]).await?;
            b.collection_spread(&id, (tries * 2) as u64, Some(3), Some(shards)).await?;
            let mut jobs: Vec<Job> = vec![(id, shards, tries, concurrency * shards as usize)];
            let mut taken = on.clone();
            for c in 0..(3 - shards) {
                let (other, at) =
                    spread_id(&mut seed, &layout, &key_prefix, &format!("co{c}r{run}"), 1, &taken).await?;
                b.collection_spread(&other, (tries * 2) as u64, Some(3), Some(1)).await?;
                taken.extend(at);
                jobs.push((other, 1, tries, concurrency));
            }
            let (cpu, inside, seconds) = spread_run(&b, &mut nodes, &jobs).await?;
            let mut node_cpu_per_try: Vec<f64> = on.iter().map(|&n| cpu[n] / tries as f64).collect();
            let mut node_usec_per_try: Vec<f64> = on.iter().map(|&n| inside[n] / tries as f64).collect();
            node_cpu_per_try.sort_by(|a, b| b.total_cmp(a));
            node_usec_per_try.sort_by(|a, b| b.total_cmp(a));
            spread.push(SpreadRun {
                shards,
                tries,
                node_cpu_per_try,
                node_usec_per_try,
                tries_per_s: tries as f64 / seconds,
            });
        }
    }
    let strand = strand_run(&stack, &b, if tiny { 60 } else { 600 }).await?;
    write(md, &layout, &spread, &strand, tries, concurrency, runs)?;
    anyhow::ensure!(strand.identity_failures.is_empty(), "identities: {:?}", strand.identity_failures);
    anyhow::ensure!(
        strand.accepted == strand.units && strand.accepted_after_sold_out == 0,
        "units stranded: {strand:?}"
    );
    Ok(())
}

fn write(
    md: &mut String,
    layout: &[(String, Vec<(i64, i64)>)],
    spread: &[SpreadRun],
    strand: &StrandRun,
    tries: usize,
    concurrency: usize,
    runs: u32,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    writeln!(md, "\n## 12. One hot drop over cache shards (local Redis Cluster)\n")?;
    writeln!(
        md,
        "The local cluster: {} primaries, no replicas, all on this machine's {cores} cores with the driver (so each primary had at most one core, shared). **Spread**: {tries} Tries of distinct buyers, the Try's one Redis call through the adapter, on a collection with stock to spare over 1 cache shard and over 3 whose hash tags sit on the three primaries; {runs} runs of each, interleaved. Every primary is equally busy in both cases, {concurrency} Tries in flight on each: with one shard, two other one-shard collections are driven alike on the other two primaries at the same time (so that three primaries and the driver share the cores in both cases), and only the collection's own primary is counted. Redis CPU is a primary's `used_cpu_user` + `used_cpu_sys` over the run (the engine, its I/O and its timers), per Try of the collection; the busiest of the collection's primaries is what caps it. Driven Tries/s are the collection's. Next to it, the time inside the commands (every command's `usec` summed, `INFO commandstats`, reset before each run), which a primary descheduled mid-command inflates when three share two cores. Measured; the model for an ElastiCache cluster is in docs/HOT-DROP-MODEL.md.\n",
        layout.len()
    )?;
    writeln!(
        md,
        "| cache shards | busiest primary's CPU, µs per Try | the collection's primaries' CPU from the busiest, µs per Try (medians) | time inside commands, busiest / all of its primaries, µs per Try | driven Tries/s |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- |")?;
    let mut busiest = Vec::new();
    for shards in [1, 3] {
        let rs: Vec<&SpreadRun> = spread.iter().filter(|r| r.shards == shards).collect();
        let b = median(&mut rs.iter().map(|r| r.busiest()).collect::<Vec<_>>());
        let nodes: Vec<String> = (0..shards as usize)
            .map(|n| format!("{:.2}", median(&mut rs.iter().map(|r| r.node_cpu_per_try[n]).collect::<Vec<_>>()).0))
            .collect();
        let rate = median(&mut rs.iter().map(|r| r.tries_per_s).collect::<Vec<_>>());
        let inside = median(&mut rs.iter().map(|r| r.node_usec_per_try[0]).collect::<Vec<_>>());
        let all = median(&mut rs.iter().map(|r| r.node_usec_per_try.iter().sum::<f64>()).collect::<Vec<_>>());
        writeln!(
            md,
            "| {shards} | {:.2} ({:.2}–{:.2}) | {} | {:.2} / {:.2} | {:.0} ({:.0}–{:.0}) |",
            b.0,
            b.1,
            b.2,
            nodes.join(" / "),
            inside.0,
            all.0,
            rate.0,
            rate.1,
            rate.2
        )?;
        busiest.push(b.0);
    }
    writeln!(
        md,
        "\nBusiest primary's CPU per Try with 3 shards / with 1: **{:.3}×** (the bar: ≤ 0.4×). Driven Tries/s are this machine's: the driver and three primaries share {cores} cores, so they show the cluster taking the load, not what AWS would.\n",
        busiest[1] / busiest[0]
    )?;
    writeln!(
        md,
        "**Nothing stranded**: {} units over 3 cache shards, {} buyers all homed on shard 0, through the whole Try (the SQS send too) and the stack's persist consumers, 64 in flight, retrying retryable answers as a storefront does: {} accepted, {} answered SOLD_OUT, {} answers of 503 retried (moves meeting each other near sell-out), {} accepted after the first SOLD_OUT answer; every shard's stock at the end {:?}, DynamoDB's saleable {}. One run.\n",
        strand.units,
        strand.buyers,
        strand.accepted,
        strand.sold_out,
        strand.retried,
        strand.accepted_after_sold_out,
        strand.shard_stocks.iter().map(|s| s.unwrap_or(-1)).collect::<Vec<_>>(),
        strand.saleable
    )?;
    Ok(())
}
