//! Benchmarks on the real local stack (never timed tests): the Redis cost of the Lua scripts
//! against a no-op floor, memory per pending reservation, and the cost of one reconciliation run
//! by number of unsettled entries. Figures are counted (requests, calls, bytes) or read from
//! Redis's own accounting, and repeated runs report median, min and max.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use flashstock::adapters::{DynamoLedger, RedisCache, SqsQueue};
use flashstock::app::{App, Settings, reserve::ReserveInput};
use flashstock::domain::{CollectionId, CollectionSpec, OrderId, OrderKey, UserId};
use flashstock::ports::SettleAs;
use flashstock::ports::prelude::*;
use futures::StreamExt;

/// Counts SDK requests per operation, and the write units and inventory-item writes of what they
/// write, by DynamoDB's sizing rules from the request bodies themselves (moto reports no consumed
/// capacity for transactions).
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>, Arc<Mutex<Writes>>, Arc<Mutex<BTreeMap<String, u64>>>);

/// Writes seen on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Writes {
    pub write_units: f64,
    pub inventory_item_writes: u64,
    pub items_written: u64,
}

impl RequestCounter {
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default()
    }
    pub fn take_writes(&self) -> Writes {
        self.1.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default()
    }
    /// Transactions sent per stock item (`COL#…` keys updated inside a transaction), attempts
    /// cancelled for conflicts included: each item's chain of transactions.
    pub fn take_item_transactions(&self) -> BTreeMap<String, u64> {
        self.2.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default()
    }
}

/// The stock items a TransactWriteItems body updates.
fn stock_items(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    v["TransactItems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["Update"]["Key"]["pk"]["S"].as_str())
        .filter(|pk| pk.starts_with("COL#"))
        .map(str::to_owned)
        .collect()
}

/// DynamoDB's item size: attribute names plus values (strings by UTF-8 length, numbers by
/// significant digits / 2 + 1, booleans and nulls 1 byte, containers 3 bytes + contents).
pub fn item_size(item: &serde_json::Map<String, serde_json::Value>) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        let Some((t, x)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
        match t.as_str() {
            "S" | "B" => x.as_str().map_or(0, str::len),
            "N" => {
                let digits = x.as_str().unwrap_or("").trim_start_matches(['-', '0']).replace('.', "");
                digits.trim_end_matches('0').len().div_ceil(2) + 1
            }
            "BOOL" | "NULL" => 1,
            "M" => 3 + x.as_object().map_or(0, |m| m.iter().map(|(k, v)| k.len() + value(v)).sum()),
            "L" => 3 + x.as_array().map_or(0, |l| l.iter().map(|v| 1 + value(v)).sum()),
            _ => x.to_string().len(),
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Write units of one request body: 1 per started KB per item written, doubled inside a
/// transaction. An Update is charged for the item's size after the update; the items flashstock
/// updates are well under 1 KB, so 1 unit each.
fn account(op: &str, body: &[u8], w: &mut Writes) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let mut one = |put: Option<&serde_json::Value>, update_key: Option<&serde_json::Value>, factor: f64| {
        if let Some(item) = put.and_then(|i| i.as_object()) {
            w.write_units += factor * item_size(item).div_ceil(1024).max(1) as f64;
            w.items_written += 1;
        }
        if let Some(key) = update_key {
            w.write_units += factor;
            w.items_written += 1;
            if key["pk"]["S"].as_str().is_some_and(|pk| pk.starts_with("COL#")) {
                w.inventory_item_writes += 1;
            }
        }
    };
    match op {
        "TransactWriteItems" => {
            for t in v["TransactItems"].as_array().into_iter().flatten() {
                one(t["Put"].get("Item"), t["Update"].get("Key"), 2.0);
            }
        }
        "PutItem" => one(v.get("Item"), None, 1.0),
        "UpdateItem" => one(None, v.get("Key"), 1.0),
        _ => {}
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }
    fn read_before_transmit(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Every attempt that goes on the wire (retries included), by DynamoDB operation.
        let op =
            ctx.request().headers().get("x-amz-target").and_then(|t| t.rsplit('.').next()).unwrap_or("?").to_owned();
        if let (Some(body), Ok(mut w)) = (ctx.request().body().bytes(), self.1.lock()) {
            account(&op, body, &mut w);
            if op == "TransactWriteItems"
                && let Ok(mut items) = self.2.lock()
            {
                for pk in stock_items(body) {
                    *items.entry(pk).or_default() += 1;
                }
            }
        }
        if let Ok(mut m) = self.0.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

/// Redis's own accounting, read with INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisStats {
    pub cpu_seconds: f64,
    pub used_memory: i64,
    /// Every command executed, including those run inside scripts.
    pub calls: i64,
    /// Script invocations (EVALSHA): round trips that ran a script.
    pub evalsha: i64,
}

pub async fn redis_stats(con: &mut impl redis::aio::ConnectionLike) -> anyhow::Result<RedisStats> {
    let info: String = redis::cmd("INFO").arg("everything").query_async(con).await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let calls = info
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<i64>().ok())
        .sum();
    let evalsha = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:"))
        .and_then(|v| v.split("calls=").nth(1)?.split(',').next()?.parse::<i64>().ok())
        .unwrap_or(0);
    Ok(RedisStats {
        evalsha,
        cpu_seconds: field("used_cpu_user") + field("used_cpu_sys"),
        used_memory: field("used_memory") as i64,
        calls,
    })
}

/// `usec_per_call` of one command from `INFO commandstats`.
pub async fn usec_per_call(con: &mut impl redis::aio::ConnectionLike, cmd: &str) -> anyhow::Result<f64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(con).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))
        .and_then(|v| v.split("usec_per_call=").nth(1)?.split(',').next()?.parse().ok())
        .unwrap_or(f64::NAN))
}

