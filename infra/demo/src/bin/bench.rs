//! `flashstock-bench`: runs the benchmarks on the local stack and writes `BENCHMARKS.md` and its
//! plots. `infra/bench.sh` builds and starts everything first; `--tiny` is CI's seconds-long run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use flashstock_demo::bench::{self, FUNCTIONS, median};
use flashstock_demo::flash_sale::{self, FlashOptions, FlashReport};
use flashstock_demo::redis_cost;
use flashstock_local::stack::{Stack, StackOptions};

#[derive(Parser)]
#[command(about = "flashstock benchmarks")]
struct Cli {
    /// Seconds-long sizes (CI): proves the benchmarks still run, measures nothing worth keeping.
    #[arg(long)]
    tiny: bool,
    /// Repetitions of each measurement (median, min and max are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// Where to write the results; the plots go next to it.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Run only these sections (comma-separated); the default is all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Hot collection: accepted orders on one collection, all with stock.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    hot_orders: u64,
    /// Hot collection: concurrent persist consumers (the template's PersistMaxConcurrency).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    hot_consumers: u64,
    /// Hot collection: runs of each mode (interleaved).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    hot_runs: u32,
    /// Hot collection: seconds to watch before giving up on the orders not yet durable.
    #[arg(long, default_value_t = 480, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    hot_deadline_seconds: u64,
    /// Flash sale: buyers, each trying for one unit at once.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    buyers: u64,
    /// Flash sale: units on sale.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    units: u64,
    /// Flash sale: requests in flight at once.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Footprint: invocations of the API function before its resident memory is read.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    invocations: u64,
    /// Footprint: invocations of the functions whose every invocation waits on DynamoDB (persist,
    /// cancel, reconcile). The local DynamoDB emulator serves ~100 requests/s, so 10,000 of each
    /// take about 12 minutes here; lower it for a quicker look.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    invocations_with_dynamodb: u64,
    /// Footprint: the directory of the release bootstraps to start (default: target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Scripts,
    Amplification,
    Footprint,
    FlashSale,
    Reconcile,
    History,
    /// Needs a DynamoDB with conflict semantics: run with `AWS_ENDPOINT_URL_DYNAMODB` pointing at
    /// `infra/moto_serial.py` started with `FLASHSTOCK_DYNAMODB_CONFLICTS=1` (infra/bench.sh does).
    Hot,
    /// One hot drop's durable side over 1, 16 and 64 stock buckets (section 9).
    Buckets,
    /// One hot drop's Tries over cache shards on the local Redis Cluster (section 12).
    Shards,
}

fn fmt3(t: (f64, f64, f64)) -> String {
    format!("{:.2} | {:.2} | {:.2}", t.0, t.1, t.2)
}

/// One table cell: `median (min–max)`.
fn cell(t: (f64, f64, f64)) -> String {
    format!("{:.1} ({:.1}–{:.1})", t.0, t.1, t.2)
}

fn fmt0(t: (f64, f64, f64)) -> String {
    format!("{:.0} | {:.0} | {:.0}", t.0, t.1, t.2)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores ({cpu}), redis-server from Debian, moto server (DynamoDB served one request at a time)")
}

