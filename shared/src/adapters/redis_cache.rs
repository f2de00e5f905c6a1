//! [`StockCache`] on Redis: the Lua scripts of `src/lua/` plus plain reads.
//!
//! # Keys
//! Everything of one collection shares the hash tag `{<prefix>:c:<collectionId>}` (one Redis
//! Cluster slot); there are no per-order keys:
//! - `:stock` STRING: units Redis may still sell, plus [`STOCK_BIAS`] (missing = cache not ready);
//! - `:meta` HASH: `ver` (compare-and-set version for rebuilds), `nb` (bucket count), `trim`
//!   (trim's round-robin cursor), `rc` (reconciliation's mark of a clean collection) and `rv`
//!   (its last visit, epoch seconds);
//! - `:u:<n>` HASH, one of `nb` buckets: buyer → the buyer's packed order records
//!   (`records.lua` documents the format). Canonical UUID buyers and ULID order ids are stored as
//!   their 16 bytes, any other id as given; a bucket sized for ~16 buyers stays a listpack;
//! - `:t:<n>` STRING: time slice `n` (10 s): the 2-byte numbers of the buckets whose buyers
//!   logged an order in it (the time index reconciliation reads), and `:slices` ZSET: the slices
//!   that exist.
//! - `:lease:<k>` STRING: who writes stock bucket k's DynamoDB item now (its write turn, `lease.lua`).
//!
//! Outside any collection: `<prefix>:b:<buyer>` STRING, the buyer's request count in the current
//! budget window (`budget.lua`; one key per call, so Redis Cluster safe).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use futures::StreamExt;

use crate::domain::{CollectionId, OrderId, OrderKey, UserId};
use crate::ports::{
    CacheEntry, CacheProbe, CacheSnapshot, CacheState, InfraError, InfraResult, OrderRecord, Rebuild, Released,
    ReserveOutcome, ReserveRequest, SettleAs, StockCache, Trimmed,
};

/// What `:stock` holds above the units Redis may still sell: the Try takes before it looks, and
/// a take on a missing key (which Redis starts from 0) must land below 0. Larger than any qty.
pub const STOCK_BIAS: i64 = 1_000_000;

/// The `:stock` value for `units` (tests and benchmarks that set it directly).
pub fn stored_stock(units: i64) -> i64 {
    units + STOCK_BIAS
}

/// Seconds per time slice of the index.
pub const SLICE_SECONDS: i64 = 10;
/// Buyers per bucket a collection is sized for (a listpack holds up to 128 fields by default,
/// and a shorter one is quicker to search).
pub const BUYERS_PER_BUCKET: i64 = 16;

macro_rules! with_records {
    ($file:literal) => {
        concat!(include_str!("../lua/records.lua"), include_str!($file))
    };
}

/// The Try script's source.
pub const RESERVE_SCRIPT: &str = include_str!("../lua/reserve.lua");
/// The release script's source.
pub const RELEASE_SCRIPT: &str = with_records!("../lua/release.lua");

/// The scripts, compiled into the binary; `Script` runs EVALSHA and loads on NOSCRIPT.
struct Scripts {
    reserve: Script,
    settle: Script,
    relog: Script,
    intent: Script,
    release: Script,
    snapshot: Script,
    rebuild: Script,
    trim: Script,
    prune: Script,
    budget: Script,
    lease: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            reserve: Script::new(RESERVE_SCRIPT),
            settle: Script::new(with_records!("../lua/settle.lua")),
            relog: Script::new(with_records!("../lua/relog.lua")),
            intent: Script::new(with_records!("../lua/intent.lua")),
            release: Script::new(RELEASE_SCRIPT),
            snapshot: Script::new(include_str!("../lua/snapshot.lua")),
            rebuild: Script::new(include_str!("../lua/rebuild.lua")),
            trim: Script::new(with_records!("../lua/trim.lua")),
            prune: Script::new(include_str!("../lua/prune.lua")),
            budget: Script::new(include_str!("../lua/budget.lua")),
            lease: Script::new(include_str!("../lua/lease.lua")),
        }
    }
}

/// One Redis node (reconnecting manager) or a Redis Cluster (ElastiCache Serverless presents a
/// cluster endpoint): every key a script touches shares one hash tag, so both work the same.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How long a command may wait for its answer before it counts as a dependency failure. The
/// client's default (500 ms) turned a Try into a 503 while a burst queued behind one multiplexed
/// connection on a loaded machine; a healthy cache answers in about a millisecond, and the
/// functions' timeouts (10 s and more) leave room for this.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects to one node, or to a cluster (following its slots: MOVED/ASK).
pub async fn connect(url: &str, cluster: bool) -> InfraResult<Conn> {
    Ok(if cluster {
        let client = redis::cluster::ClusterClientBuilder::new(vec![url])
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(err("redis cluster open"))?;
        Conn::Cluster(client.get_async_connection().await.map_err(err("redis cluster connect"))?)
    } else {
        let client = redis::Client::open(url).map_err(err("redis open"))?;
        let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        Conn::Single(ConnectionManager::new_with_config(client, config).await.map_err(err("redis connect"))?)
    })
}

