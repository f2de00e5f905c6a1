//! [`WriteTurns`]: a stock bucket's write turn (`turn.lua`, on shard 0's tag), taken by every
//! DynamoDB transaction on the bucket's item but a shard move's, so that they queue instead of
//! conflicting.

use std::time::Duration;

use super::{RedisCache, replies};
use crate::domain::CollectionId;
use crate::ports::{InfraResult, WriteTurns};

const S: &str = "redis turn.lua";

impl WriteTurns for RedisCache {
    async fn take_turn(
        &self,
        collection: &CollectionId,
        bucket: u32,
        holder: &str,
        ttl: Duration,
    ) -> InfraResult<bool> {
        let keys = vec![self.keys(collection, 0).turn(bucket)];
        let args =
            vec![b"take".to_vec(), holder.as_bytes().to_vec(), (ttl.as_millis() as u64).to_string().into_bytes()];
        replies::either(S, "TAKEN", "HELD", self.invoke(S, &self.scripts.turn, keys, args).await?)
    }

    async fn give_turn(&self, collection: &CollectionId, bucket: u32, holder: &str) -> InfraResult<()> {
        let keys = vec![self.keys(collection, 0).turn(bucket)];
        let args = vec![b"give".to_vec(), holder.as_bytes().to_vec()];
        replies::either(S, "GIVEN", "NOT_HELD", self.invoke(S, &self.scripts.turn, keys, args).await?).map(|_| ())
    }
}