/// Figures later sections (the scaling note) build on.
#[derive(Default)]
struct Measured {
    try_usec: Option<f64>,
    orders_per_second_per_item: Option<f64>,
    flash: Option<FlashReport>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let redis_url = std::env::var(flashstock::config::REDIS_URL)
        .map_err(|_| anyhow::anyhow!("FLASHSTOCK_REDIS_URL is not set: run infra/bench.sh"))?;
    let want = |s: Section| cli.only.is_empty() || cli.only.contains(&s);
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut md = String::new();
    let mut m = Measured::default();
    writeln!(md, "# flashstock benchmarks\n")?;
    writeln!(
        md,
        "Machine: {}. Generated by `infra/bench.sh{}` ({} runs each unless a section says otherwise; tables give median | min | max).\n",
        machine(),
        if cli.tiny { " --tiny" } else { "" },
        cli.runs
    )?;
    writeln!(
        md,
        "Benchmarks are never timed tests: CI runs `infra/bench.sh --tiny` only to keep this command working. The machine is shared and noisy, so ratios are taken within one run and every table reports the spread.\n"
    )?;
    if want(Section::Scripts) {
        scripts(&cli, &redis_url, &prefix, &mut md, &mut m).await?;
    }
    if want(Section::Amplification) {
        amplification(&cli, &redis_url, &prefix, &mut md, &mut m).await?;
    }
    if want(Section::Footprint) {
        footprint(&cli, &redis_url, &prefix, &mut md).await?;
    }
    if want(Section::FlashSale) {
        flash(&cli, &redis_url, &prefix, &mut md, &mut m).await?;
    }
    if cli.only.is_empty() {
        scaling_note(&mut md, &m)?;
    }
    if want(Section::Reconcile) {
        reconcile(&cli, &redis_url, &prefix, &mut md).await?;
    }
    if want(Section::History) {
        history(&cli, &redis_url, &prefix, &mut md).await?;
    }
    if want(Section::Buckets) {
        flashstock_demo::hot_buckets::section(&redis_url, &prefix, cli.tiny, cli.runs.min(3), &mut md).await?;
    }
    if want(Section::Shards) {
        let cluster = std::env::var("FLASHSTOCK_TEST_REDIS_CLUSTER_URL")
            .map_err(|_| anyhow::anyhow!("FLASHSTOCK_TEST_REDIS_CLUSTER_URL is not set: run infra/bench.sh"))?;
        flashstock_demo::shards::section(&cluster, &prefix, cli.tiny, cli.runs.min(5), &mut md).await?;
    }
    // Only when asked for: it needs the DynamoDB emulator with conflicts (see `Section::Hot`).
    if cli.only.contains(&Section::Hot) {
        hot(&cli, &redis_url, &prefix, &mut md).await?;
    }
    writeln!(
        md,
        "## Reproduce\n\n```\ninfra/bench.sh            # everything at full size (release builds, the Lambda bootstraps for both arches), writes BENCHMARKS.md and the plots\ninfra/bench.sh --only flash-sale --buyers 50000 --units 5000 --out /tmp/b.md   # one section, other sizes\ninfra/bench.sh --only hot --out /tmp/hot.md   # section 8: starts a DynamoDB with transaction conflicts\ninfra/bench.sh --only buckets --out /tmp/buckets.md   # section 9: one hot drop over 1, 16 and 64 stock buckets\ninfra/bench.sh --only shards --out /tmp/shards.md   # section 12: one hot drop over 1 and 3 cache shards on the local Redis Cluster\ninfra/bench.sh --tiny     # seconds; what CI runs\ninfra/bench-compare.sh eb72764 0d7a583 --only scripts --rounds 3   # two revisions in turn, in one run (section 10)\n```"
    )?;
    std::fs::write(&cli.out, &md)?;
    println!("{md}");
    Ok(())
}

/// 1. Redis CPU of the hot-path scripts against a no-op floor, and memory per reservation.
async fn scripts(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String, m: &mut Measured) -> anyhow::Result<()> {
    let shape = redis_cost::Shape {
        reservations: if cli.tiny { 2_000 } else { 100_000 },
        clients: if cli.tiny { 8 } else { 50 },
        pipeline: 32,
        per_user_limit: Some(4),
        budget: Some(flashstock::domain::DEFAULT_BUYER_BUDGET),
    };
    let mut runs = Vec::new();
    for run in 0..cli.runs {
        let c = redis_cost::measure(redis_url, &format!("{prefix}-rc{run}"), shape).await?;
        eprintln!("redis cost run {run}: {c:?}");
        runs.push(c);
    }
    let col = |f: &dyn Fn(&redis_cost::RedisCost) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        median(&mut v)
    };
    writeln!(md, "## 1. Redis cost of the Try, against the seed design's decrease\n")?;
    writeln!(
        md,
        "One harness, one run, the same way for every script: {} distinct reservations on one collection (each a new buyer with a 36-character UUID and a 26-character ULID order id, per-user limit {}), EVALSHA from {} connections, {} calls per pipeline. CPU is Redis's own `usec_per_call` (`INFO commandstats`, reset before each script). The reference is the seed design's decrease as its description gives it (`HEXISTS` on a per-item log hash, `GET` stock, checks, `SET` stock, `TIME`, `HSET` of a `cjson`-encoded `{{action, from, to, change, by, timestamp}}` entry), kept in `infra/demo/src/lua/seed_decrease.lua`. The floors are `return 1` bare and `return 1` called with the Try's own {} keys and {} arguments. Memory is the `used_memory` delta ÷ pending reservations, every key the Try touches.\n",
        shape.reservations,
        shape.per_user_limit.unwrap_or(0),
        shape.clients,
        shape.pipeline,
        runs.first().map_or(0, |c| c.try_keys),
        runs.first().map_or(0, |c| c.try_args),
    )?;
    writeln!(md, "| figure | median | min | max | target |\n|---|---|---|---|---|")?;
    writeln!(md, "| floor: `return 1`, no arguments, µs/call | {} | |", fmt3(col(&|c| c.floor_bare)))?;
    writeln!(md, "| floor: `return 1` called like a Try, µs/call | {} | |", fmt3(col(&|c| c.floor_try_shape)))?;
    writeln!(md, "| reference: the seed's decrease, µs/call | {} | |", fmt3(col(&|c| c.reference)))?;
    let t = col(&|c| c.try_accepted);
    m.try_usec = Some(t.0);
    writeln!(md, "| Try, accepted, µs/call | {} | |", fmt3(t))?;
    writeln!(md, "| Try ÷ reference (per run) | {} | ≤ 0.6 |", fmt3(col(&|c| c.try_accepted / c.reference)))?;
    writeln!(
        md,
        "| Try, a buyer's second order (records read, budget counted), µs/call | {} | |",
        fmt3(col(&|c| c.try_second))
    )?;
    writeln!(md, "| … ÷ reference (per run) | {} | |", fmt3(col(&|c| c.try_second / c.reference)))?;
    writeln!(
        md,
        "| Try script refused (sold out, before the instance's flag is up), µs/call | {} | |",
        fmt3(col(&|c| c.try_refused))
    )?;
    writeln!(md, "| … ÷ bare floor (per run) | {} | |", fmt3(col(&|c| c.try_refused / c.floor_bare)))?;
    writeln!(
        md,
        "| refused once sold out (flag up: one `HGET` of the buyer's records), µs/call | {} | |",
        fmt3(col(&|c| c.refused_flagged))
    )?;
    writeln!(md, "| … ÷ bare floor (per run) | {} | ≤ 3 |", fmt3(col(&|c| c.refused_flagged / c.floor_bare)))?;
    writeln!(md, "| release (a cancel's Redis side), µs/call | {} | |", fmt3(col(&|c| c.release)))?;
    writeln!(md, "| reference, bytes per order | {} | |", fmt3(col(&|c| c.reference_bytes)))?;
    writeln!(md, "| Try, bytes per pending reservation | {} | ≤ 80 |", fmt3(col(&|c| c.bytes_per_reservation)))?;
    writeln!(
        md,
        "| DynamoDB item per reservation (RESERVED; collection id of 16 characters), bytes | {} | |\n",
        fmt3(col(&|c| c.dynamo_item_bytes as f64))
    )?;
    if let Some(last) = runs.last() {
        writeln!(
            md,
            "Structures after the last run's Try phase (`MEMORY USAGE … SAMPLES 0` summed per kind ÷ reservations, `OBJECT ENCODING`):\n"
        )?;
        writeln!(md, "| structure | keys | encoding | bytes per reservation |\n|---|---|---|---|")?;
        for (kind, enc, keys, bytes) in &last.profile {
            writeln!(md, "| `…:{kind}` | {keys} | {enc} | {bytes:.1} |")?;
        }
        writeln!(md)?;
    }
    Ok(())
}