#[derive(Clone)]
pub struct RedisCache {
    con: Conn,
    prefix: String,
    scripts: Arc<Scripts>,
    /// Bucket counts by collection (fixed when the collection is first cached).
    buckets: Arc<RwLock<HashMap<CollectionId, u32>>>,
}

/// A collection's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    pub fn new(prefix: &str, collection: &CollectionId) -> Self {
        Self { tag: format!("{{{prefix}:c:{collection}}}") }
    }
    pub fn stock(&self) -> String {
        format!("{}:stock", self.tag)
    }
    pub fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }
    pub fn slices(&self) -> String {
        format!("{}:slices", self.tag)
    }
    pub fn bucket(&self, n: u32) -> String {
        format!("{}:u:{n}", self.tag)
    }
    pub fn slice(&self, n: i64) -> String {
        format!("{}:t:{n}", self.tag)
    }
    /// The write turn of stock bucket `k` (a DynamoDB item; not a buyer bucket).
    pub fn lease(&self, k: u32) -> String {
        format!("{}:lease:{k}", self.tag)
    }
}

/// The bucket count of a collection of `quantity` units.
pub fn buckets_for(quantity: i64) -> u32 {
    (quantity.max(1) as u64).div_ceil(BUYERS_PER_BUCKET as u64).min(1 << 16) as u32
}

/// A buyer as stored: a byte k, then 16 bytes of a canonical UUID (k = 0) or k bytes as given.
pub fn buyer_bytes(user: &UserId) -> Vec<u8> {
    let s = user.as_str();
    if let Ok(u) = uuid::Uuid::try_parse(s)
        && u.hyphenated().to_string() == s
    {
        let mut v = vec![0u8];
        v.extend_from_slice(u.as_bytes());
        return v;
    }
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// An order id as stored: a byte k, then 16 bytes of a canonical ULID (k = 0) or k bytes as given.
pub fn order_bytes(order: &OrderId) -> Vec<u8> {
    let s = order.as_str();
    if let Ok(u) = ulid::Ulid::from_string(s)
        && u.to_string() == s
    {
        let mut v = vec![0u8];
        v.extend_from_slice(&u.to_bytes());
        return v;
    }
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// Reads one stored id at the start of `b`: (the id's text, bytes used).
fn read_id(b: &[u8], canonical: fn(&[u8]) -> Option<String>) -> Option<(String, usize)> {
    let k = *b.first()? as usize;
    if k == 0 {
        Some((canonical(b.get(1..17)?)?, 17))
    } else {
        Some((String::from_utf8(b.get(1..1 + k)?.to_vec()).ok()?, 1 + k))
    }
}

fn uuid_text(b: &[u8]) -> Option<String> {
    Some(uuid::Uuid::from_slice(b).ok()?.hyphenated().to_string())
}

fn ulid_text(b: &[u8]) -> Option<String> {
    Some(ulid::Ulid::from_bytes(b.try_into().ok()?).to_string())
}

/// The bucket of a stored buyer.
pub fn bucket_of(buyer: &[u8], nb: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(buyer) % u64::from(nb.max(1))) as u32
}

/// An order as the scripts take it: a byte with the stored buyer's length minus one (a 255-byte
/// subject is stored in 256), the buyer, the order.
fn ident(key: &OrderKey) -> Vec<u8> {
    let u = buyer_bytes(&key.user);
    let mut v = vec![(u.len() - 1) as u8];
    v.extend_from_slice(&u);
    v.extend_from_slice(&order_bytes(&key.order));
    v
}

fn e4(n: i64) -> [u8; 4] {
    (n.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes()
}

fn d4(b: &[u8]) -> i64 {
    b.try_into().map_or(0, |a: [u8; 4]| i64::from(u32::from_be_bytes(a)))
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// One order record read back from a buyer's value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    order: Vec<u8>,
    state: u8,
    quantity: u32,
    accepted_s: i64,
    logged_s: i64,
}

/// Splits a buyer's value into records (stops at anything malformed).
fn records(v: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let k = v[i] as usize;
        let n = if k == 0 { 17 } else { 1 + k };
        let Some(r) = v.get(i..i + n + 10) else { break };
        out.push(Record {
            order: r[..n].to_vec(),
            state: r[n],
            quantity: u32::from(r[n + 1]),
            accepted_s: d4(&r[n + 2..n + 6]),
            logged_s: d4(&r[n + 6..n + 10]),
        });
        i += n + 10;
    }
    out
}

/// The buckets listed in a time slice.
fn slice_buckets(b: &[u8]) -> BTreeSet<u32> {
    b.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).collect()
}

