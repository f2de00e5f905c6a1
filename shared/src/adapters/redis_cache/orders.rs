//! [`OrderCache`]: the Try script, and one order's entry (or many) read back from its buyer's
//! value.

use super::codec::{buyer_bytes, entry_of, order_bytes, records};
use super::keys::bucket_of;
use super::scripts::deduct_call;
use super::{RedisCache, err, replies};
use crate::domain::buckets::home_shard;
use crate::domain::{CollectionId, OrderKey};
use crate::ports::{CacheEntry, DeductOutcome, DeductRequest, InfraResult, OrderCache};

impl RedisCache {
    /// Each buyer's value, in order (`None` where the buyer has nothing), all of cache shard
    /// `shard`.
    async fn values(
        &self,
        collection: &CollectionId,
        shard: u32,
        nb: u32,
        buyers: &[Vec<u8>],
    ) -> InfraResult<Vec<Option<Vec<u8>>>> {
        if buyers.is_empty() {
            return Ok(Vec::new());
        }
        let k = self.keys(collection, shard);
        let mut p = redis::pipe();
        for u in buyers {
            p.cmd("HGET").arg(k.bucket(bucket_of(u, nb))).arg(u.as_slice());
        }
        let mut con = self.con.clone();
        p.query_async(&mut con).await.map_err(err("redis read records"))
    }
}

impl OrderCache for RedisCache {
    async fn deduct(&self, r: &DeductRequest<'_>) -> InfraResult<DeductOutcome> {
        let shard = home_shard(&r.key.user, r.shards);
        let Some(nb) = self.bucket_count(&r.key.collection, shard).await? else { return Ok(DeductOutcome::NoCache) };
        let (keys, arg) = deduct_call(&self.prefix, nb, r);
        let reply = self.invoke("redis deduct.lua", &self.scripts.deduct, keys, vec![arg]).await?;
        replies::deduct(reply, r.now_ms)
    }

    async fn entry(&self, order: &OrderKey, shards: u32) -> InfraResult<Option<CacheEntry>> {
        Ok(self.entries(&order.collection, shards, std::slice::from_ref(order)).await?.pop().flatten())
    }

    async fn entries(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
    ) -> InfraResult<Vec<Option<CacheEntry>>> {
        let mut out = vec![None; orders.len()];
        // One pipeline per shard the orders' buyers live in.
        for (shard, at) in by_shard(orders, shards) {
            let Some(nb) = self.bucket_count(collection, shard).await? else { continue };
            let buyers: Vec<Vec<u8>> = at.iter().map(|&i| buyer_bytes(&orders[i].user)).collect();
            let values = self.values(collection, shard, nb, &buyers).await?;
            for (i, v) in at.into_iter().zip(values) {
                let o = &orders[i];
                let ob = order_bytes(&o.order);
                out[i] = records(v.as_deref().unwrap_or_default())
                    .iter()
                    .find(|r| r.order == ob)
                    .and_then(|r| entry_of(r, &o.user));
            }
        }
        Ok(out)
    }
}

/// The orders' indexes grouped by their buyers' cache shard, shards in order.
pub(super) fn by_shard(orders: &[OrderKey], shards: u32) -> std::collections::BTreeMap<u32, Vec<usize>> {
    let mut m = std::collections::BTreeMap::<u32, Vec<usize>>::new();
    for (i, o) in orders.iter().enumerate() {
        m.entry(home_shard(&o.user, shards)).or_default().push(i);
    }
    m
}
