//! [`OrderCache`]: the Try script, and one order's entry (or many) read back from its buyer's
//! value.

use super::codec::{buyer_bytes, entry_of, order_bytes, records};
use super::keys::bucket_of;
use super::scripts::deduct_call;
use super::{RedisCache, err, replies};
use crate::domain::{CollectionId, OrderKey};
use crate::ports::{CacheEntry, DeductOutcome, DeductRequest, InfraResult, OrderCache};

impl RedisCache {
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
}

impl OrderCache for RedisCache {
    async fn deduct(&self, r: &DeductRequest<'_>) -> InfraResult<DeductOutcome> {
        let Some(nb) = self.bucket_count(&r.key.collection).await? else { return Ok(DeductOutcome::NoCache) };
        let (keys, arg) = deduct_call(&self.prefix, nb, r);
        let reply = self.invoke("redis deduct.lua", &self.scripts.deduct, keys, vec![arg]).await?;
        replies::deduct(reply, r.now_ms)
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
}