fn state_of(b: u8) -> Option<CacheState> {
    Some(match b {
        b'P' => CacheState::Pending,
        b'S' | b'I' => CacheState::Durable,
        b'C' => CacheState::Cancelled,
        b'F' => CacheState::Failed,
        _ => return None,
    })
}

fn entry_of(r: &Record, user: &UserId) -> Option<CacheEntry> {
    Some(CacheEntry {
        state: state_of(r.state)?,
        quantity: r.quantity,
        accepted_at_ms: r.accepted_s * 1000,
        user: user.clone(),
    })
}

/// The Try script's keys and arguments, exactly as [`StockCache::reserve`] sends them (the
/// benchmarks measure the same call), for a collection of `nb` buckets.
pub fn reserve_call(prefix: &str, nb: u32, r: &ReserveRequest<'_>) -> (Vec<String>, Vec<u8>) {
    let k = Keys::new(prefix, &r.key.collection);
    let u = buyer_bytes(&r.key.user);
    let now = secs(r.now_ms);
    let slice = now.div_euclid(SLICE_SECONDS);
    let mut rec = order_bytes(&r.key.order);
    rec.push(b'P');
    rec.push(r.quantity.min(255) as u8);
    rec.extend_from_slice(&e4(now));
    rec.extend_from_slice(&e4(now));
    let bucket = bucket_of(&u, nb);
    let mut a = vec![(u.len() - 1) as u8, rec.len() as u8];
    a.extend_from_slice(&(bucket as u16).to_be_bytes());
    a.extend_from_slice(&u);
    a.extend_from_slice(&rec);
    let tail = format!("{},{},{slice}", r.per_user_limit.unwrap_or(0), secs(r.stale_before_ms));
    a.extend_from_slice(tail.as_bytes());
    (vec![k.stock(), k.bucket(bucket), k.slice(slice), k.slices()], a)
}

/// The release script's keys and arguments, exactly as [`StockCache::release`] sends them.
pub fn release_call(
    prefix: &str,
    nb: u32,
    order: &OrderKey,
    tombstone: bool,
    now_ms: i64,
) -> (Vec<String>, Vec<Vec<u8>>) {
    let k = Keys::new(prefix, &order.collection);
    let bucket = k.bucket(bucket_of(&buyer_bytes(&order.user), nb));
    let args =
        vec![ident(order), secs(now_ms).to_string().into_bytes(), if tombstone { b"1".to_vec() } else { vec![] }];
    (vec![k.stock(), k.meta(), bucket], args)
}

fn err(op: &'static str) -> impl FnOnce(redis::RedisError) -> InfraError {
    move |e| InfraError::new(op, e)
}

/// What a scan of open time slices found.
#[derive(Default)]
struct Scan {
    /// Pending or intent orders logged before the cutoff, oldest slice first.
    due: Vec<OrderKey>,
    /// Units of every pending order in the slices read.
    pending: i64,
    /// Slices read that still hold something in flight.
    open: i64,
    /// Slices read that hold nothing in flight: (number, length as read).
    quiet: Vec<(i64, u64)>,
}