pub fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The `i`-th of the benchmarks' 5,000 buyers.
pub fn buyer(i: usize) -> anyhow::Result<UserId> {
    Ok(UserId::parse(&format!("u{}", i % 5_000))?)
}

/// The body of the reservation message a Try of one unit of `order` by `user` publishes.
pub fn message_body(
    order: OrderId,
    collection: &CollectionId,
    user: UserId,
    accepted_at_ms: i64,
) -> anyhow::Result<String> {
    let m = flashstock::ports::ReservationMessage {
        order_id: order,
        collection_id: collection.clone(),
        user_id: user,
        quantity: 1,
        accepted_at_ms,
    };
    Ok(serde_json::to_string(&m)?)
}

/// The app on real adapters with a counting DynamoDB client, for in-process benchmarks.
pub struct BenchApp {
    pub app: App<RedisCache, DynamoLedger, SqsQueue>,
    pub dynamo_requests: RequestCounter,
    pub redis: flashstock::adapters::redis_cache::Conn,
}

impl BenchApp {
    pub async fn new(
        stack: &flashstock_local::stack::Stack,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let sdk = flashstock::adapters::aws_sdk_config().await;
        let counter = RequestCounter::default();
        let dynamo_cfg = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let c = &stack.config;
        let url = c.redis_url().ok_or_else(|| anyhow::anyhow!("the benchmarks need a Redis URL"))?.expose();
        let cache = RedisCache::connect(url, &c.key_prefix, c.redis_cluster).await?;
        let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::from_conf(dynamo_cfg), &c.table);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), &c.reservation_queue_url, &c.timeout_queue_url);
        let mut settings = Settings::from(c);
        tweak(&mut settings);
        let redis = flashstock::adapters::redis_cache::connect(url, c.redis_cluster).await?;
        Ok(Self { app: App::new(cache, ledger, queue, settings), dynamo_requests: counter, redis })
    }

    /// Creates and warms a collection of `quantity` units (the default stock buckets).
    pub async fn collection(&self, id: &str, quantity: u64) -> anyhow::Result<CollectionId> {
        self.collection_in(id, quantity, None).await
    }

    /// Creates and warms a collection of `quantity` units over `buckets` stock buckets.
    pub async fn collection_in(&self, id: &str, quantity: u64, buckets: Option<u32>) -> anyhow::Result<CollectionId> {
        let id = CollectionId::parse(id)?;
        self.collection_spread(&id, quantity, buckets, None).await?;
        Ok(id)
    }

    /// Creates and warms collection `id` of `quantity` units over `buckets` stock buckets and
    /// `shards` cache shards (defaults where `None`).
    pub async fn collection_spread(
        &self,
        id: &CollectionId,
        quantity: u64,
        buckets: Option<u32>,
        shards: Option<u32>,
    ) -> anyhow::Result<()> {
        let spec =
            CollectionSpec::parse(Some(quantity as i64), None, None, buckets.map(i64::from), shards.map(i64::from))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.app.create_collection(id, &spec, flashstock::now_ms()).await?;
        self.app.warm_up(id).await?;
        Ok(())
    }

    /// `n` accepted Tries, `concurrency` at a time (through the use case, not HTTP).
    pub async fn tries(
        &self,
        id: &CollectionId,
        tag: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<OrderKey>> {
        let out: Vec<anyhow::Result<OrderKey>> = futures::stream::iter(0..n)
            .map(|i| async move {
                let order = OrderId::parse(&format!("{tag}-{i}"))?;
                let user = buyer(i)?;
                let input =
                    ReserveInput { collection: id.clone(), order: order.clone(), user: user.clone(), quantity: 1 };
                self.app.reserve(input, flashstock::now_ms()).await?;
                Ok(OrderKey::new(id.clone(), user, order))
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        out.into_iter().collect()
    }
}

/// The cost of one reconciliation run.
#[derive(Debug, Clone)]
pub struct ReconcileCost {
    pub case: String,
    pub unsettled: usize,
    pub settled_history: usize,
    pub wall_ms: f64,
    pub redis_calls: i64,
    pub redis_scripts: i64,
    pub redis_cpu_ms: f64,
    pub dynamo: BTreeMap<String, u64>,
    pub tombstones: u32,
}

/// Builds `settled` settled entries and `unsettled` lost ones on a fresh collection, then runs
/// reconciliation once (threshold 0) and measures it.
pub async fn reconcile_cost(
    stack: &flashstock_local::stack::Stack,
    case: &str,
    settled: usize,
    unsettled: usize,
) -> anyhow::Result<ReconcileCost> {
    let b = BenchApp::new(stack, |s| {
        s.fault_drop_message_percent = 100; // every Try's message is lost
        s.reconcile_threshold_ms = 0;
        s.reconcile_give_up_ms = 0; // and given up at once: the run tombstones (its costliest path)
        s.emit_emf = false;
    })
    .await?;
    let id = b.collection(&format!("rc-{}", ulid::Ulid::new().to_string().to_lowercase()), 1_000_000).await?;
    if settled > 0 {
        let done = b.tries(&id, &format!("{id}-s"), settled, 64).await?;
        for chunk in done.chunks(500) {
            b.app.cache.settle(&id, 1, chunk, SettleAs::Durable, Some(i64::MAX), flashstock::now_ms()).await?;
        }
    }
    b.tries(&id, &format!("{id}-l"), unsettled, 64).await?;
    // Other collections in the table are reconciled too; measure this one's run alone.
    let mut con = b.redis.clone();
    b.dynamo_requests.take();
    let before = redis_stats(&mut con).await?;
    let t = Instant::now();
    let report = b.app.reconcile(flashstock::now_ms()).await?;
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let after = redis_stats(&mut con).await?;
    let tombstones = report.collections.get(id.as_str()).map(|c| c.tombstones_written).unwrap_or(0);
    Ok(ReconcileCost {
        case: case.to_owned(),
        unsettled,
        settled_history: settled,
        wall_ms,
        redis_calls: after.calls - before.calls - 1,
        redis_scripts: after.evalsha - before.evalsha,
        redis_cpu_ms: (after.cpu_seconds - before.cpu_seconds) * 1e3,
        dynamo: b.dynamo_requests.take(),
        tombstones,
    })
}

/// Durable write amplification of one hot collection.
#[derive(Debug, Clone)]
pub struct Amplification {
    pub orders: usize,
    pub batch_size: usize,
    pub requests: BTreeMap<String, u64>,
    pub writes: Writes,
}

/// Persists `orders` accepted orders of one collection through the persist handler in SQS
/// batches of `batch_size`, counting what reaches DynamoDB.
pub async fn amplification(
    stack: &flashstock_local::stack::Stack,
    orders: usize,
    batch_size: usize,
) -> anyhow::Result<Amplification> {
    let b = BenchApp::new(stack, |s| s.emit_emf = false).await?;
    let id = b.collection(&format!("wa-{}", ulid::Ulid::new().to_string().to_lowercase()), orders as u64).await?;
    let now = flashstock::now_ms();
    let msgs: Vec<(String, String)> = (0..orders)
        .map(|i| Ok((format!("m{i}"), message_body(OrderId::parse(&format!("{id}-{i:06}"))?, &id, buyer(i)?, now)?)))
        .collect::<anyhow::Result<_>>()?;
    b.dynamo_requests.take();
    b.dynamo_requests.take_writes();
    for chunk in msgs.chunks(batch_size) {
        let r = flashstock::lambda::persist_event(&b.app, flashstock::lambda::sqs_event(chunk), now).await;
        anyhow::ensure!(r.batch_item_failures.is_empty(), "persist reported failures");
    }
    Ok(Amplification {
        orders,
        batch_size,
        requests: b.dynamo_requests.take(),
        writes: b.dynamo_requests.take_writes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_sizes_follow_dynamodb_rules() {
        let item: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"pk": {"S": "ORD#abc"}, "quantity": {"N": "12"}, "tookStock": {"BOOL": true}, "big": {"N": "1000"}}"#,
        )
        .unwrap();
        // pk 2+7, quantity 8+2, tookStock 9+1, big 3+2
        assert_eq!(item_size(&item), 9 + 10 + 10 + 5);
    }

    #[test]
    fn transactions_cost_double_and_inventory_writes_are_counted() {
        let body = br#"{"TransactItems": [
            {"Update": {"Key": {"pk": {"S": "COL#c"}}}},
            {"Put": {"Item": {"pk": {"S": "ORD#1"}}}},
            {"Put": {"Item": {"pk": {"S": "ORD#2"}}}}]}"#;
        let mut w = Writes::default();
        account("TransactWriteItems", body, &mut w);
        assert_eq!(w, Writes { write_units: 6.0, inventory_item_writes: 1, items_written: 3 });
    }
}