/// 2. Durable write amplification of one hot collection.
async fn amplification(
    cli: &Cli,
    redis_url: &str,
    prefix: &str,
    md: &mut String,
    m: &mut Measured,
) -> anyhow::Result<()> {
    writeln!(md, "## 2. Durable write amplification (one hot collection)\n")?;
    writeln!(
        md,
        "Orders go through the persist handler in SQS batches of the given size. Requests are counted on the wire; write units are computed from the request bodies by DynamoDB's rules (1 per started KB per item written, ×2 inside a transaction) because moto reports no consumed capacity for transactions; inventory-item writes are the transaction updates of the collection item. The template's settings are batch size 1,000 with a 1 s window. Counts are exact (the same in every run), so each case runs once.\n"
    )?;
    writeln!(
        md,
        "| orders | batch size | TransactWriteItems | other requests | inventory-item writes per 1,000 orders | write units per order |\n|---|---|---|---|---|---|"
    )?;
    let sizes: &[usize] = if cli.tiny { &[100] } else { &[1_000, 10_000] };
    let mut best_rate = 0.0f64;
    for &orders in sizes {
        for batch in [10usize, 100, 1_000] {
            // A fresh table per case: moto copies the whole table on every transaction, so a
            // table full of earlier cases' items would only measure the emulator.
            let fresh = Stack::launch(
                &format!("{prefix}-wa{orders}-{batch}"),
                redis_url,
                StackOptions::handlers_only(),
                |_| {},
            )
            .await?;
            let a = bench::amplification(&fresh, orders, batch).await?;
            eprintln!("amplification: {a:?}");
            let tx = a.requests.get("TransactWriteItems").copied().unwrap_or(0);
            let other: u64 = a.requests.iter().filter(|(k, _)| *k != "TransactWriteItems").map(|(_, v)| v).sum();
            let per_k = a.writes.inventory_item_writes as f64 * 1_000.0 / orders as f64;
            let wcu = a.writes.write_units / orders as f64;
            if batch == 1_000 {
                // The collection item takes 2 WCU per transaction; 1,000 WCU/s per item.
                best_rate =
                    best_rate.max(1_000.0 / 2.0 * (orders as f64 / a.writes.inventory_item_writes.max(1) as f64));
            }
            writeln!(md, "| {orders} | {batch} | {tx} | {other} | {per_k:.1} | {wcu:.2} |")?;
        }
    }
    m.orders_per_second_per_item = Some(best_rate);
    writeln!(
        md,
        "\nTargets: ≤ 12 inventory-item writes per 1,000 orders at the template's batch settings, ≤ 2.5 write units per order. On AWS the collection item allows 1,000 WCU/s; each transaction writes it once (2 WCU), so with full batches one collection sustains about **{best_rate:.0} orders/s** of durable deductions before its inventory item throttles (the order items spread over partitions). Smaller batches (a quiet queue) cost more inventory writes per order, but then the rate is low anyway. A transaction holds at most 100 items, so a batch of 1,000 becomes ⌈1,000 / 99⌉ = 11 transactions.\n"
    )?;
    Ok(())
}