impl RedisCache {
    /// Connects once (both clients reconnect on their own); call at start-up, not per request.
    /// `cluster` follows a Redis Cluster's slots (MOVED/ASK), as ElastiCache Serverless needs.
    pub async fn connect(url: &str, prefix: &str, cluster: bool) -> InfraResult<Self> {
        let con = connect(url, cluster).await?;
        Ok(Self {
            con,
            prefix: prefix.to_owned(),
            scripts: Arc::new(Scripts::new()),
            buckets: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn keys(&self, collection: &CollectionId) -> Keys {
        Keys::new(&self.prefix, collection)
    }

    /// The collection's bucket count, `None` before its first warm-up (nothing is cached then).
    pub async fn bucket_count(&self, collection: &CollectionId) -> InfraResult<Option<u32>> {
        if let Some(n) = self.buckets.read().ok().and_then(|m| m.get(collection).copied()) {
            return Ok(Some(n));
        }
        let mut con = self.con.clone();
        let n: Option<u32> = redis::cmd("HGET")
            .arg(self.keys(collection).meta())
            .arg("nb")
            .query_async(&mut con)
            .await
            .map_err(err("redis bucket count"))?;
        if let (Some(n), Ok(mut m)) = (n, self.buckets.write()) {
            m.insert(collection.clone(), n);
        }
        Ok(n)
    }

    /// The bucket key and stored buyer of an order.
    pub async fn location(&self, key: &OrderKey) -> InfraResult<Option<(String, Vec<u8>)>> {
        let Some(nb) = self.bucket_count(&key.collection).await? else { return Ok(None) };
        let u = buyer_bytes(&key.user);
        Ok(Some((self.keys(&key.collection).bucket(bucket_of(&u, nb)), u)))
    }

    /// Σ qty of every pending record in every bucket (a check for tests and the demo: each must
    /// be in the time index). Reads every bucket: never on a request path.
    pub async fn pending_units_everywhere(&self, collection: &CollectionId) -> InfraResult<i64> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(0) };
        let k = self.keys(collection);
        let mut con = self.con.clone();
        let mut sum = 0;
        for b in 0..nb {
            let all: Vec<Vec<u8>> =
                redis::cmd("HVALS").arg(k.bucket(b)).query_async(&mut con).await.map_err(err("redis hvals"))?;
            sum += all
                .iter()
                .flat_map(|v| records(v))
                .filter(|r| r.state == b'P')
                .map(|r| i64::from(r.quantity))
                .sum::<i64>();
        }
        Ok(sum)
    }

    /// Runs a script and returns its `{code, a, b}` reply.
    async fn run(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> InfraResult<(String, i64, i64)> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut con = self.con.clone();
        inv.invoke_async(&mut con).await.map_err(err(op))
    }

    /// Each buyer's value, in order (`None` where the buyer has nothing).
    async fn values(
        &self,
        collection: &CollectionId,
        nb: u32,
        buyers: &[Vec<u8>],
    ) -> InfraResult<Vec<Option<Vec<u8>>>> {
        if buyers.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(collection);
        let mut p = redis::pipe();
        for u in buyers {
            p.cmd("HGET").arg(k.bucket(bucket_of(u, nb))).arg(u.as_slice());
        }
        let mut con = self.con.clone();
        p.query_async(&mut con).await.map_err(err("redis read records"))
    }

    /// Reads the open time slices starting before `before_ms` (all of them with `None`), finds
    /// the orders due (logged before `before_ms`), counts pending units, and drops the slices
    /// left with nothing in flight.
    async fn scan(
        &self,
        collection: &CollectionId,
        nb: u32,
        before_ms: Option<i64>,
        limit: usize,
    ) -> InfraResult<Scan> {
        let k = self.keys(collection);
        let mut con = self.con.clone();
        let upto = before_ms.map_or("+inf".to_owned(), |ms| secs(ms).div_euclid(SLICE_SECONDS).to_string());
        let slices: Vec<i64> = redis::cmd("ZRANGE")
            .arg(k.slices())
            .arg("-inf")
            .arg(upto)
            .arg("BYSCORE")
            .query_async(&mut con)
            .await
            .map_err(err("redis slices"))?;
        let mut out = Scan::default();
        let mut seen = BTreeSet::new();
        // Every due entry with when it was last logged: the `limit` logged longest ago are taken
        // (a slice lists buyer buckets, whose entries come in hash order, not by age).
        let mut due_logged: Vec<(i64, OrderKey)> = Vec::new();
        // Only reconciliation prunes (a scan with a cutoff), and only slices that ended a whole
        // slice before its cutoff: no writer logs there any more, so a slice cannot be dropped,
        // re-created at the same length by a Try and dropped again by a concurrent scanner that
        // read it before. Any other quiet slice is listed, with its length as read.
        let prune_upto = before_ms.map(|ms| secs(ms).div_euclid(SLICE_SECONDS) - 2);
        for slice in slices {
            let body: Vec<u8> =
                redis::cmd("GET").arg(k.slice(slice)).query_async(&mut con).await.map_err(err("redis slice"))?;
            let buckets: Vec<u32> = slice_buckets(&body).into_iter().filter(|b| *b < nb).collect();
            let mut p = redis::pipe();
            for b in &buckets {
                p.cmd("HGETALL").arg(k.bucket(*b));
            }
            let all: Vec<Vec<(Vec<u8>, Vec<u8>)>> = if buckets.is_empty() {
                Vec::new()
            } else {
                p.query_async(&mut con).await.map_err(err("redis buckets"))?
            };
            let mut busy = false;
            for (u, v) in all.into_iter().flatten() {
                let Some(user) = read_id(&u, uuid_text).and_then(|(s, _)| UserId::parse(&s).ok()) else { continue };
                for r in records(&v) {
                    if r.state != b'P' && r.state != b'I' {
                        continue;
                    }
                    if r.logged_s.div_euclid(SLICE_SECONDS) == slice {
                        busy = true;
                    }
                    if !seen.insert((u.clone(), r.order.clone())) {
                        continue;
                    }
                    if r.state == b'P' {
                        out.pending += i64::from(r.quantity);
                    }
                    let due = before_ms.is_some_and(|ms| r.logged_s * 1000 < ms);
                    if due && let Some(order) = read_id(&r.order, ulid_text).and_then(|(s, _)| OrderId::parse(&s).ok())
                    {
                        due_logged.push((r.logged_s, OrderKey::new(collection.clone(), user.clone(), order)));
                    }
                }
            }
            if busy {
                out.open += 1;
            } else if prune_upto.is_some_and(|upto| slice <= upto) {
                self.run(
                    "redis prune script",
                    &self.scripts.prune,
                    vec![k.slices(), k.slice(slice)],
                    vec![slice.to_string().into_bytes(), body.len().to_string().into_bytes()],
                )
                .await?;
            } else {
                out.quiet.push((slice, body.len() as u64));
            }
        }
        due_logged.sort_by_key(|(logged_s, _)| *logged_s);
        out.due = due_logged.into_iter().take(limit).map(|(_, order)| order).collect();
        Ok(out)
    }
}

/// A probe's reads: stock, registered slices, mark, last visit.
type ProbeRead = (Option<i64>, u64, Option<String>, Option<i64>);

impl StockCache for RedisCache {
    async fn probe(&self, ids: &[CollectionId]) -> InfraResult<Vec<CacheProbe>> {
        // One pipeline per collection (its keys share a slot), many in flight at once.
        let jobs: Vec<(Keys, Conn)> = ids.iter().map(|id| (self.keys(id), self.con.clone())).collect();
        Ok(futures::stream::iter(jobs)
            .map(|(k, mut con)| async move {
                let read: redis::RedisResult<ProbeRead> = redis::pipe()
                    .get(k.stock())
                    .zcard(k.slices())
                    .hget(k.meta(), "rc")
                    .hget(k.meta(), "rv")
                    .query_async(&mut con)
                    .await;
                match read {
                    Ok((stock, slices, mark, visited_s)) => {
                        CacheProbe { stock: stock.map(|s| s - STOCK_BIAS), slices, mark, visited_s }
                    }
                    Err(e) => {
                        tracing::warn!(keys = %k.meta(), error = %e, "probe failed: reconciled as active");
                        CacheProbe::default()
                    }
                }
            })
            .buffered(64)
            .collect()
            .await)
    }

