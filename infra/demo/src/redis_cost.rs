//! Redis CPU and memory of the Try path, measured against the seed design's decrease: one harness
//! runs the floors, the reference, the Try (accepting and refused) and the release in one run, the
//! same way (EVALSHA, pipelined clients, distinct ids), and reads Redis's own `usec_per_call`.

use futures::future::try_join_all;
use redis::aio::MultiplexedConnection;

use flashstock::adapters::redis_cache::{
    Keys, bucket_of, buckets_for, buyer_bytes, deduct_call, deduct_script, release_call, release_script, stored_stock,
};
use flashstock::domain::{BuyerBudget, CollectionId, OrderId, OrderKey, UserId};
use flashstock::ports::DeductRequest;

use crate::bench::{redis_stats, usec_per_call};

/// The seed design's decrease, rendered from its description (the reference; never deployed).
pub const SEED_DECREASE: &str = include_str!("lua/seed_decrease.lua");

/// How one measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Distinct reservations (each a new buyer and a new order id).
    pub reservations: usize,
    /// Concurrent connections.
    pub clients: usize,
    /// Calls per pipeline on each connection.
    pub pipeline: usize,
    /// The collection's per-user limit (the targets are for a limit that is on).
    pub per_user_limit: Option<u32>,
    /// The buyer budget each Try spends a request of (the deployment's default).
    pub budget: Option<BuyerBudget>,
}

/// One run's figures: µs are Redis's `usec_per_call` of EVALSHA; bytes are per reservation.
#[derive(Debug, Clone, Default)]
pub struct RedisCost {
    /// `return 1` with no keys and no arguments.
    pub floor_bare: f64,
    /// `return 1` called with the Try's own keys and arguments.
    pub floor_try_shape: f64,
    /// The seed design's decrease.
    pub reference: f64,
    pub reference_bytes: f64,
    /// The Try, every call accepted (each a buyer's first order: the budget record is written
    /// with it).
    pub try_accepted: f64,
    /// The Try of a buyer's second order, every call accepted: the records are read and the
    /// budget counted.
    pub try_second: f64,
    /// The Try script on a sold-out collection (new buyers): what a refusal costs before the
    /// instance's sold-out flag is up.
    pub try_refused: f64,
    /// A refusal once the flag is up: the API's one read of the buyer's records (a plain HGET),
    /// which answers a replay from its record and anyone else SOLD_OUT.
    pub refused_flagged: f64,
    /// The release of an accepted order (cancel), per call.
    pub release: f64,
    /// `used_memory` delta ÷ pending reservations, every key the Try touched.
    pub bytes_per_reservation: f64,
    /// Per structure: (name, encodings seen, keys, bytes per reservation by `MEMORY USAGE`).
    pub profile: Vec<(String, String, usize, f64)>,
    /// DynamoDB's size of one RESERVED reservation item (ULID order id, UUID buyer).
    pub dynamo_item_bytes: usize,
    /// Keys and arguments of one Try call.
    pub try_keys: usize,
    pub try_args: usize,
}

pub struct Call {
    pub keys: Vec<String>,
    pub args: Vec<Vec<u8>>,
}