/// 3. Cold start, bootstrap sizes and resident memory of the release binaries.
async fn footprint(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin_dir =
        cli.bin_dir.clone().unwrap_or_else(|| root.join(if cli.tiny { "target/debug" } else { "target/release" }));
    let invocations = |f: &str| match (cli.tiny, f) {
        (true, _) => 20,
        (false, "flashstock-api") => cli.invocations as usize,
        (false, _) => cli.invocations_with_dynamodb as usize,
    };
    // A fresh deployment (table, queues) per function and run: the cancel function's tombstones
    // or another run's collections would otherwise slow every later invocation on the emulator.
    let fresh = |tag: String| async move {
        Stack::launch(&format!("{prefix}-fp-{tag}"), redis_url, StackOptions::handlers_only(), |_| {}).await
    };
    writeln!(md, "## 3. Cold start and footprint\n")?;
    writeln!(
        md,
        "Each function's bootstrap from `{}` runs under the project's Lambda Runtime API emulator (`infra/local/src/runtime_api.rs`) with the first event already waiting, as on Lambda: **init** is process start → its first request for work (config, Redis connection, SDK clients), **cold start** is process start → the first invocation answered (the event: a Try; ten reservation messages; a cancel of an unknown order; the scheduled event). One process per run. Then one more process per function takes a run of invocations of the same kinds (API: {}; persist, cancel, reconcile, whose every invocation waits on the DynamoDB emulator: {}; persist gets the same ten messages redelivered after the first time, so the table stays small on the emulator) and its peak resident set (`VmHWM`) is read.\n",
        bin_dir.strip_prefix(&root).unwrap_or(&bin_dir).display(),
        invocations("flashstock-api"),
        invocations("flashstock-persist")
    )?;
    writeln!(
        md,
        "| function | init ms, median (min–max) | cold start ms, median (min–max) | invocations | peak RSS, MB, median (min–max) |\n|---|---|---|---|---|"
    )?;
    let rss_runs = 1;
    // Memory: the four functions side by side (one process each; RSS is per process), run by run.
    let mut rss: Vec<Vec<f64>> = vec![vec![]; FUNCTIONS.len()];
    for run in 0..rss_runs {
        let fps = futures::future::join_all(FUNCTIONS.iter().map(|f| {
            let (fresh, binary) = (&fresh, bin_dir.join(f));
            async move {
                let stack = fresh(format!("{f}-r{run}")).await?;
                let events = bench::Events::prepare(&stack, &format!("{f}-r{run}")).await?;
                bench::footprint(&stack, &binary, &events, invocations(f)).await
            }
        }))
        .await;
        for (i, fp) in fps.into_iter().enumerate() {
            let fp = fp?;
            eprintln!("{} rss run {run}: {fp:?}", FUNCTIONS[i]);
            rss[i].push(fp.peak_rss as f64 / 1e6);
        }
    }
    for (i, f) in FUNCTIONS.into_iter().enumerate() {
        let binary = bin_dir.join(f);
        let (mut init, mut cold) = (vec![], vec![]);
        for run in 0..cli.runs {
            let stack = fresh(format!("{f}-c{run}")).await?;
            let events = bench::Events::prepare(&stack, &format!("{f}-c{run}")).await?;
            let fp = bench::footprint(&stack, &binary, &events, 1).await?;
            eprintln!("{f} cold start run {run}: {fp:?}");
            init.push(fp.init_ms);
            cold.push(fp.cold_start_ms);
        }
        writeln!(
            md,
            "| {f} | {} | {} | {} | {} |",
            cell(median(&mut init)),
            cell(median(&mut cold)),
            invocations(f),
            cell(median(&mut rss[i]))
        )?;
    }
    writeln!(
        md,
        "\nTargets: cold start ≤ 30 ms, peak RSS ≤ 40 MB after 10,000 invocations. Peak RSS comes from {rss_runs} long run per function (the four side by side). A cold start here includes handling the first event against the local emulators: persist's is a ten-order transaction plus ten timer messages on moto, which take most of the ~28 ms between its init and its answer on the emulator's single thread; **init** is the functions' own start-up (config, TLS-ready clients, Redis connection).\n"
    )?;
    let sizes = bench::bootstrap_sizes(&root.join("target/deploy"));
    writeln!(
        md,
        "Bootstrap sizes (stripped; `infra/build-lambdas.sh` = `cargo lambda build --release`, target ≤ 8 MB = 8,000,000 bytes):\n"
    )?;
    writeln!(md, "| function | arm64 bytes | x86_64 bytes |\n|---|---|---|")?;
    for f in FUNCTIONS {
        let size = |arch: &str| sizes.get(arch).and_then(|s| s.get(f)).map_or("not built".to_owned(), u64::to_string);
        writeln!(md, "| {f} | {} | {} |", size("arm64"), size("x86_64"))?;
    }
    writeln!(md)?;
    Ok(())
}