    async fn note_reconciled(&self, id: &CollectionId, now_ms: i64, mark: Option<&str>) -> InfraResult<()> {
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys(id).meta()).arg("rv").arg(secs(now_ms));
        if let Some(mark) = mark {
            cmd.arg("rc").arg(mark);
        }
        cmd.query_async::<()>(&mut con).await.map_err(err("redis note reconciled"))
    }

    async fn take_lease(
        &self,
        collection: &CollectionId,
        bucket: u32,
        holder: &str,
        ttl: Duration,
    ) -> InfraResult<bool> {
        let mut con = self.con.clone();
        let held: i64 = self
            .scripts
            .lease
            .key(self.keys(collection).lease(bucket))
            .arg("take")
            .arg(holder)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await
            .map_err(err("redis lease script"))?;
        Ok(held == 1)
    }

    async fn give_lease(&self, collection: &CollectionId, bucket: u32, holder: &str) -> InfraResult<()> {
        let mut con = self.con.clone();
        self.scripts
            .lease
            .key(self.keys(collection).lease(bucket))
            .arg("give")
            .arg(holder)
            .invoke_async::<i64>(&mut con)
            .await
            .map(|_| ())
            .map_err(err("redis lease script"))
    }

    async fn spend_request(&self, user: &UserId, requests: u32, window: Duration) -> InfraResult<Option<Duration>> {
        let mut con = self.con.clone();
        let wait_ms: u64 = self
            .scripts
            .budget
            .key(format!("{}:b:{}", self.prefix, user))
            .arg(requests)
            .arg(window.as_millis() as u64)
            .invoke_async(&mut con)
            .await
            .map_err(err("redis budget script"))?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    async fn prepare(&self, collection: &CollectionId, quantity: i64) -> InfraResult<()> {
        if self.buckets.read().is_ok_and(|m| m.contains_key(collection)) {
            return Ok(());
        }
        let mut con = self.con.clone();
        redis::cmd("HSETNX")
            .arg(self.keys(collection).meta())
            .arg("nb")
            .arg(buckets_for(quantity))
            .query_async::<()>(&mut con)
            .await
            .map_err(err("redis prepare"))
    }

    async fn reserve(&self, r: &ReserveRequest<'_>) -> InfraResult<ReserveOutcome> {
        let Some(nb) = self.bucket_count(&r.key.collection).await? else { return Ok(ReserveOutcome::NoCache) };
        let (keys, arg) = reserve_call(&self.prefix, nb, r);
        let mut inv = self.scripts.reserve.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(arg);
        let mut con = self.con.clone();
        // Taken: the stock left, as a plain integer; anything else: {code, a, b}.
        let (code, a, _): (String, i64, i64) =
            match inv.invoke_async(&mut con).await.map_err(err("redis try script"))? {
                Value::Int(left) => {
                    return Ok(ReserveOutcome::Reserved { stock_left: left, accepted_at_ms: secs(r.now_ms) * 1000 });
                }
                other => redis::from_redis_value(other).map_err(|e| InfraError::new("redis try script", e))?,
            };
        Ok(match code.as_str() {
            "CANCELLED" => ReserveOutcome::Cancelled,
            "MISMATCH" => ReserveOutcome::Mismatch,
            "NOCACHE" => ReserveOutcome::NoCache,
            "SOLDOUT" => ReserveOutcome::SoldOut,
            "INSUFFICIENT" => ReserveOutcome::Insufficient { available: a },
            "LIMIT" => ReserveOutcome::LimitExceeded { held: a },
            "REPLAY_STALE" => ReserveOutcome::ReplayStale { accepted_at_ms: a * 1000 },
            other => match other.strip_prefix("REPLAY_").map(str::as_bytes) {
                Some(&[b]) if let Some(state) = state_of(b) => {
                    ReserveOutcome::Replay { state, accepted_at_ms: a * 1000 }
                }
                _ => return Err(InfraError::new("redis try script", format!("unexpected reply {other}"))),
            },
        })
    }

    async fn settle(
        &self,
        collection: &CollectionId,
        orders: &[OrderKey],
        as_: SettleAs,
        clear_intents_before: Option<i64>,
        now_ms: i64,
    ) -> InfraResult<u32> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(0) };
        if orders.is_empty() {
            return Ok(0);
        }
        let target = match as_ {
            SettleAs::Durable => "S",
            SettleAs::Failed => "F",
            SettleAs::DurableReturning => "SR",
            SettleAs::FailedReturning => "FR",
        };
        let k = self.keys(collection);
        let mut keys = vec![k.stock(), k.meta()];
        let mut args = vec![
            secs(now_ms).to_string().into_bytes(),
            target.as_bytes().to_vec(),
            clear_intents_before.map_or(0, secs).to_string().into_bytes(),
        ];
        for o in orders {
            keys.push(k.bucket(bucket_of(&buyer_bytes(&o.user), nb)));
            args.push(ident(o));
        }
        let (_, n, _) = self.run("redis settle script", &self.scripts.settle, keys, args).await?;
        Ok(n as u32)
    }

    async fn relog(
        &self,
        collection: &CollectionId,
        orders: &[OrderKey],
        logged_before_ms: i64,
        log_at_ms: i64,
    ) -> InfraResult<Vec<bool>> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(vec![false; orders.len()]) };
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(collection);
        let slice = secs(log_at_ms).div_euclid(SLICE_SECONDS);
        let mut inv = self.scripts.relog.prepare_invoke();
        inv.key(k.slice(slice)).key(k.slices());
        // Logged (whole seconds) before the instant: what `unsettled_before` lists as due.
        inv.arg(secs(log_at_ms)).arg(secs(logged_before_ms + 999)).arg(slice);
        for o in orders {
            let bucket = bucket_of(&buyer_bytes(&o.user), nb);
            inv.key(k.bucket(bucket));
            let mut a = (bucket as u16).to_be_bytes().to_vec();
            a.extend(ident(o));
            inv.arg(a);
        }
        let mut con = self.con.clone();
        let done: Vec<u8> = inv.invoke_async(&mut con).await.map_err(err("redis relog script"))?;
        Ok((0..orders.len()).map(|i| done.get(i) == Some(&b'1')).collect())
    }

    async fn mark_intent(&self, order: &OrderRecord, now_ms: i64) -> InfraResult<()> {
        let key = order.key();
        let Some(nb) = self.bucket_count(&key.collection).await? else { return Ok(()) };
        let k = self.keys(&key.collection);
        let slice = secs(now_ms).div_euclid(SLICE_SECONDS);
        let bucket = bucket_of(&buyer_bytes(&key.user), nb);
        let keys = vec![k.stock(), k.meta(), k.bucket(bucket), k.slice(slice), k.slices()];
        let args = vec![
            ident(&key),
            secs(now_ms).to_string().into_bytes(),
            order.quantity.to_string().into_bytes(),
            secs(order.accepted_at_ms).to_string().into_bytes(),
            slice.to_string().into_bytes(),
            (bucket as u16).to_be_bytes().to_vec(),
        ];
        self.run("redis intent script", &self.scripts.intent, keys, args).await.map(|_| ())
    }

    async fn release(&self, order: &OrderKey, tombstone: bool, now_ms: i64) -> InfraResult<Released> {
        let Some(nb) = self.bucket_count(&order.collection).await? else { return Ok(Released::Absent) };
        let (keys, args) = release_call(&self.prefix, nb, order, tombstone, now_ms);
        let (code, q, _) = self.run("redis release script", &self.scripts.release, keys, args).await?;
        Ok(match code.as_str() {
            "RETURNED" => Released::Returned(q as u32),
            "ALREADY" => Released::Already,
            "FAILED" => Released::WasFailed,
            "UNLOGGED" => Released::Unlogged,
            _ => Released::Absent,
        })
    }

    async fn entry(&self, order: &OrderKey) -> InfraResult<Option<CacheEntry>> {
        Ok(self.entries(&order.collection, std::slice::from_ref(order)).await?.pop().flatten())
    }

    async fn entries(&self, collection: &CollectionId, orders: &[OrderKey]) -> InfraResult<Vec<Option<CacheEntry>>> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(vec![None; orders.len()]) };
        let buyers: Vec<Vec<u8>> = orders.iter().map(|o| buyer_bytes(&o.user)).collect();
        let values = self.values(collection, nb, &buyers).await?;
        Ok(orders
            .iter()
            .zip(values)
            .map(|(o, v)| {
                let ob = order_bytes(&o.order);
                records(v.as_deref().unwrap_or_default())
                    .iter()
                    .find(|r| r.order == ob)
                    .and_then(|r| entry_of(r, &o.user))
            })
            .collect())
    }

    async fn trim_settled(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
        keep_durable: bool,
    ) -> InfraResult<Trimmed> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(Trimmed { removed: 0, pass_done: true }) };
        let k = self.keys(collection);
        let per_run = (limit as u32 / BUYERS_PER_BUCKET as u32).clamp(1, nb);
        let mut con = self.con.clone();
        let cursor: i64 = redis::cmd("HINCRBY")
            .arg(k.meta())
            .arg("trim")
            .arg(per_run)
            .query_async(&mut con)
            .await
            .map_err(err("redis trim cursor"))?;
        let keys =
            (0..per_run).map(|i| k.bucket(((cursor - i64::from(i) - 1).rem_euclid(i64::from(nb))) as u32)).collect();
        let args = vec![secs(before_ms).to_string().into_bytes(), if keep_durable { b"1".to_vec() } else { vec![] }];
        let (_, n, _) = self.run("redis trim script", &self.scripts.trim, keys, args).await?;
        // A pass ends each time the cursor crosses a multiple of the bucket count.
        let nb = i64::from(nb);
        let pass_done = per_run as i64 >= nb || cursor.div_euclid(nb) != (cursor - i64::from(per_run)).div_euclid(nb);
        Ok(Trimmed { removed: n as u32, pass_done })
    }

    async fn snapshot(&self, collection: &CollectionId) -> InfraResult<CacheSnapshot> {
        let k = self.keys(collection);
        let mut inv = self.scripts.snapshot.prepare_invoke();
        inv.key(k.stock()).key(k.meta()).key(k.slices());
        let mut con = self.con.clone();
        let (has, stock, version, open, nb): (i64, i64, i64, i64, u32) =
            inv.invoke_async(&mut con).await.map_err(err("redis snapshot script"))?;
        // The slices with nothing left in flight are listed, so that a rebuild after this
        // snapshot is not refused for slices only waiting to be dropped.
        let (pending, open, quiet) = if open > 0 && nb > 0 {
            let scan = self.scan(collection, nb, None, 0).await?;
            (scan.pending, scan.open, scan.quiet)
        } else {
            (0, open, Vec::new())
        };
        Ok(CacheSnapshot { stock: (has == 1).then_some(stock), pending, version, unsettled: open, quiet_slices: quiet })
    }

    async fn rebuild(
        &self,
        collection: &CollectionId,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
        quantity: i64,
    ) -> InfraResult<Rebuild> {
        let mode = if only_if_missing { "missing" } else { "force" };
        let k = self.keys(collection);
        let nb = buckets_for(quantity);
        let mut keys = vec![k.stock(), k.meta(), k.slices()];
        let mut args = vec![
            snapshot.version.to_string(),
            (saleable - snapshot.pending).to_string(),
            mode.to_owned(),
            nb.to_string(),
        ];
        // The quiet slices the snapshot read: unchanged, they are all that may be registered.
        for (n, len) in &snapshot.quiet_slices {
            keys.push(k.slice(*n));
            args.push(format!("{n}:{len}"));
        }
        let (code, s, _) = self
            .run(
                "redis rebuild script",
                &self.scripts.rebuild,
                keys,
                args.into_iter().map(String::into_bytes).collect(),
            )
            .await?;
        // The count stored is the first one ever set (HSETNX); read it back rather than assume.
        if let Ok(mut m) = self.buckets.write() {
            m.remove(collection);
        }
        Ok(match code.as_str() {
            "SET" => Rebuild::Set(s),
            "LIVE" => Rebuild::Live(s),
            "BUSY" => Rebuild::Busy,
            _ => Rebuild::Race,
        })
    }

    async fn unsettled_before(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
    ) -> InfraResult<Vec<OrderKey>> {
        let Some(nb) = self.bucket_count(collection).await? else { return Ok(Vec::new()) };
        Ok(self.scan(collection, nb, Some(before_ms), limit).await?.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str, order: &str) -> OrderKey {
        OrderKey::new(CollectionId::parse("c").unwrap(), UserId::parse(user).unwrap(), OrderId::parse(order).unwrap())
    }

    #[test]
    fn every_script_that_reads_stock_knows_its_bias() {
        let bias = STOCK_BIAS.to_string();
        for src in [RESERVE_SCRIPT, include_str!("../lua/rebuild.lua"), include_str!("../lua/snapshot.lua")] {
            assert!(src.contains(&bias), "{}", &src[..60]);
        }
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("fs", &CollectionId::parse("drop-1").unwrap());
        for key in [k.stock(), k.meta(), k.slices(), k.bucket(7), k.slice(170_000_000)] {
            assert!(key.starts_with("{fs:c:drop-1}:"), "{key}");
        }
    }

    #[test]
    fn canonical_ids_are_stored_as_16_bytes_and_read_back() {
        let uuid = "0b6f3c2e-8f0a-4d1e-9c3b-2a7e5f1d4c6b";
        let ulid = "01JDZQ7X8KQ3V5M2N4P6R8T0W1";
        assert_eq!(buyer_bytes(&UserId::parse(uuid).unwrap()).len(), 17);
        assert_eq!(order_bytes(&OrderId::parse(ulid).unwrap()).len(), 17);
        // Anything else is kept as given (an upper-case UUID is not canonical: it stays text).
        for u in ["auth0:5f7c", "0B6F3C2E-8F0A-4D1E-9C3B-2A7E5F1D4C6B", "u"] {
            let b = buyer_bytes(&UserId::parse(u).unwrap());
            assert_eq!(read_id(&b, uuid_text), Some((u.to_owned(), b.len())), "{u}");
        }
        let b = buyer_bytes(&UserId::parse(uuid).unwrap());
        assert_eq!(read_id(&b, uuid_text), Some((uuid.to_owned(), 17)));
        let b = order_bytes(&OrderId::parse(ulid).unwrap());
        assert_eq!(read_id(&b, ulid_text), Some((ulid.to_owned(), 17)));
        let lower = "01jdzq7x8kq3v5m2n4p6r8t0w1";
        let b = order_bytes(&OrderId::parse(lower).unwrap());
        assert_eq!(read_id(&b, ulid_text), Some((lower.to_owned(), 27)), "a lower-case ULID stays text");
    }

    #[test]
    fn records_and_slices_parse() {
        let k = key("alice", "o-1");
        let mut v = order_bytes(&k.order);
        v.extend_from_slice(b"P\x02");
        v.extend_from_slice(&e4(1_700_000_000));
        v.extend_from_slice(&e4(1_700_000_005));
        let r = records(&v);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].state, r[0].quantity, r[0].accepted_s, r[0].logged_s),
            (b'P', 2, 1_700_000_000, 1_700_000_005)
        );
        assert_eq!(slice_buckets(&[0, 7, 1, 0, 0, 7]), BTreeSet::from([7, 256]));
        assert!(buckets_for(100_000) >= 1_563 && buckets_for(0) == 1 && buckets_for(i64::MAX) == 1 << 16);
        let nb = buckets_for(100_000);
        assert!(bucket_of(&buyer_bytes(&k.user), nb) < nb);
    }
}
