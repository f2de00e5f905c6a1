//! [`StockCache`] on Redis: the Lua scripts of `src/lua/` plus plain reads.
//!
//! # Keys
//! Per collection, all with the hash tag `{<prefix>:c:<collectionId>}` (one Redis Cluster slot):
//! `:stock`, `:orders`, `:log`, `:users`, `:meta`, `:done` (see `reserve.lua` for their contents).
//! An order lives only there, under its buyer-scoped field `<orderId>:<userId>`
//! ([`OrderKey::scoped`]); there are no per-order keys.

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use crate::domain::{CollectionId, OrderKey, UserId};
use crate::ports::{
    CacheEntry, CacheSnapshot, CacheState, InfraError, InfraResult, OrderRecord, Rebuild, Released, ReserveOutcome,
    ReserveRequest, SettleAs, StockCache,
};

/// The scripts, compiled into the binary; `Script` runs EVALSHA and loads on NOSCRIPT.
struct Scripts {
    reserve: Script,
    settle: Script,
    intent: Script,
    release: Script,
    snapshot: Script,
    rebuild: Script,
    trim: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            reserve: Script::new(RESERVE_SCRIPT),
            settle: Script::new(include_str!("../lua/settle.lua")),
            intent: Script::new(include_str!("../lua/intent.lua")),
            release: Script::new(RELEASE_SCRIPT),
            snapshot: Script::new(include_str!("../lua/snapshot.lua")),
            rebuild: Script::new(include_str!("../lua/rebuild.lua")),
            trim: Script::new(include_str!("../lua/trim.lua")),
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

/// Connects to one node, or to a cluster (following its slots: MOVED/ASK).
pub async fn connect(url: &str, cluster: bool) -> InfraResult<Conn> {
    Ok(if cluster {
        let client = redis::cluster::ClusterClient::new(vec![url]).map_err(err("redis cluster open"))?;
        Conn::Cluster(client.get_async_connection().await.map_err(err("redis cluster connect"))?)
    } else {
        let client = redis::Client::open(url).map_err(err("redis open"))?;
        Conn::Single(ConnectionManager::new(client).await.map_err(err("redis connect"))?)
    })
}

#[derive(Clone)]
pub struct RedisCache {
    con: Conn,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

/// The six keys of one collection, in the order every script expects.
pub fn collection_keys(prefix: &str, collection: &CollectionId) -> [String; 6] {
    let tag = format!("{{{prefix}:c:{collection}}}");
    ["stock", "orders", "log", "users", "meta", "done"].map(|k| format!("{tag}:{k}"))
}

/// The Try script's source.
pub const RESERVE_SCRIPT: &str = include_str!("../lua/reserve.lua");

/// The Try script's keys and arguments, exactly as [`StockCache::reserve`] sends them (the
/// benchmarks measure the same call).
pub fn reserve_call(prefix: &str, r: &ReserveRequest<'_>) -> (Vec<String>, Vec<String>) {
    let keys = collection_keys(prefix, &r.key.collection).to_vec();
    let args = vec![
        r.key.scoped(),
        r.key.user.to_string(),
        r.quantity.to_string(),
        r.now_ms.to_string(),
        r.per_user_limit.unwrap_or(0).to_string(),
        r.stale_before_ms.to_string(),
    ];
    (keys, args)
}

/// The release script's source.
pub const RELEASE_SCRIPT: &str = include_str!("../lua/release.lua");

/// The release script's keys and arguments, exactly as [`StockCache::release`] sends them.
pub fn release_call(prefix: &str, order: &OrderKey, tombstone: bool, now_ms: i64) -> (Vec<String>, Vec<String>) {
    let user = if tombstone { order.user.as_str() } else { "" };
    (collection_keys(prefix, &order.collection).to_vec(), vec![order.scoped(), now_ms.to_string(), user.to_owned()])
}

fn err(op: &'static str) -> impl FnOnce(redis::RedisError) -> InfraError {
    move |e| InfraError::new(op, e)
}

fn parse_state(s: &str) -> Option<CacheState> {
    Some(match s {
        "P" => CacheState::Pending,
        "S" => CacheState::Durable,
        "C" => CacheState::Cancelled,
        "F" => CacheState::Failed,
        _ => return None,
    })
}

/// Parses an `orders` entry `"<state>|<qty>|<acceptedAtMs>|<userId>"`.
fn parse_entry(raw: &str) -> Option<CacheEntry> {
    let mut it = raw.splitn(4, '|');
    let state = parse_state(it.next()?)?;
    let quantity = it.next()?.parse().ok()?;
    let accepted_at_ms = it.next()?.parse().ok()?;
    let user = UserId::parse(it.next()?).ok()?;
    Some(CacheEntry { state, quantity, accepted_at_ms, user })
}

impl RedisCache {
    /// Connects once (both clients reconnect on their own); call at start-up, not per request.
    /// `cluster` follows a Redis Cluster's slots (MOVED/ASK), as ElastiCache Serverless needs.
    pub async fn connect(url: &str, prefix: &str, cluster: bool) -> InfraResult<Self> {
        let con = connect(url, cluster).await?;
        Ok(Self { con, prefix: prefix.to_owned(), scripts: std::sync::Arc::new(Scripts::new()) })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs a collection script and returns its `{code, a, b}` reply.
    async fn run(
        &self,
        op: &'static str,
        script: &Script,
        collection: &CollectionId,
        args: Vec<String>,
    ) -> InfraResult<(String, i64, i64)> {
        let mut inv = script.prepare_invoke();
        for k in collection_keys(&self.prefix, collection) {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut con = self.con.clone();
        inv.invoke_async(&mut con).await.map_err(err(op))
    }
}

impl StockCache for RedisCache {
    async fn reserve(&self, r: &ReserveRequest<'_>) -> InfraResult<ReserveOutcome> {
        let (keys, args) = reserve_call(&self.prefix, r);
        let mut inv = self.scripts.reserve.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut con = self.con.clone();
        let (code, a, _): (String, i64, i64) = inv.invoke_async(&mut con).await.map_err(err("redis try script"))?;
        Ok(match code.as_str() {
            "OK" => ReserveOutcome::Reserved { stock_left: a },
            "CANCELLED" => ReserveOutcome::Cancelled,
            "MISMATCH" => ReserveOutcome::Mismatch,
            "NOCACHE" => ReserveOutcome::NoCache,
            "SOLDOUT" => ReserveOutcome::SoldOut,
            "INSUFFICIENT" => ReserveOutcome::Insufficient { available: a },
            "LIMIT" => ReserveOutcome::LimitExceeded { held: a },
            "REPLAY_STALE" => ReserveOutcome::ReplayStale { accepted_at_ms: a },
            other => match other.strip_prefix("REPLAY_").and_then(parse_state) {
                Some(state) => ReserveOutcome::Replay { state, accepted_at_ms: a },
                None => return Err(InfraError::new("redis try script", format!("unexpected reply {other}"))),
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
        if orders.is_empty() {
            return Ok(0);
        }
        let target = match as_ {
            SettleAs::Durable => "S",
            SettleAs::Failed => "F",
            SettleAs::DurableReturning => "SR",
            SettleAs::FailedReturning => "FR",
        };
        let clear = clear_intents_before.unwrap_or(0);
        let mut args = vec![now_ms.to_string(), target.to_owned(), clear.to_string()];
        args.extend(orders.iter().map(OrderKey::scoped));
        let (_, n, _) = self.run("redis settle script", &self.scripts.settle, collection, args).await?;
        Ok(n as u32)
    }

    async fn mark_intent(&self, order: &OrderRecord, now_ms: i64) -> InfraResult<()> {
        let args = vec![
            order.key().scoped(),
            now_ms.to_string(),
            order.quantity.to_string(),
            order.accepted_at_ms.to_string(),
            order.user.to_string(),
        ];
        self.run("redis intent script", &self.scripts.intent, &order.collection, args).await.map(|_| ())
    }

    async fn release(&self, order: &OrderKey, tombstone: bool, now_ms: i64) -> InfraResult<Released> {
        let (_, args) = release_call(&self.prefix, order, tombstone, now_ms);
        let (code, q, _) = self.run("redis release script", &self.scripts.release, &order.collection, args).await?;
        Ok(match code.as_str() {
            "RETURNED" => Released::Returned(q as u32),
            "ALREADY" => Released::Already,
            "FAILED" => Released::WasFailed,
            "UNLOGGED" => Released::Unlogged,
            _ => Released::Absent,
        })
    }

    async fn entry(&self, order: &OrderKey) -> InfraResult<Option<CacheEntry>> {
        let [_, orders, ..] = collection_keys(&self.prefix, &order.collection);
        let mut con = self.con.clone();
        let v: Option<String> = redis::cmd("HGET")
            .arg(orders)
            .arg(order.scoped())
            .query_async(&mut con)
            .await
            .map_err(err("redis entry"))?;
        Ok(v.as_deref().and_then(parse_entry))
    }

    async fn entries(&self, collection: &CollectionId, orders: &[OrderKey]) -> InfraResult<Vec<Option<CacheEntry>>> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let [_, key, ..] = collection_keys(&self.prefix, collection);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key);
        for o in orders {
            cmd.arg(o.scoped());
        }
        let mut con = self.con.clone();
        let raw: Vec<Option<String>> = cmd.query_async(&mut con).await.map_err(err("redis entries"))?;
        Ok(raw.iter().map(|v| v.as_deref().and_then(parse_entry)).collect())
    }

    async fn trim_settled(&self, collection: &CollectionId, before_ms: i64, limit: usize) -> InfraResult<u32> {
        let (_, n, _) = self
            .run("redis trim script", &self.scripts.trim, collection, vec![before_ms.to_string(), limit.to_string()])
            .await?;
        Ok(n as u32)
    }

    async fn snapshot(&self, collection: &CollectionId) -> InfraResult<CacheSnapshot> {
        let mut inv = self.scripts.snapshot.prepare_invoke();
        for k in collection_keys(&self.prefix, collection) {
            inv.key(k);
        }
        let mut con = self.con.clone();
        let (has, stock, pending, version, unsettled): (i64, i64, i64, i64, i64) =
            inv.invoke_async(&mut con).await.map_err(err("redis snapshot script"))?;
        Ok(CacheSnapshot { stock: (has == 1).then_some(stock), pending, version, unsettled })
    }

    async fn rebuild(
        &self,
        collection: &CollectionId,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
    ) -> InfraResult<Rebuild> {
        let mode = if only_if_missing { "missing" } else { "force" };
        let (code, s, _) = self
            .run(
                "redis rebuild script",
                &self.scripts.rebuild,
                collection,
                vec![snapshot.version.to_string(), (saleable - snapshot.pending).to_string(), mode.to_owned()],
            )
            .await?;
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
        let [_, _, log, ..] = collection_keys(&self.prefix, collection);
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(log)
            .arg("-inf")
            .arg(format!("({before_ms}"))
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut con)
            .await
            .map_err(err("redis unsettled"))?;
        Ok(ids.iter().filter_map(|s| OrderKey::from_scoped(collection, s)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let c = CollectionId::parse("drop-1").unwrap();
        let keys = collection_keys("fs", &c);
        for k in &keys {
            assert!(k.starts_with("{fs:c:drop-1}:"), "{k}");
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = parse_entry("P|3|1700000000000|user|with|bars").map(|e| e.quantity);
        assert_eq!(e, None, "user ids never contain '|', so such an entry is rejected");
        let e = parse_entry("S|3|1700000000000|auth0-42").unwrap();
        assert_eq!(e.state, CacheState::Durable);
        assert_eq!(e.quantity, 3);
        assert_eq!(e.user.as_str(), "auth0-42");
    }
}