/// 4. The flash sale on the local stack, with its plots.
async fn flash(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String, m: &mut Measured) -> anyhow::Result<()> {
    let opts = if cli.tiny {
        FlashOptions { buyers: 500, units: 50, concurrency: 64, ..FlashOptions::default() }
    } else {
        FlashOptions {
            buyers: cli.buyers as usize,
            units: cli.units,
            concurrency: cli.concurrency as usize,
            ..FlashOptions::default()
        }
    };
    let mut reports = Vec::new();
    for run in 0..cli.runs {
        let r = flash_sale::run(redis_url, &format!("{prefix}-fs{run}"), &opts).await?;
        eprintln!(
            "flash sale run {run}: {:.0}/s p50 {:.1} p99 {:.1} all reserved {:?} {:?}",
            r.throughput(),
            r.percentile(50.0),
            r.percentile(99.0),
            r.all_reserved_seconds,
            r.by_code
        );
        let broken = r.identity_failures();
        anyhow::ensure!(broken.is_empty(), "flash sale run {run}: identities broken: {broken:?}");
        reports.push(r);
    }
    let col = |f: &dyn Fn(&FlashReport) -> f64| -> (f64, f64, f64) {
        let mut v: Vec<f64> = reports.iter().map(f).collect();
        median(&mut v)
    };
    writeln!(md, "## 4. Flash sale on the local stack\n")?;
    writeln!(
        md,
        "{} buyers try for one unit each of a {}-unit collection, {} requests in flight at once, through the local front door (HTTP → API Gateway v2 events → the real API handler → Redis + SQS), persist consuming with the template's batch settings ({} messages / {:.0} s window, {} consumers). Client, front door, handlers, redis-server and both moto servers share this machine's cores, so latencies include queueing behind the emulators. A fresh deployment (table, queues, key prefix) per run.\n",
        opts.buyers,
        opts.units,
        opts.concurrency,
        opts.persist_batch_size,
        opts.batching_window.as_secs_f64(),
        opts.persist_consumers
    )?;
    writeln!(md, "| figure | median | min | max |\n|---|---|---|---|")?;
    writeln!(md, "| Try throughput, requests/s | {} |", fmt0(col(&|r| r.throughput())))?;
    writeln!(md, "| Try latency p50, ms | {} |", fmt3(col(&|r| r.percentile(50.0))))?;
    writeln!(md, "| Try latency p95, ms | {} |", fmt3(col(&|r| r.percentile(95.0))))?;
    writeln!(md, "| Try latency p99, ms | {} |", fmt3(col(&|r| r.percentile(99.0))))?;
    writeln!(md, "| accepted Tries only: latency p50, ms | {} |", fmt3(col(&|r| r.accepted_percentile(50.0))))?;
    writeln!(md, "| accepted Tries only: latency p99, ms | {} |", fmt3(col(&|r| r.accepted_percentile(99.0))))?;
    writeln!(md, "| burst duration, s | {} |", fmt3(col(&|r| r.try_seconds)))?;
    writeln!(
        md,
        "| burst start → every accepted reservation RESERVED, s | {} |",
        fmt3(col(&|r| r.all_reserved_seconds.unwrap_or(f64::NAN)))
    )?;
    writeln!(md, "| accepted (202) | {} |", fmt0(col(&|r| r.accepted as f64)))?;
    writeln!(md, "| refused SOLD_OUT | {} |", fmt0(col(&|r| *r.by_code.get("SOLD_OUT").unwrap_or(&0) as f64)))?;
    writeln!(md, "| errors (5xx, transport) | {} |\n", fmt0(col(&|r| r.errors() as f64)))?;
    // The plots and the identities of the run with the median throughput.
    reports.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    let r = reports.swap_remove(reports.len() / 2);
    let dir = cli.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = cli.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "BENCHMARKS".into());
    let (lat, lev) = (format!("{stem}-flash-sale-latency.png"), format!("{stem}-flash-sale-levels.png"));
    flash_sale::plot_latency(&r, &dir.join(&lat))?;
    flash_sale::plot_levels(&r, &dir.join(&lev))?;
    let (s, last) = (&r.last.stores, &r.last);
    writeln!(
        md,
        "Every run ends with both stores checked (the stock identities of docs/DESIGN.md) after one reconciliation run: the bench fails if any identity breaks. The median run: outcomes {:?}; DynamoDB quantity {} = saleable {} + RESERVED {} + CONFIRMED {} (order records scanned: {:?}); Redis stock {:?}, pending {}; drift {:?}; identity violations {}.\n",
        r.by_code,
        s.quantity,
        s.saleable,
        s.by_status.get("RESERVED").copied().unwrap_or(0),
        s.by_status.get("CONFIRMED").copied().unwrap_or(0),
        s.by_status,
        s.redis_stock,
        s.redis_pending,
        last.drift,
        last.violations
    )?;
    writeln!(
        md,
        "![Try latency histogram]({lat})\n\n![Redis stock, DynamoDB saleable and PENDING over time]({lev})\n"
    )?;
    writeln!(
        md,
        "The levels plot shows the shape of the design: Redis stock falls to 0 within the burst (the fast filter), PENDING rises with it and drains as persist's batches land, and DynamoDB saleable follows PENDING down one transaction (≤ 99 orders) at a time; after the sell-out, refusals are answered by the per-instance sold-out flag without touching the collection's Redis keys. Locally, persist falls behind during the burst: moto's SQS serves the burst's SendMessage calls and persist's ReceiveMessage calls on one interpreter lock, so DynamoDB catches up once the burst is over, one 99-order transaction per step (~0.6 s each on the emulator; tens of milliseconds on DynamoDB).\n"
    )?;
    m.flash = Some(r);
    Ok(())
}