/// The four functions' bootstraps, by binary name.
pub const FUNCTIONS: [&str; 4] = ["flashstock-api", "flashstock-persist", "flashstock-cancel", "flashstock-reconcile"];

/// What one function costs to start and to keep: cold start, and resident memory after many
/// invocations.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    pub init_ms: f64,
    pub cold_start_ms: f64,
    pub peak_rss: u64,
    pub rss: u64,
}

/// A source of realistic events for one function on a deployment: Tries on a big collection
/// (api), a batch of ten reservation messages (persist: fresh the first time, redelivered after),
/// cancels of orders never seen (cancel: empty rollback, a durable tombstone each), and the
/// schedule's event (reconcile).
pub struct Events {
    collection: CollectionId,
    messages: Vec<String>,
    tag: String,
}

impl Events {
    pub async fn prepare(stack: &flashstock_local::stack::Stack, tag: &str) -> anyhow::Result<Self> {
        let b = BenchApp::new(stack, |s| s.emit_emf = false).await?;
        let collection = b.collection(&format!("fp-{tag}"), 1_000_000).await?;
        // Ten accepted Tries whose messages the persist function will receive.
        let orders = b.tries(&collection, &format!("fp-{tag}-m"), 10, 10).await?;
        let now = flashstock::now_ms();
        let messages = orders
            .into_iter()
            .enumerate()
            .map(|(i, o)| message_body(o.order, &collection, buyer(i)?, now))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { collection, messages, tag: tag.to_owned() })
    }

    /// The `i`-th event for `function`.
    pub fn event(&self, function: &str, i: usize) -> anyhow::Result<serde_json::Value> {
        use flashstock_local::runtime_api::{http_event, sqs_event};
        Ok(match function {
            "flashstock-api" => http_event(
                "POST",
                &format!("/v1/collections/{}/reservations", self.collection),
                buyer(i)?.as_str(),
                &[],
                Some(serde_json::json!({ "orderId": format!("fp-{}-t{i}", self.tag), "quantity": 1 })),
            )?,
            "flashstock-persist" => {
                let records: Vec<(String, &String)> =
                    self.messages.iter().enumerate().map(|(k, m)| (format!("m{i}-{k}"), m)).collect();
                sqs_event(&records)
            }
            "flashstock-cancel" => {
                let path = format!("/v1/collections/{}/reservations/fp-{}-g{i}/cancel", self.collection, self.tag);
                http_event("POST", &path, "ghost", &[], None)?
            }
            _ => flashstock_local::schedule::scheduled_event(),
        })
    }
}

