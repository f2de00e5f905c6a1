//! BENCHMARKS.md section 9: one hot drop's durable side over stock buckets. The same drop (real
//! Tries, then persist in the template's batches by several consumers at once, then confirms with
//! the tally that counts them into their buckets, cancels and payment-window timeouts) on a collection of 1, 16 and 64 buckets, against the local
//! DynamoDB with conflict semantics. DynamoDB requests, write units (from the request bodies, by
//! DynamoDB's rules) and each stock item's chain of transactions are counted on the wire by the
//! bench's SDK interceptor; every call the real path makes is in them.

use std::time::Instant;

use flashstock::app::AppError;
use flashstock::app::cancel::Canceller;
use flashstock::domain::{CollectionId, OrderId, OrderKey, UserId};
use flashstock::ports::TimeoutMessage;
use flashstock::ports::prelude::*;
use futures::StreamExt;

use crate::bench::BenchApp;

/// What one drop cost on one bucket count.
#[derive(Debug, Clone, Default)]
pub struct BucketsRun {
    pub buckets: u32,
    /// Cache shards (1, or as many as buckets: each shard's Redis stock mirrors one bucket).
    pub shards: u32,
    pub orders: usize,
    /// Wall time of persist, all batches (consumers at once).
    pub persist_s: f64,
    /// The most transactions any one stock item took during persist, per 1,000 durable orders.
    pub persist_chain_per_1000: f64,
    /// Transactions persist sent (chunks, moves, and attempts cancelled for conflicts).
    pub persist_transactions: u64,
    pub wcu_per_durable: f64,
    /// The most transactions any one stock item took during the confirms and cancels.
    pub second_phase_chain: u64,
    pub second_phase_s: f64,
    pub wcu_per_confirm: f64,
    pub wcu_per_cancel: f64,
    pub wcu_per_timeout: f64,
    /// Second-phase answers of 503 (retryable contention).
    pub unavailable: usize,
    pub failed_orders: i64,
    pub identity_failures: Vec<String>,
}

fn key(id: &CollectionId, i: usize) -> anyhow::Result<OrderKey> {
    Ok(OrderKey::new(id.clone(), UserId::parse(&format!("bb{i}"))?, OrderId::parse("o")?))
}

/// The write units and the longest per-item chain since the last take.
fn take(b: &BenchApp) -> (f64, u64) {
    let w = b.dynamo_requests.take_writes();
    let items = b.dynamo_requests.take_item_transactions();
    (w.write_units, items.values().copied().max().unwrap_or(0))
}