/// 5. How far one collection scales on AWS, from the figures above.
fn scaling_note(md: &mut String, m: &Measured) -> anyhow::Result<()> {
    let usec = m.try_usec.unwrap_or(f64::NAN);
    let item = m.orders_per_second_per_item.unwrap_or(f64::NAN);
    let p50 = m.flash.as_ref().map_or(f64::NAN, |r| r.percentile(50.0));
    writeln!(md, "## 5. Scaling note (on paper, from the figures above)\n")?;
    writeln!(
        md,
        "- **Redis shard CPU.** Every key of a collection's cache shard shares one hash tag, so a collection of one cache shard (the default) lives on one shard, whose one thread runs its Tries; a hot collection created with more (`\"cacheShards\"`) spreads over as many slots (section 12, and docs/HOT-DROP-MODEL.md for the model). At {usec:.1} µs of script per Try, a shard tops out near **{:.0} Tries/s** of script time alone; with the per-command I/O work of EVALSHA (roughly as much again) plan on about half, **~{:.0} accepted-or-refused Tries/s per collection**. Only Tries that reach the script count: once sold out, the per-instance sold-out flag answers from Lambda memory (a retry of an accepted order costs one HGET of the buyer's bucket, on the collection's shard), so the horde after the sell-out does not load the collection's shard. Many collections spread over shards (ElastiCache Serverless scales shards out).\n",
        1e6 / usec,
        0.5e6 / usec
    )?;
    writeln!(
        md,
        "- **DynamoDB item limit.** By write units alone one stock item takes ~{item:.0} durable orders/s with full batches (1,000 WCU/s per item, 2 WCU per transaction of ≤ 99 orders); what binds is one transaction at a time per item (section 8, measured on the one-item layout). A collection's durable stock is now split over stock buckets (docs/DESIGN.md#stock-buckets, default 16), each its own chain of transactions. The per-bucket figures and the model of one collection's durable orders/s and confirms + cancels/s on AWS, with the bucket count and table quota they need, are in docs/HOT-DROP-MODEL.md (this file's sections 2 and 8 were measured on the one-item layout and were not re-run for it).\n"
    )?;
    writeln!(
        md,
        "- **Lambda concurrency.** One environment serves one request at a time, so concurrency = rate × duration. Locally a Try takes {p50:.1} ms at the median, most of it queueing behind the emulators; on AWS a Try is one Redis round trip for the script and one SQS SendMessage, ~5–10 ms, so **20,000 Tries/s need ~100–200 concurrent environments** — within the default account limit of 1,000, but a cold burst scales by 1,000 environments per 10 s per function, so for a scheduled drop pre-warm with provisioned concurrency. API Gateway's default account throttle (10,000 requests/s per region, set in the template's stage throttling) is hit before Redis is: raise it by quota request for a large drop.\n"
    )?;
    writeln!(
        md,
        "- **Next bottleneck, in order:** API Gateway / Lambda burst limits (quota, provisioned concurrency) → durable writes of one collection (per stock bucket one transaction at a time; docs/HOT-DROP-MODEL.md) → the collection's Redis shard at ~{:.0} Tries/s → cancels, per stock bucket one transaction at a time (confirms write their order alone; docs/HOT-DROP-MODEL.md). Standard SQS queues and the order items (spread by order id) do not bind.\n",
        0.5e6 / usec
    )?;
    Ok(())
}