/// Starts `binary` (a release bootstrap) with the first event already waiting, as Lambda does,
/// and measures process start → first request for work (init) and → first answer (cold start).
/// Then, when `invocations` > 1, invokes it that many times in all and reads its resident memory.
pub async fn footprint(
    stack: &flashstock_local::stack::Stack,
    binary: &std::path::Path,
    events: &Events,
    invocations: usize,
) -> anyhow::Result<Footprint> {
    let mut f = flashstock_local::runtime_api::Function::start(
        binary,
        &flashstock_local::runtime_api::function_env(&stack.config),
    )
    .await?;
    let name = f.name.clone();
    let first = f.invoke(events.event(&name, 0)?).await?;
    anyhow::ensure!(first.is_ok(), "{name}: first invocation failed: {first:?}");
    let ms = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let mut out = Footprint { init_ms: ms(f.init_time()), cold_start_ms: ms(f.cold_start()), ..Default::default() };
    for i in 1..invocations {
        let r = f.invoke(events.event(&name, i)?).await?;
        anyhow::ensure!(r.is_ok(), "{name}: invocation {i} failed: {r:?}");
    }
    if let Some((peak, now)) = f.rss() {
        (out.peak_rss, out.rss) = (peak, now);
    }
    Ok(out)
}

/// Bootstrap sizes written by `infra/build-lambdas.sh` (`<binary> <bytes>` per line), by arch.
pub fn bootstrap_sizes(dir: &std::path::Path) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for arch in ["arm64", "x86_64"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(format!("bootstrap-sizes-{arch}.txt"))) {
            let sizes: BTreeMap<String, u64> = text
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace();
                    Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
                })
                .collect();
            out.insert(arch.to_owned(), sizes);
        }
    }
    out
}

