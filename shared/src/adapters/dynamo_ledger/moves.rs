//! [`MoveLog`]: DynamoDB's side of a shard move — the units carried between the two shards' stock
//! buckets in one transaction with the move's own item (`MOVE#<collectionId>#<id>`), and that
//! item read back or written `ABORTED` to call a move off for good.

use serde::{Deserialize, Serialize};

use super::items::{FINAL_TTL_SECONDS, s, to_item};
use super::{DynamoLedger, sdk_err};
use crate::domain::CollectionId;
use crate::ports::{InfraResult, MoveLog, MoveState, WriteError};

/// A shard move's item: it exists once the move committed (`MOVED`) or was called off
/// (`ABORTED`), never both. Not an order: no `collectionId`, so no scan or index counts it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoveItem {
    pk: String,
    state: String,
    at: i64,
    ttl: i64,
}

fn move_pk(collection: &CollectionId, id: &str) -> String {
    format!("MOVE#{collection}#{id}")
}

impl MoveItem {
    fn new(collection: &CollectionId, id: &str, state: MoveState, now_ms: i64) -> Self {
        let state = match state {
            MoveState::Moved => "MOVED",
            MoveState::Aborted => "ABORTED",
        };
        Self {
            pk: move_pk(collection, id),
            state: state.to_owned(),
            at: now_ms,
            ttl: now_ms / 1000 + FINAL_TTL_SECONDS,
        }
    }
}

impl MoveLog for DynamoLedger {
    async fn move_between_shards(
        &self,
        collection: &CollectionId,
        id: &str,
        from: &[(u32, i64)],
        to: u32,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let units: i64 = from.iter().map(|(_, u)| u).sum();
        let mut items = Vec::with_capacity(from.len() + 2);
        for &(k, u) in from {
            items.push(self.bucket_update(
                collection,
                k,
                "SET saleable = saleable - :t, quantity = quantity - :t",
                "saleable >= :t",
                u,
            )?);
        }
        items.push(self.bucket_update(
            collection,
            to,
            "SET saleable = saleable + :t, quantity = quantity + :t",
            "attribute_exists(pk)",
            units,
        )?);
        items.push(self.put_new_item(to_item(&MoveItem::new(collection, id, MoveState::Moved, now_ms))?)?);
        self.transact("dynamodb shard move", items).await
    }

    async fn move_state(&self, collection: &CollectionId, id: &str) -> InfraResult<Option<MoveState>> {
        let item: Option<MoveItem> = self.get(s(move_pk(collection, id)), "dynamodb get shard move").await?;
        Ok(item.map(|i| if i.state == "MOVED" { MoveState::Moved } else { MoveState::Aborted }))
    }

    /// False too while the move's transaction holds the item (DynamoDB answers a write to it
    /// with a transaction conflict): it commits or fails shortly, and the caller reads again.
    async fn abort_move(&self, collection: &CollectionId, id: &str, now_ms: i64) -> InfraResult<bool> {
        let item = to_item(&MoveItem::new(collection, id, MoveState::Aborted, now_ms))?;
        let res = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_conditional_check_failed_exception() || s.is_transaction_conflict_exception()
                }) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err("dynamodb abort shard move")(e)),
        }
    }
}