/// 6. Cost of one reconciliation run by number of unsettled entries.
async fn reconcile(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String) -> anyhow::Result<()> {
    let cases: Vec<(&str, usize, usize)> = if cli.tiny {
        vec![("0 unsettled, 100 settled before", 100, 0), ("50 unsettled", 0, 50)]
    } else {
        vec![("0 unsettled, 10k settled before", 10_000, 0), ("1k unsettled", 0, 1_000), ("10k unsettled", 0, 10_000)]
    };
    let stack = Stack::launch(&format!("{prefix}-rc"), redis_url, StackOptions::handlers_only(), |_| {}).await?;
    writeln!(md, "## 6. Cost of one reconciliation run\n")?;
    writeln!(
        md,
        "A fresh collection per case; the unsettled entries are real Tries whose messages were dropped by the fault switch, and the give-up is set to zero, so the run must tombstone and give back every one (its costliest path; before the give-up it re-sends instead: one script call per 256 entries and one SQS request per 10). DynamoDB requests are counted by an SDK interceptor; Redis calls and CPU from `INFO` deltas around the run. Wall time is against the local emulators (moto), which are far slower per request than DynamoDB. Three runs per case.\n"
    )?;
    writeln!(
        md,
        "| case | wall ms (median \\| min \\| max) | Redis scripts run | Redis commands (incl. in scripts) | Redis CPU ms (median) | Redis CPU µs per entry | DynamoDB requests | tombstones |\n|---|---|---|---|---|---|---|---|"
    )?;
    for (case, settled, unsettled) in cases {
        let (mut wall, mut cpu) = (vec![], vec![]);
        let mut last = None;
        for _ in 0..cli.runs.min(3) {
            let c = bench::reconcile_cost(&stack, case, settled, unsettled).await?;
            eprintln!("reconcile {case}: {c:?}");
            wall.push(c.wall_ms);
            cpu.push(c.redis_cpu_ms);
            last = Some(c);
        }
        if let Some(c) = last {
            let dynamo: Vec<String> = c.dynamo.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let (w, wmin, wmax) = median(&mut wall);
            let cpu = median(&mut cpu).0;
            let entries = (c.unsettled + c.settled_history).max(1) as f64;
            writeln!(
                md,
                "| {} | {w:.0} \\| {wmin:.0} \\| {wmax:.0} | {} | {} | {cpu:.1} | {:.1} | {} | {} |",
                c.case,
                c.redis_scripts,
                c.redis_calls,
                cpu * 1000.0 / entries,
                dynamo.join(", "),
                c.tombstones
            )?;
        }
    }
    writeln!(
        md,
        "\nReconciliation reads only the time slices that started before its threshold: each slice once (a GET, then one pipeline of `HGETALL` for the buckets it lists), after which a slice with nothing left unsettled is dropped. So settled history costs one read of its slices, in the first run past the threshold (the first case; per entry is per settled order there), and nothing after; the cost grows with the unsettled entries (one BatchGetItem per 100, one conditional PutItem per lost entry, one Redis script per entry healed). Every run also reconciles the other collections of the table (the earlier cases'), which adds a small constant.\n"
    )?;
    Ok(())
}

async fn history(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String) -> anyhow::Result<()> {
    use bench::HistoryPass as P;
    let (collections, active, tries) = if cli.tiny { (50, 2, 5) } else { (1_000, 10, 20) };
    let stack = Stack::launch(&format!("{prefix}-hist"), redis_url, StackOptions::handlers_only(), |_| {}).await?;
    let b = bench::history(&stack, collections).await?;
    writeln!(
        md,
        "## 7. A reconciliation run over history
"
    )?;
    writeln!(
        md,
        "One table of {collections} warmed collections, marked clean by two runs. Before each measured pass, {active} of them get {tries} Tries each whose messages are lost (so each active collection has entries to heal); then one pass is measured: **probe**, the floor (list the collections, read each one's stock, slice count and mark, and batch-read the DynamoDB records, nothing more); **everything**, the reference (every collection reconciled, none skipped, as runs were before); **run**, the subject (the scheduled run: idle collections skipped, the active ones reconciled 8 at a time). Counts as in section 6; wall time against the local emulators. {} passes each, interleaved.\n",
        cli.runs.min(5)
    )?;
    writeln!(
        md,
        "| pass | wall ms (median \\| min \\| max) | collections reconciled / skipped | Redis commands | Redis scripts | DynamoDB requests |\n|---|---|---|---|---|---|"
    )?;
    let mut rows: Vec<(&str, P, Vec<f64>, Option<bench::HistoryRun>)> = vec![
        ("probe (floor)", P::Probe, vec![], None),
        ("everything (reference)", P::Everything, vec![], None),
        ("run (subject)", P::Run, vec![], None),
    ];
    for _ in 0..cli.runs.min(5) {
        for (name, pass, wall, last) in rows.iter_mut() {
            let r = bench::history_pass(&b, collections, active, tries, *pass).await?;
            eprintln!("history {name}: {r:?}");
            wall.push(r.wall_ms);
            *last = Some(r);
        }
    }
    for (name, _, wall, last) in rows.iter_mut() {
        let Some(r) = last else { continue };
        let (w, wmin, wmax) = median(wall);
        let dynamo: Vec<String> = r.dynamo.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            md,
            "| {name} | {w:.0} \\| {wmin:.0} \\| {wmax:.0} | {} / {} | {} | {} | {} |",
            r.reconciled,
            r.idle,
            r.redis_calls,
            r.redis_scripts,
            dynamo.join(", ")
        )?;
    }
    writeln!(
        md,
        "\nAn idle collection costs four Redis reads per cache shard (one pipeline on the shard's slot: stock, slice count, mark, last visit) and a hundredth of a BatchGetItem per run; an active one costs what section 6 measures. On AWS the run's length is set by the active collections (8 at a time) and the probe (Redis pipelines 64 deep, 10 BatchGetItems per 1,000 collections), and a run starts no collection after its 40 s budget: the rest wait for the next minute's run, which takes the longest unvisited first.\n"
    )?;
    Ok(())
}

