//! [`BuyerBudgets`]: a cancel's request of the buyer budget (`budget.lua`), counted in the budget
//! record that opens the buyer's value in their bucket (a Try counts in `deduct.lua`).

use std::time::Duration;

use super::codec::{budget_record, buyer_bytes};
use super::keys::user_bucket;
use super::{RedisCache, replies};
use crate::domain::buckets::home_shard;
use crate::domain::{BuyerBudget, OrderKey};
use crate::ports::{BuyerBudgets, InfraResult};

impl BuyerBudgets for RedisCache {
    async fn spend_request(
        &self,
        order: &OrderKey,
        shards: u32,
        budget: BuyerBudget,
        now_ms: i64,
    ) -> InfraResult<Option<Duration>> {
        // A collection Redis does not know (not warmed up, or its cache lost) has no buckets to
        // count in: the cancel goes on uncounted, as it would without Redis at all.
        let shard = home_shard(&order.user, shards);
        let Some(nb) = self.bucket_count(&order.collection, shard).await? else { return Ok(None) };
        let window = budget.window_at(now_ms);
        let keys = vec![self.keys(&order.collection, shard).bucket(user_bucket(&order.user, nb))];
        let args = vec![
            buyer_bytes(&order.user),
            budget_record(&window).to_vec(),
            budget.requests.to_string().into_bytes(),
            window.left(now_ms).as_millis().to_string().into_bytes(),
        ];
        let wait_ms = replies::budget(self.invoke("redis budget.lua", &self.scripts.budget, keys, args).await?)?;
        Ok(wait_ms.map(Duration::from_millis))
    }
}
