//! The stock cache ports on Redis: the Lua scripts of `src/lua/` plus plain reads. The key layout
//! is written once, in docs/DESIGN.md#redis-layout. One module per job:
//! [`conn`] (one node or a cluster), [`keys`] (key naming, buckets, slices), [`codec`] (packed
//! ids, arguments and records), [`scripts`] (the scripts and their one stock bias), [`replies`]
//! (every reply decoded strictly), and one per port: [`orders`] (Try, entries), [`settling`],
//! [`warmup`], [`time_index`] (reconciliation's), [`turns`] (write turns), [`budget`] (buyers'),
//! [`moves`] (shard moves), [`raise`] (a raise of the cache shards).

mod budget;
mod codec;
mod conn;
mod keys;
mod moves;
mod orders;
mod raise;
mod replies;
mod scripts;
mod settling;
mod time_index;
mod turns;
mod warmup;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use redis::{Script, Value};

pub use codec::{buyer_bytes, order_bytes};
pub use conn::{Conn, RESPONSE_TIMEOUT, connect};
pub use keys::{BUYERS_PER_BUCKET, Keys, SLICE_SECONDS, bucket_of, buckets_for};
pub use scripts::{STOCK_BIAS, deduct_call, deduct_script, release_call, release_script, stored_stock};

use crate::domain::buckets::home_shard;
use crate::domain::{CollectionId, OrderKey};
use crate::ports::{InfraError, InfraResult};

pub(crate) fn err(op: &'static str) -> impl FnOnce(redis::RedisError) -> InfraError {
    move |e| InfraError::new(op, e)
}

#[derive(Clone)]
pub struct RedisCache {
    con: Conn,
    prefix: String,
    scripts: Arc<scripts::Scripts>,
    /// Buyer bucket counts by cache shard (fixed when the shard is first cached).
    buckets: Arc<RwLock<HashMap<(CollectionId, u32), u32>>>,
}

impl RedisCache {
    /// Connects once (both clients reconnect on their own); call at start-up, not per request.
    /// `cluster` follows a Redis Cluster's slots (MOVED/ASK), as ElastiCache Serverless needs.
    pub async fn connect(url: &str, prefix: &str, cluster: bool) -> InfraResult<Self> {
        let con = connect(url, cluster).await?;
        Ok(Self {
            con,
            prefix: prefix.to_owned(),
            scripts: Arc::new(scripts::Scripts::new()),
            buckets: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Cache shard `shard`'s keys.
    pub fn keys(&self, collection: &CollectionId, shard: u32) -> Keys {
        Keys::new(&self.prefix, collection, shard)
    }

    /// A cache shard's buyer bucket count, `None` before its first warm-up (nothing is cached
    /// there then).
    pub async fn bucket_count(&self, collection: &CollectionId, shard: u32) -> InfraResult<Option<u32>> {
        let at = (collection.clone(), shard);
        if let Some(n) = self.buckets.read().ok().and_then(|m| m.get(&at).copied()) {
            return Ok(Some(n));
        }
        let mut con = self.con.clone();
        let n: Option<u32> = redis::cmd("HGET")
            .arg(self.keys(collection, shard).meta())
            .arg("nb")
            .query_async(&mut con)
            .await
            .map_err(err("redis bucket count"))?;
        if let (Some(n), Ok(mut m)) = (n, self.buckets.write()) {
            m.insert(at, n);
        }
        Ok(n)
    }

    /// Forgets a shard's bucket count (a rebuild may have set it: read it back next time).
    fn forget_bucket_count(&self, collection: &CollectionId, shard: u32) {
        if let Ok(mut m) = self.buckets.write() {
            m.remove(&(collection.clone(), shard));
        }
    }

    /// The buyer bucket key and stored buyer of an order, of a collection of `shards` cache shards.
    pub async fn location(&self, key: &OrderKey, shards: u32) -> InfraResult<Option<(String, Vec<u8>)>> {
        let shard = home_shard(&key.user, shards);
        let Some(nb) = self.bucket_count(&key.collection, shard).await? else { return Ok(None) };
        let u = buyer_bytes(&key.user);
        Ok(Some((self.keys(&key.collection, shard).bucket(bucket_of(&u, nb)), u)))
    }

    /// Σ qty of every pending record in every buyer bucket of one shard (a check for tests and
    /// the demo: each must be in the time index). Reads every bucket: never on a request path.
    pub async fn pending_units_everywhere(&self, collection: &CollectionId, shard: u32) -> InfraResult<i64> {
        let Some(nb) = self.bucket_count(collection, shard).await? else { return Ok(0) };
        let k = self.keys(collection, shard);
        let mut con = self.con.clone();
        let mut sum = 0;
        for b in 0..nb {
            let all: Vec<Vec<u8>> =
                redis::cmd("HVALS").arg(k.bucket(b)).query_async(&mut con).await.map_err(err("redis hvals"))?;
            sum += all
                .iter()
                .flat_map(|v| codec::records(v))
                .filter(|r| r.state == b'P')
                .map(|r| i64::from(r.quantity))
                .sum::<i64>();
        }
        Ok(sum)
    }

    /// Runs a script; its reply is decoded by [`replies`].
    async fn invoke(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> InfraResult<Value> {
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
}
