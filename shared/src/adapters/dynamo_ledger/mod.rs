//! The ledger ports on DynamoDB: one table, conditional writes and transactions, in rooms:
//! [`items`] (keys and attributes; the layout is written once in docs/DESIGN.md#dynamodb-items),
//! [`catalog`] (collections), [`reads`] (gets, batched gets, index queries; the order book),
//! [`stock`] (the transactions on a collection's stock buckets), [`tally`] (confirm, and
//! counting confirmed units into their buckets), [`moves`] (shard moves' transactions and items)
//! and this file (the client, errors and the
//! conditional writes of orders and their units).

mod catalog;
mod items;
mod moves;
mod reads;
mod stock;
mod tally;

pub use items::{EXPIRY_INDEX, EXPIRY_SHARDS, KIND_INDEX, item_bytes, reservation_item};
pub use tally::{TALLY_CHUNK, TALLY_INDEX};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use serde::Serialize;

use self::items::{FINAL_TTL_SECONDS, OrderItem, ord_key, to_item};
use crate::domain::{CancelReason, CollectionId, Status};
use crate::ports::{InfraError, InfraResult, ItemFailure, Landing, OrderRecord, StockWrites, Tombstone, WriteError};

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

fn failure(code: Option<&str>) -> ItemFailure {
    match code {
        None | Some("None") | Some("") => ItemFailure::None,
        Some("ConditionalCheckFailed") => ItemFailure::ConditionFailed,
        Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded") => {
            ItemFailure::Retryable
        }
        Some(_) => ItemFailure::Other,
    }
}

fn map_transact_error(op: &'static str, e: SdkError<TransactWriteItemsError>) -> WriteError {
    match e.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            WriteError::Cancelled(c.cancellation_reasons().iter().map(|r| failure(r.code())).collect())
        }
        other => WriteError::Infra(InfraError::new(op, aws_sdk_dynamodb::error::DisplayErrorContext(other))),
    }
}

/// Maps an SDK error to an [`InfraError`] naming the operation, with the SDK's full context.
pub(super) fn sdk_err<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    op: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> InfraError {
    move |e| InfraError::new(op, aws_sdk_dynamodb::error::DisplayErrorContext(e))
}

impl DynamoLedger {
    /// Puts an item only where none is (`attribute_not_exists(pk)`): `false` when one was there.
    async fn put_new<T: Serialize>(&self, op: &'static str, item: &T) -> InfraResult<bool> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(sdk_err(op)(e)),
        }
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

impl StockWrites for DynamoLedger {
    async fn apply_reservations(
        &self,
        collection: &CollectionId,
        bucket: u32,
        payment_window_seconds: u32,
        orders: &[Landing<'_>],
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let total: i64 =
            orders.iter().filter(|o| o.status.holds_durable_stock()).map(|o| i64::from(o.message.quantity)).sum();
        let mut items = vec![self.take(collection, bucket, total)?];
        for o in orders {
            items.push(self.put_new_item(reservation_item(
                o.message,
                o.status,
                payment_window_seconds,
                bucket,
                now_ms,
            )?)?);
        }
        self.transact("dynamodb apply reservations", items).await
    }

    async fn move_stock(&self, collection: &CollectionId, from: u32, to: u32, units: i64) -> Result<(), WriteError> {
        self.transact("dynamodb move stock", self.move_items(collection, from, to, units)?).await
    }

    async fn confirm(&self, order: &OrderRecord, now_ms: i64) -> Result<(), WriteError> {
        self.confirm_order(order, now_ms).await
    }

    async fn cancel_reserved(
        &self,
        orders: &[OrderRecord],
        reason: CancelReason,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let Some(first) = orders.first() else { return Ok(()) };
        if let Some(o) = orders.iter().find(|o| o.bucket != first.bucket || o.collection != first.collection) {
            let detail = format!("{} is in another bucket than {}", o.key(), first.key());
            return Err(InfraError::new("dynamodb cancel", detail).into());
        }
        let q: i64 = orders.iter().map(|o| i64::from(o.quantity)).sum();
        let mut items = vec![self.bucket_update(
            &first.collection,
            first.bucket,
            "SET saleable = saleable + :t, reserved = reserved - :t",
            "reserved >= :t",
            q,
        )?];
        for o in orders {
            items.push(self.leave_reserved(o, Status::Cancelled, Some(reason), now_ms)?);
        }
        self.transact("dynamodb cancel", items).await
    }

    async fn put_tombstone(&self, t: &Tombstone<'_>, now_ms: i64) -> InfraResult<bool> {
        let item = OrderItem {
            pk: ord_key(t.key),
            order_id: t.key.order.clone(),
            collection_id: t.key.collection.clone(),
            user_id: t.key.user.clone(),
            quantity: t.quantity,
            status: Status::Cancelled,
            accepted_at: t.accepted_at_ms,
            expires_at: None,
            reason: Some(t.reason.as_str().to_owned()),
            took_stock: false,
            bucket: None,
            updated_at: now_ms,
            gsi1pk: None,
            gsi1sk: None,
            gsi3pk: None,
            ttl: Some(now_ms / 1000 + FINAL_TTL_SECONDS),
        };
        self.put_new("dynamodb put tombstone", &item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_codes_map_to_failures() {
        assert_eq!(failure(Some("None")), ItemFailure::None);
        assert_eq!(failure(None), ItemFailure::None);
        assert_eq!(failure(Some("ConditionalCheckFailed")), ItemFailure::ConditionFailed);
        assert_eq!(failure(Some("TransactionConflict")), ItemFailure::Retryable);
        assert_eq!(failure(Some("ThrottlingError")), ItemFailure::Retryable);
        assert_eq!(failure(Some("ValidationError")), ItemFailure::Other);
    }
}
