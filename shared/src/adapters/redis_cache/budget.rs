//! [`BuyerBudgets`]: each buyer's request count in the current window (`budget.lua`), outside any
//! collection: `<prefix>:b:<buyer>`, one key per call, so Redis Cluster safe.

use std::time::Duration;

use super::{RedisCache, replies};
use crate::domain::UserId;
use crate::ports::{BuyerBudgets, InfraResult};

impl BuyerBudgets for RedisCache {
    async fn spend_request(&self, user: &UserId, requests: u32, window: Duration) -> InfraResult<Option<Duration>> {
        let keys = vec![format!("{}:b:{}", self.prefix, user)];
        let args = vec![requests.to_string().into_bytes(), (window.as_millis() as u64).to_string().into_bytes()];
        let wait_ms = replies::budget(self.invoke("redis budget.lua", &self.scripts.budget, keys, args).await?)?;
        Ok(wait_ms.map(Duration::from_millis))
    }
}