fn uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Sends one command per item, spread over the connections, `pipeline` at a time on each.
async fn spread<T: Sync>(
    conns: &[MultiplexedConnection],
    items: &[T],
    pipeline: usize,
    command: impl Fn(&mut redis::Pipeline, &T) + Sync,
) -> anyhow::Result<()> {
    let per = items.len().div_ceil(conns.len()).max(1);
    let command = &command;
    try_join_all(items.chunks(per).zip(conns.iter().cloned()).map(|(mine, mut con)| async move {
        for batch in mine.chunks(pipeline) {
            let mut p = redis::pipe();
            for item in batch {
                command(&mut p, item);
            }
            p.query_async::<Vec<redis::Value>>(&mut con).await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    Ok(())
}

/// Runs `calls` through `sha`, spread over the connections, `pipeline` at a time on each.
pub async fn run(conns: &[MultiplexedConnection], sha: &str, calls: &[Call], pipeline: usize) -> anyhow::Result<()> {
    spread(conns, calls, pipeline, |p, c| {
        let cmd = p.cmd("EVALSHA").arg(sha).arg(c.keys.len());
        for k in &c.keys {
            cmd.arg(k);
        }
        for a in &c.args {
            cmd.arg(a);
        }
    })
    .await
}

/// `n` new buyers (UUID) each with a new order id (ULID) on `collection`.
fn new_orders(collection: &CollectionId, n: usize) -> anyhow::Result<Vec<OrderKey>> {
    (0..n)
        .map(|_| {
            Ok(OrderKey::new(
                collection.clone(),
                UserId::parse(&uuid())?,
                OrderId::parse(&ulid::Ulid::new().to_string())?,
            ))
        })
        .collect()
}

/// Resets the stats, runs the calls, and answers EVALSHA's µs per call.
pub async fn phase(
    admin: &mut MultiplexedConnection,
    conns: &[MultiplexedConnection],
    sha: &str,
    calls: &[Call],
    pipeline: usize,
) -> anyhow::Result<f64> {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(admin).await?;
    run(conns, sha, calls, pipeline).await?;
    usec_per_call(admin, "evalsha").await
}

pub async fn load(admin: &mut MultiplexedConnection, src: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("SCRIPT").arg("LOAD").arg(src).query_async(admin).await?)
}

async fn keys_like(admin: &mut MultiplexedConnection, pattern: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(admin)
            .await?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// One run on its own key prefix (the keys are deleted afterwards).
pub async fn measure(redis_url: &str, prefix: &str, shape: Shape) -> anyhow::Result<RedisCost> {
    let client = redis::Client::open(redis_url)?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let conns = try_join_all((0..shape.clients).map(|_| client.get_multiplexed_async_connection())).await?;
    let n = shape.reservations;
    let collection = CollectionId::parse("bench")?;
    let t0 = flashstock::now_ms();
    // A collection sized for every reservation of the run (its bucket count follows).
    let nb = buckets_for(n as i64);
    let keys = new_orders(&collection, n)?;
    let try_call = |k: &OrderKey, i: usize| {
        let req = DeductRequest {
            key: k,
            shards: 1,
            quantity: 1,
            now_ms: t0 + i as i64,
            per_user_limit: shape.per_user_limit,
            budget: shape.budget,
            stale_before_ms: t0 - 1_080_000,
        };
        let (keys, arg) = deduct_call(prefix, nb, &req);
        Call { keys, args: vec![arg] }
    };
    let tries: Vec<Call> = keys.iter().enumerate().map(|(i, k)| try_call(k, i)).collect();
    let mut cost = RedisCost { try_keys: tries[0].keys.len(), try_args: tries[0].args.len(), ..Default::default() };
    let msg = flashstock::ports::ReservationMessage {
        order_id: keys[0].order.clone(),
        collection_id: CollectionId::parse("drop-2026-aurora")?,
        user_id: keys[0].user.clone(),
        quantity: 1,
        accepted_at_ms: t0 / 1000 * 1000,
    };
    let item =
        flashstock::adapters::dynamo_ledger::reservation_item(&msg, flashstock::domain::Status::Reserved, 900, 0, t0)?;
    cost.dynamo_item_bytes = flashstock::adapters::dynamo_ledger::item_bytes(&item);

    // Floors: a script that does nothing, bare and called like a Try.
    let noop = load(&mut admin, "return 1").await?;
    let bare: Vec<Call> = (0..n).map(|_| Call { keys: vec![], args: vec![] }).collect();
    cost.floor_bare = phase(&mut admin, &conns, &noop, &bare, shape.pipeline).await?;
    cost.floor_try_shape = phase(&mut admin, &conns, &noop, &tries, shape.pipeline).await?;

    // The reference: the seed's decrease on one item with enough stock for every order.
    let seed = load(&mut admin, SEED_DECREASE).await?;
    let (ref_stock, ref_log) = (format!("{{{prefix}:seed}}:stock"), format!("{{{prefix}:seed}}:log"));
    let _: () = redis::cmd("SET").arg(&ref_stock).arg(n * 10).query_async(&mut admin).await?;
    let refs: Vec<Call> = keys
        .iter()
        .map(|k| Call {
            keys: vec![ref_stock.clone(), ref_log.clone()],
            args: vec![k.order.to_string().into_bytes(), b"1".to_vec(), k.user.to_string().into_bytes()],
        })
        .collect();
    let before = redis_stats(&mut admin).await?.used_memory;
    cost.reference = phase(&mut admin, &conns, &seed, &refs, shape.pipeline).await?;
    cost.reference_bytes = (redis_stats(&mut admin).await?.used_memory - before) as f64 / n as f64;
    let _: () = redis::cmd("DEL").arg(&ref_stock).arg(&ref_log).query_async(&mut admin).await?;

    // The Try: every call accepted, all left pending.
    let reserve = load(&mut admin, &deduct_script()).await?;
    let stock = Keys::new(prefix, &collection, 0).stock(1);
    let _: () = redis::cmd("SET").arg(&stock).arg(stored_stock(n as i64 * 10)).query_async(&mut admin).await?;
    let before = redis_stats(&mut admin).await?.used_memory;
    cost.try_accepted = phase(&mut admin, &conns, &reserve, &tries, shape.pipeline).await?;
    cost.bytes_per_reservation = (redis_stats(&mut admin).await?.used_memory - before) as f64 / n as f64;
    let mut groups: std::collections::BTreeMap<String, (std::collections::BTreeSet<String>, usize, i64)> =
        Default::default();
    for key in keys_like(&mut admin, &format!("{{{prefix}:c:*")).await? {
        let kind = key.rsplit_once("}:").map_or("?", |(_, k)| k).split(':').next().unwrap_or("?").to_owned();
        let bytes: Option<i64> =
            redis::cmd("MEMORY").arg("USAGE").arg(&key).arg("SAMPLES").arg(0).query_async(&mut admin).await?;
        let enc: String = redis::cmd("OBJECT").arg("ENCODING").arg(&key).query_async(&mut admin).await?;
        let g = groups.entry(kind).or_default();
        g.0.insert(enc);
        g.1 += 1;
        g.2 += bytes.unwrap_or(0);
    }
    cost.profile = groups
        .into_iter()
        .map(|(k, (enc, count, bytes))| {
            (k, enc.into_iter().collect::<Vec<_>>().join("/"), count, bytes as f64 / n as f64)
        })
        .collect();

    // The same buyers' second orders: records read, the budget counted (not in the bytes above).
    let seconds: Vec<Call> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let again =
                OrderKey::new(k.collection.clone(), k.user.clone(), OrderId::parse(&ulid::Ulid::new().to_string())?);
            Ok(try_call(&again, i))
        })
        .collect::<anyhow::Result<_>>()?;
    cost.try_second = phase(&mut admin, &conns, &reserve, &seconds, shape.pipeline).await?;

    // Refused: the collection sold out, new buyers keep trying.
    let _: () = redis::cmd("SET").arg(&stock).arg(stored_stock(0)).query_async(&mut admin).await?;
    let late = new_orders(&collection, n)?;
    let refused: Vec<Call> = late.iter().enumerate().map(|(i, k)| try_call(k, i)).collect();
    cost.try_refused = phase(&mut admin, &conns, &reserve, &refused, shape.pipeline).await?;

    // Refused with the sold-out flag up: one HGET of the buyer's field in their bucket.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut admin).await?;
    spread(&conns, &late, shape.pipeline, |p, k| {
        let u = buyer_bytes(&k.user);
        p.cmd("HGET").arg(Keys::new(prefix, &k.collection, 0).bucket(bucket_of(&u, nb))).arg(u);
    })
    .await?;
    cost.refused_flagged = usec_per_call(&mut admin, "hget").await?;

    // Release (a cancel's Redis side) of accepted orders.
    let release = load(&mut admin, &release_script()).await?;
    let releases: Vec<Call> = keys
        .iter()
        .take(n.min(20_000))
        .map(|k| {
            let (keys, args) =
                release_call(prefix, flashstock::domain::CacheShard::new(0, 1), nb, k, false, t0 + 60_000);
            Call { keys, args }
        })
        .collect();
    cost.release = phase(&mut admin, &conns, &release, &releases, shape.pipeline).await?;

    for chunk in keys_like(&mut admin, &format!("{{{prefix}:*")).await?.chunks(1_000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut admin).await?;
    }
    Ok(cost)
}
