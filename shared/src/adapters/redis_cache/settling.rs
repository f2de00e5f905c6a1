//! [`Settling`]: what DynamoDB decided, told to Redis: entries settled, cancel intents logged,
//! shares returned at most once.

use super::codec::ident;
use super::keys::{secs, slice_of, user_bucket};
use super::scripts::release_call;
use super::{RedisCache, replies};
use crate::domain::{CollectionId, OrderKey};
use crate::ports::{InfraResult, OrderRecord, Released, SettleAs, Settling};

impl Settling for RedisCache {
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
            keys.push(k.bucket(user_bucket(&o.user, nb)));
            args.push(ident(o));
        }
        const S: &str = "redis settle.lua";
        replies::count(S, "SETTLED", self.invoke(S, &self.scripts.settle, keys, args).await?)
    }

    async fn log_intent(&self, order: &OrderRecord, now_ms: i64) -> InfraResult<()> {
        let key = order.key();
        let Some(nb) = self.bucket_count(&key.collection).await? else { return Ok(()) };
        let k = self.keys(&key.collection);
        let slice = slice_of(now_ms);
        let bucket = user_bucket(&key.user, nb);
        let keys = vec![k.stock(), k.meta(), k.bucket(bucket), k.slice(slice), k.slices()];
        let args = vec![
            ident(&key),
            secs(now_ms).to_string().into_bytes(),
            order.quantity.to_string().into_bytes(),
            secs(order.accepted_at_ms).to_string().into_bytes(),
            slice.to_string().into_bytes(),
            (bucket as u16).to_be_bytes().to_vec(),
        ];
        replies::intent(self.invoke("redis intent.lua", &self.scripts.intent, keys, args).await?).map(|_| ())
    }

    async fn release(&self, order: &OrderKey, tombstone: bool, now_ms: i64) -> InfraResult<Released> {
        let Some(nb) = self.bucket_count(&order.collection).await? else { return Ok(Released::Absent) };
        let (keys, args) = release_call(&self.prefix, nb, order, tombstone, now_ms);
        replies::release(self.invoke("redis release.lua", &self.scripts.release, keys, args).await?)
    }
}