/// One measured reconciliation pass over many collections.
#[derive(Debug, Clone, Default)]
pub struct HistoryRun {
    pub wall_ms: f64,
    pub redis_calls: i64,
    pub redis_scripts: i64,
    pub dynamo: BTreeMap<String, u64>,
    pub reconciled: u32,
    pub idle: u32,
}

/// Which pass to measure over the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPass {
    /// Listing, probing and batch-reading every collection, nothing more: the least a run can do.
    Probe,
    /// Every collection reconciled, none skipped (the run before idle collections were skipped).
    Everything,
    /// The scheduled run: idle collections skipped.
    Run,
}

/// A table of `collections` warmed collections, marked clean by two runs.
pub async fn history(stack: &flashstock_local::stack::Stack, collections: usize) -> anyhow::Result<BenchApp> {
    let b = BenchApp::new(stack, |s| {
        s.fault_drop_message_percent = 100; // every Try's message is lost: each needs healing
        s.reconcile_threshold_ms = 0;
        s.reconcile_give_up_ms = 0; // given up at once, as section 6
        s.emit_emf = false;
    })
    .await?;
    let made: Vec<anyhow::Result<CollectionId>> = futures::stream::iter(0..collections)
        .map(|i| {
            let b = &b;
            async move { b.collection(&format!("h{i:05}"), 100).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    made.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    for _ in 0..2 {
        b.app.reconcile(flashstock::now_ms()).await?;
    }
    Ok(b)
}

/// Makes `active` of the history's collections active (`tries` Tries each, messages lost), then
/// measures one `pass`.
pub async fn history_pass(
    b: &BenchApp,
    collections: usize,
    active: usize,
    tries: usize,
    pass: HistoryPass,
) -> anyhow::Result<HistoryRun> {
    for i in 0..active {
        let id = CollectionId::parse(&format!("h{:05}", i * 97 % collections.max(1)))?;
        b.tries(&id, &format!("a{}", ulid::Ulid::new().to_string().to_lowercase()), tries, 8).await?;
    }
    let mut con = b.redis.clone();
    b.dynamo_requests.take();
    let before = redis_stats(&mut con).await?;
    let t = Instant::now();
    let (reconciled, idle) = match pass {
        HistoryPass::Probe => {
            let ids = b.app.ledger.collections().await?;
            let records = b.app.ledger.collection_records(&ids).await?;
            let shards: Vec<_> = records.iter().map(|r| (r.id.clone(), r.spec.cache_shards)).collect();
            let probes = b.app.cache.probe(&shards).await?;
            (0, probes.len() as u32)
        }
        HistoryPass::Everything => {
            let ids = b.app.ledger.collections().await?;
            let r = b.app.reconcile_collections(&ids, flashstock::now_ms()).await;
            (r.collections_checked, 0)
        }
        HistoryPass::Run => {
            let r = b.app.reconcile(flashstock::now_ms()).await?;
            (r.collections_checked, r.collections_idle)
        }
    };
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let after = redis_stats(&mut con).await?;
    Ok(HistoryRun {
        wall_ms,
        redis_calls: after.calls - before.calls - 1,
        redis_scripts: after.evalsha - before.evalsha,
        dynamo: b.dynamo_requests.take(),
        reconciled,
        idle,
    })
}

/// One hot collection's durable path under DynamoDB's transaction conflicts.
#[derive(Debug, Clone, Default)]
pub struct HotRun {
    pub orders: usize,
    /// Orders RESERVED in DynamoDB at the end.
    pub durable: i64,
    /// Seconds from the first Try until every order was durable (None: some never were).
    pub all_durable_s: Option<f64>,
    /// Seconds from the first Try until the last order that became durable did.
    pub last_durable_s: f64,
    /// Durable orders per second over that time.
    pub durable_per_s: f64,
    /// Transactions the emulator saw, and how many it cancelled for a conflict.
    pub transactions: u64,
    pub conflicts: u64,
    /// Accepted orders that ended CANCELLED (reconciliation's LOST: no buyer cancels here) or
    /// FAILED while DynamoDB had the stock for them (the collection holds every order's unit).
    pub lost: i64,
    pub failed: i64,
    /// Messages reconciliation re-sent (orders with no durable record past its threshold),
    /// and the runs it made.
    pub resent: u32,
    pub reconcile_runs: u32,
}

/// The conflict counts of a DynamoDB emulator started with `FLASHSTOCK_DYNAMODB_CONFLICTS=1`.
pub async fn conflict_counts(endpoint: &str) -> anyhow::Result<(u64, u64)> {
    let v: serde_json::Value = reqwest::get(format!("{endpoint}/flashstock/conflicts")).await?.json().await?;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Ok((n("transactions"), n("transaction_conflicts")))
}

/// `orders` accepted Tries on one collection with stock for all of them, made durable by the
/// stack's persist consumers, reconciled every `interval` (as the schedule would, the reports
/// kept), watched until every order is durable, or none became durable for `quiet` (longer than
/// a redelivery), or `deadline` passes.
pub async fn hot_collection(
    stack: &flashstock_local::stack::Stack,
    dynamodb: &str,
    orders: usize,
    interval: std::time::Duration,
    quiet: std::time::Duration,
    deadline: std::time::Duration,
) -> anyhow::Result<HotRun> {
    let b = BenchApp::new(stack, |s| s.emit_emf = false).await?;
    let id = b.collection(&format!("hot-{}", ulid::Ulid::new().to_string().to_lowercase()), orders as u64).await?;
    let (tx0, c0) = conflict_counts(dynamodb).await?;
    let start = Instant::now();
    // Through the stack's own app: its messages go to the queue its consumers read.
    let _ = futures::stream::iter(0..orders)
        .map(|i| {
            let (app, id) = (&stack.app, id.clone());
            async move {
                let input = ReserveInput {
                    collection: id.clone(),
                    order: OrderId::parse(&format!("h{i:06}"))?,
                    user: buyer(i)?,
                    quantity: 1,
                };
                app.reserve(input, flashstock::now_ms()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<anyhow::Result<_>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Reconciliation on its schedule, its reports summed.
    let counts = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let (app, seen) = (stack.app.clone(), counts.clone());
    let schedule = tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tick.tick().await;
            if let Ok(r) = app.reconcile(flashstock::now_ms()).await {
                seen[0].fetch_add(r.resent, Ordering::Relaxed);
                seen[1].fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut all_durable_s = None;
    let (mut durable, mut last_durable_s) = (0, 0.0);
    while start.elapsed() < deadline && start.elapsed().as_secs_f64() - last_durable_s < quiet.as_secs_f64() {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if let Some(rec) = stack.app.ledger.collection(&id).await? {
            if rec.levels.reserved > durable {
                durable = rec.levels.reserved;
                last_durable_s = start.elapsed().as_secs_f64();
            }
            if durable as usize >= orders {
                all_durable_s = Some(last_durable_s);
                break;
            }
        }
    }
    schedule.abort();
    let (tx1, c1) = conflict_counts(dynamodb).await?;
    let figures = stack.store_figures(id.as_str()).await?;
    Ok(HotRun {
        orders,
        durable,
        all_durable_s,
        last_durable_s,
        durable_per_s: durable as f64 / last_durable_s.max(1e-9),
        transactions: tx1 - tx0,
        conflicts: c1 - c0,
        lost: figures.by_status.get("CANCELLED").copied().unwrap_or(0),
        failed: figures.by_status.get("FAILED").copied().unwrap_or(0),
        resent: counts[0].load(Ordering::Relaxed),
        reconcile_runs: counts[1].load(Ordering::Relaxed),
    })
}