async fn hot(cli: &Cli, redis_url: &str, prefix: &str, md: &mut String) -> anyhow::Result<()> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").map_err(|_| {
        anyhow::anyhow!("--only hot: set AWS_ENDPOINT_URL_DYNAMODB to a DynamoDB emulator with conflicts")
    })?;
    bench::conflict_counts(&endpoint).await.map_err(|e| {
        anyhow::anyhow!("--only hot: {endpoint} is not infra/moto_serial.py with FLASHSTOCK_DYNAMODB_CONFLICTS=1 ({e})")
    })?;
    let (orders, consumers) = if cli.tiny { (300, 4) } else { (cli.hot_orders as usize, cli.hot_consumers as usize) };
    let deadline = std::time::Duration::from_secs(if cli.tiny { 120 } else { cli.hot_deadline_seconds });
    // Longer than a redelivery (the visibility timeout), so a stall is not taken for the end.
    let quiet = std::time::Duration::from_secs(if cli.tiny { 30 } else { 200 });
    writeln!(md, "## 8. One hot collection under DynamoDB's transaction conflicts\n")?;
    writeln!(
        md,
        "{orders} accepted orders on one collection holding a unit for each, {consumers} persist consumers (batches of up to 1,000 over a 1 s window, visibility timeout 180 s), reconciliation every 60 s with its 45 s threshold and 20-minute give-up: the template's settings. DynamoDB is moto behind `infra/moto_serial.py` with conflict semantics: each request spends {} ms in flight, a transaction naming an item another transaction or write holds is cancelled (`TransactionConflict`), a write into a running transaction's item refused. Watched until every order is durable, or none became durable for {} s, or {} s passed. The same harness and run measure the consumers transacting at once (`FLASHSTOCK_WRITE_TURNS=off`, as before the lease) and taking turns through the collection's lease, {} runs of each, interleaved; cells are median (min–max).\n",
        std::env::var("FLASHSTOCK_DYNAMODB_LATENCY_MS").unwrap_or_else(|_| "10".into()),
        quiet.as_secs(),
        deadline.as_secs(),
        cli.hot_runs
    )?;
    writeln!(
        md,
        "| persist | orders | consumers | runs | every order durable after, s | durable orders/s | transactions | cancelled for conflicts (retried) | re-sent by reconciliation | ended LOST (all runs) | ended FAILED (all runs) |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    let modes = [("at once (no write turns)", false), ("taking write turns", true)];
    let mut runs: Vec<Vec<bench::HotRun>> = vec![Vec::new(), Vec::new()];
    // Interleaved, so that a change in the machine's load touches both alike.
    for rep in 0..cli.hot_runs {
        for (m, (name, turns)) in modes.iter().enumerate() {
            // The template's event source mapping and timing knobs.
            let sopts = StackOptions {
                persist_consumers: consumers,
                persist_batch_size: 1_000,
                batching_window: std::time::Duration::from_secs(1),
                visibility_seconds: 180,
                // The bench runs reconciliation itself, on the same schedule, to count what it did.
                schedule_interval: None,
                run_timers: false,
                ..StackOptions::default()
            };
            let tag = if *turns { "turns" } else { "noturns" };
            let stack = Stack::launch(&format!("{prefix}-hot-{tag}-{rep}"), redis_url, sopts, |c| {
                c.emit_emf = false;
                c.write_turns = *turns;
            })
            .await?;
            let interval = std::time::Duration::from_secs(60);
            let r = bench::hot_collection(&stack, &endpoint, orders, interval, quiet, deadline).await?;
            eprintln!("hot {name} #{rep}: {r:?}");
            runs[m].push(r);
        }
    }
    for ((name, _), rs) in modes.iter().zip(&runs) {
        let col = |f: &dyn Fn(&bench::HotRun) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(f).collect();
            bench::median(&mut v)
        };
        let never = rs.iter().filter(|r| r.all_durable_s.is_none()).count();
        writeln!(
            md,
            "| {name} | {orders} | {consumers} | {} | {}{} | {} | {} | {} | {} | {} | {} |",
            rs.len(),
            cell(col(&|r| r.all_durable_s.unwrap_or(f64::NAN))),
            if never > 0 { format!(" ({never} never)") } else { String::new() },
            cell(col(&|r| r.durable_per_s)),
            cell(col(&|r| r.transactions as f64)),
            cell(col(&|r| r.conflicts as f64)),
            cell(col(&|r| f64::from(r.resent))),
            rs.iter().map(|r| r.lost).sum::<i64>(),
            rs.iter().map(|r| r.failed).sum::<i64>(),
        )?;
    }
    writeln!(md)?;
    Ok(())
}
