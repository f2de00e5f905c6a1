//! [`Settling`]: what DynamoDB decided, told to Redis: entries settled, cancel intents logged,
//! shares returned at most once, each on the buyer's cache shard.

use super::codec::ident;
use super::keys::{secs, slice_of, user_bucket};
use super::orders::by_shard;
use super::scripts::release_call;
use super::{RedisCache, replies};
use crate::domain::buckets::home_shard;
use crate::domain::{CacheShard, CollectionId, OrderKey};
use crate::ports::{InfraResult, OrderRecord, Released, SettleAs, Settling};

impl Settling for RedisCache {
    async fn settle(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
        as_: SettleAs,
        clear_intents_before: Option<i64>,
        now_ms: i64,
    ) -> InfraResult<u32> {
        let target = match as_ {
            SettleAs::Durable => "S",
            SettleAs::Failed => "F",
            SettleAs::DurableReturning => "SR",
            SettleAs::FailedReturning => "FR",
        };
        let mut settled = 0;
        // One call per cache shard the orders' buyers live in.
        for (shard, at) in by_shard(orders, shards) {
            let Some(nb) = self.bucket_count(collection, shard).await? else { continue };
            let k = self.keys(collection, shard);
            let mut keys = vec![k.stock(shards), k.meta()];
            let mut args = vec![
                secs(now_ms).to_string().into_bytes(),
                target.as_bytes().to_vec(),
                clear_intents_before.map_or(0, secs).to_string().into_bytes(),
                shards.max(1).to_string().into_bytes(),
            ];
            for o in at.into_iter().map(|i| &orders[i]) {
                keys.push(k.bucket(user_bucket(&o.user, nb)));
                args.push(ident(o));
            }
            const S: &str = "redis settle.lua";
            let reply = self.invoke(S, &self.scripts.settle, keys, args).await?;
            replies::in_layout(S, &reply)?;
            settled += replies::count(S, "SETTLED", reply)?;
        }
        Ok(settled)
    }

    async fn log_intent(&self, order: &OrderRecord, shards: u32, now_ms: i64) -> InfraResult<()> {
        let key = order.key();
        let shard = home_shard(&key.user, shards);
        let Some(nb) = self.bucket_count(&key.collection, shard).await? else { return Ok(()) };
        let k = self.keys(&key.collection, shard);
        let slice = slice_of(now_ms);
        let bucket = user_bucket(&key.user, nb);
        let keys = vec![k.stock(shards), k.meta(), k.bucket(bucket), k.slice(slice), k.slices()];
        let args = vec![
            ident(&key),
            secs(now_ms).to_string().into_bytes(),
            order.quantity.to_string().into_bytes(),
            secs(order.accepted_at_ms).to_string().into_bytes(),
            slice.to_string().into_bytes(),
            (bucket as u16).to_be_bytes().to_vec(),
            shards.max(1).to_string().into_bytes(),
        ];
        replies::intent(self.invoke("redis intent.lua", &self.scripts.intent, keys, args).await?).map(|_| ())
    }

    async fn release(&self, order: &OrderKey, shards: u32, tombstone: bool, now_ms: i64) -> InfraResult<Released> {
        let shard = home_shard(&order.user, shards);
        let Some(nb) = self.bucket_count(&order.collection, shard).await? else { return Ok(Released::Absent) };
        let (keys, args) = release_call(&self.prefix, CacheShard::new(shard, shards), nb, order, tombstone, now_ms);
        replies::release(self.invoke("redis release.lua", &self.scripts.release, keys, args).await?)
    }
}