/// Runs the drop: `orders` Tries of one unit, persist in batches of 1,000 by `consumers` at once,
/// then a third confirmed and a third cancelled (`at_once` calls in flight), a third timed out in
/// timer batches of 10.
pub async fn run(
    stack: &flashstock_local::stack::Stack,
    orders: usize,
    (buckets, shards): (u32, u32),
    consumers: usize,
    at_once: usize,
) -> anyhow::Result<BucketsRun> {
    let b = BenchApp::new(stack, |s| s.emit_emf = false).await?;
    let id = CollectionId::parse(&format!("bk{buckets}s{shards}-{}", ulid::Ulid::new().to_string().to_lowercase()))?;
    b.collection_spread(&id, orders as u64, Some(buckets), Some(shards)).await?;
    // The Tries: real deductions, their messages left on the stack's queue (no pollers run).
    let tried: Vec<anyhow::Result<()>> = futures::stream::iter(0..orders)
        .map(|i| {
            let (b, id) = (&b, &id);
            async move {
                let k = key(id, i)?;
                let input = flashstock::app::reserve::ReserveInput {
                    collection: id.clone(),
                    order: k.order.clone(),
                    user: k.user.clone(),
                    quantity: 1,
                };
                // A Try that met a shard move answers 503 (retryable): retried as a storefront does.
                for attempt in 1..=50u64 {
                    match b.app.reserve(input.clone(), flashstock::now_ms()).await {
                        Err(AppError::Unavailable(_)) if attempt < 50 => {
                            tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await
                        }
                        other => return other.map(|_| ()).map_err(anyhow::Error::from),
                    }
                }
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    tried.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let bodies = receive_all(stack, orders).await?;
    take(&b);
    b.dynamo_requests.take();
    let started = Instant::now();
    let batches: Vec<Vec<(String, String)>> = bodies.chunks(1_000).map(<[_]>::to_vec).collect();
    let failures: usize = futures::stream::iter(batches)
        .map(|batch| {
            let b = &b;
            async move {
                let records: Vec<(String, &String)> = batch.iter().map(|(id, body)| (id.clone(), body)).collect();
                let ev = flashstock::lambda::sqs_event(&records);
                flashstock::lambda::persist_event(&b.app, ev, flashstock::now_ms()).await.batch_item_failures.len()
            }
        })
        .buffer_unordered(consumers)
        .collect::<Vec<usize>>()
        .await
        .into_iter()
        .sum();
    anyhow::ensure!(failures == 0, "persist left {failures} orders unresolved");
    let persist_s = started.elapsed().as_secs_f64();
    let requests = b.dynamo_requests.take();
    let (wcu, chain) = take(&b);
    let mut run = BucketsRun {
        buckets,
        shards,
        orders,
        persist_s,
        persist_chain_per_1000: chain as f64 * 1_000.0 / orders as f64,
        persist_transactions: requests.get("TransactWriteItems").copied().unwrap_or(0),
        wcu_per_durable: wcu / orders as f64,
        ..BucketsRun::default()
    };
    // The second phase: confirms, then cancels, each `at_once` in flight; then the timers.
    let third = orders / 3;
    let started = Instant::now();
    let (confirmed, wcu_c, chain_c) = second_phase(&b, &id, 0..third, at_once, true).await?;
    // A confirm's units are counted into its bucket later, by reconciliation's tally: its cost
    // is the confirms' too.
    let rec = b.app.ledger.collection(&id).await?.ok_or_else(|| anyhow::anyhow!("collection vanished"))?;
    let reserved: Vec<i64> = rec.buckets.iter().map(|l| l.reserved).collect();
    let tallied = b.app.tally(&id, &reserved, usize::MAX).await?;
    anyhow::ensure!(tallied as usize == third, "tallied {tallied} of {third} confirms");
    let (wcu_t, chain_t) = take(&b);
    let (wcu_c, chain_c) = (wcu_c + wcu_t, chain_c.max(chain_t));
    let (cancelled, wcu_x, chain_x) = second_phase(&b, &id, third..2 * third, at_once, false).await?;
    run.second_phase_s = started.elapsed().as_secs_f64();
    run.unavailable = confirmed + cancelled;
    run.wcu_per_confirm = wcu_c / third as f64;
    run.wcu_per_cancel = wcu_x / third as f64;
    run.second_phase_chain = chain_c.max(chain_x);
    let due = flashstock::now_ms() + 86_400_000;
    let timers: Vec<TimeoutMessage> = (2 * third..orders)
        .map(|i| Ok(TimeoutMessage::new(&key(&id, i)?, due / 1000)))
        .collect::<anyhow::Result<_>>()?;
    for batch in timers.chunks(10) {
        let (failed, _) = b.app.fire_timers(batch.to_vec(), due).await;
        anyhow::ensure!(failed.is_empty(), "timers failed: {failed:?}");
    }
    run.wcu_per_timeout = take(&b).0 / (orders - 2 * third) as f64;
    let figures = stack.store_figures(id.as_str()).await?;
    run.failed_orders = figures.by_status.get("FAILED").copied().unwrap_or(0);
    run.identity_failures = figures.identity_failures(false);
    let rec = b.app.ledger.collection(&id).await?.ok_or_else(|| anyhow::anyhow!("collection vanished"))?;
    run.identity_failures.extend(rec.violations().iter().map(|v| format!("{v:?}")));
    Ok(run)
}

/// Confirms (or cancels) orders `range`, `at_once` in flight: the 503s, write units and the
/// longest chain on one item.
async fn second_phase(
    b: &BenchApp,
    id: &CollectionId,
    range: std::ops::Range<usize>,
    at_once: usize,
    confirm: bool,
) -> anyhow::Result<(usize, f64, u64)> {
    take(b);
    let answers: Vec<anyhow::Result<bool>> = futures::stream::iter(range)
        .map(|i| async move {
            let k = key(id, i)?;
            let now = flashstock::now_ms();
            let r = if confirm {
                b.app.confirm(&k, now).await.map(|_| ())
            } else {
                b.app.cancel(&k, Canceller::Buyer, now).await.map(|_| ())
            };
            match r {
                Ok(()) => Ok(false),
                Err(AppError::Unavailable(_)) => Ok(true),
                Err(e) => Err(anyhow::anyhow!("{k}: {e}")),
            }
        })
        .buffer_unordered(at_once)
        .collect()
        .await;
    let unavailable = answers.into_iter().collect::<anyhow::Result<Vec<bool>>>()?.into_iter().filter(|&u| u).count();
    let (wcu, chain) = take(b);
    Ok((unavailable, wcu, chain))
}

/// Takes `n` messages off the stack's reservation queue: (message id, body).
async fn receive_all(stack: &flashstock_local::stack::Stack, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(n);
    // Gives up only after 60 s without a message (moto's SQS is slow on a loaded machine).
    let mut last_progress = Instant::now();
    while out.len() < n {
        anyhow::ensure!(last_progress.elapsed().as_secs() < 60, "only {} of {n} messages arrived", out.len());
        let r = stack
            .sqs
            .receive_message()
            .queue_url(&stack.queues.reservations)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await?;
        let mut delete = stack.sqs.delete_message_batch().queue_url(&stack.queues.reservations);
        let mut any = false;
        for (k, m) in r.messages().iter().enumerate() {
            if let (Some(id), Some(body), Some(receipt)) = (m.message_id(), m.body(), m.receipt_handle()) {
                out.push((id.to_owned(), body.to_owned()));
                delete = delete.entries(
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(k.to_string())
                        .receipt_handle(receipt)
                        .build()?,
                );
                any = true;
            }
        }
        if any {
            delete.send().await?;
            last_progress = Instant::now();
        }
    }
    Ok(out)
}

/// Writes section 9: each bucket count `runs` times, interleaved; cells median (min–max).
pub async fn section(
    redis_url: &str,
    prefix: &str,
    tiny: bool,
    runs: u32,
    md: &mut String,
) -> anyhow::Result<Vec<((u32, u32), Vec<BucketsRun>)>> {
    use flashstock_local::stack::{Stack, StackOptions};
    use std::fmt::Write as _;
    // (stock buckets, cache shards): one shard, or a shard per bucket (Redis takes each order
    // from its buyer's own bucket's stock, so persist never meets a short bucket).
    let (orders, counts): (usize, &[(u32, u32)]) =
        if tiny { (150, &[(1, 1), (16, 16)]) } else { (6_000, &[(1, 1), (16, 1), (16, 16), (64, 1), (64, 64)]) };
    let (consumers, at_once) = (4, 200);
    let stack = Stack::launch(&format!("{prefix}-bk"), redis_url, StackOptions::handlers_only(), |c| {
        c.emit_emf = false;
    })
    .await?;
    let mut all: Vec<((u32, u32), Vec<BucketsRun>)> = counts.iter().map(|&k| (k, Vec::new())).collect();
    for _ in 0..runs {
        for (k, rs) in &mut all {
            let r = run(&stack, orders, *k, consumers, at_once).await?;
            eprintln!("buckets/shards {k:?}: {r:?}");
            rs.push(r);
        }
    }
    writeln!(md, "## 9. One hot drop's durable side over stock buckets\n")?;
    writeln!(
        md,
        "{orders} real Tries of one unit on one collection holding {orders}, on 1, 16 and 64 stock buckets (with one cache shard, and with a cache shard per bucket), in one run ({runs} runs of each, interleaved; cells median (min–max)). Persist: batches of 1,000 (the template's), {consumers} consumers at once, taking the buckets' write turns. Then a third of the orders confirmed (each a write of its order alone) and tallied into their buckets as reconciliation does (counted with the confirms), a third cancelled by the buyer, {at_once} calls in flight, and a third timed out by timers in batches of 10. DynamoDB is the local emulator with conflict semantics (`infra/moto_serial.py`, 10 ms in flight per request, one request served at a time). Requests, write units (from the request bodies by DynamoDB's rules: 1 per KB per item, ×2 in a transaction) and each stock item's transactions (attempts cancelled for conflicts included) are counted on the wire. The floor for a durable order is one conditional put of its own item, 1 WCU (2 inside a transaction).\n"
    )?;
    writeln!(
        md,
        "| buckets | cache shards | persist s | longest chain on one item per 1,000 durable orders | persist transactions | WCU per durable order | confirms + cancels s | longest chain on one item (confirms with their tally, cancels) | 503s | WCU per confirm (its tally included) | WCU per cancel | WCU per timed-out order | FAILED | identity failures |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for (k, rs) in &all {
        let col = |f: &dyn Fn(&BucketsRun) -> f64| {
            let mut v: Vec<f64> = rs.iter().map(f).collect();
            let (m, lo, hi) = crate::bench::median(&mut v);
            if lo == hi { format!("{m:.2}") } else { format!("{m:.2} ({lo:.2}–{hi:.2})") }
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.0,
            k.1,
            col(&|r| r.persist_s),
            col(&|r| r.persist_chain_per_1000),
            col(&|r| r.persist_transactions as f64),
            col(&|r| r.wcu_per_durable),
            col(&|r| r.second_phase_s),
            col(&|r| r.second_phase_chain as f64),
            col(&|r| r.unavailable as f64),
            col(&|r| r.wcu_per_confirm),
            col(&|r| r.wcu_per_cancel),
            col(&|r| r.wcu_per_timeout),
            rs.iter().map(|r| r.failed_orders).sum::<i64>(),
            rs.iter().map(|r| r.identity_failures.len()).sum::<usize>(),
        )?;
    }
    writeln!(
        md,
        "\nIndex writes (`byExpiry`, `byTally`) are not in the write units. The model of these figures at AWS scale is in docs/HOT-DROP-MODEL.md.\n"
    )?;
    Ok(all)
}
