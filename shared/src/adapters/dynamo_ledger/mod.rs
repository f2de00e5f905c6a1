//! [`Ledger`] on DynamoDB: one table, conditional writes and transactions, in rooms:
//! [`items`] (keys and attributes; the layout is written once in docs/DESIGN.md#dynamodb-items),
//! [`reads`] (gets, batched gets, index queries), [`stock`] (the transactions on a collection's
//! stock buckets), [`tally`] (confirm, and counting confirmed units into their buckets) and this
//! file (the port's methods).

mod items;
mod reads;
mod stock;
mod tally;

pub use items::{EXPIRY_INDEX, EXPIRY_SHARDS, KIND_INDEX, item_bytes, reservation_item};
pub use tally::{TALLY_CHUNK, TALLY_INDEX};

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Get, TransactGetItem};
use serde::Serialize;

use self::items::{
    BucketItem, COLLECTIONS, CollectionItem, FINAL_TTL_SECONDS, OrderItem, bucket_pk, col_pk, n, ord_key, ord_pk,
    parse_ord_key, s, to_item,
};
use crate::domain::{CancelReason, CollectionId, CollectionSpec, OrderKey, Status, StockLevels};
use crate::ports::{
    CollectionRecord, CreateOutcome, InfraError, InfraResult, ItemFailure, Landing, Ledger, OrderRecord, Tombstone,
    Untallied, WriteError,
};

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

    /// The records of these headers, each with its buckets read in one batch (per item
    /// consistent, not a snapshot across items: for listing many collections at once, where a
    /// torn read only makes a collection look changed).
    async fn with_buckets(&self, headers: Vec<CollectionItem>) -> InfraResult<Vec<CollectionRecord>> {
        let keys = headers.iter().flat_map(|h| (0..h.buckets).map(|k| bucket_pk(&h.collection_id, k))).collect();
        let mut levels: HashMap<(CollectionId, u32), StockLevels> = self
            .batch_get::<BucketItem>(keys, "dynamodb batch get buckets")
            .await?
            .into_iter()
            .map(|b| ((b.collection_id.clone(), b.bucket), b.levels()))
            .collect();
        headers
            .into_iter()
            .map(|h| {
                let buckets = (0..h.buckets)
                    .map(|k| {
                        levels.remove(&(h.collection_id.clone(), k)).ok_or_else(|| {
                            InfraError::new(
                                "dynamodb read collection",
                                format!("{} has no bucket {k}", h.collection_id),
                            )
                        })
                    })
                    .collect::<InfraResult<Vec<_>>>()?;
                Ok(h.into_record(buckets))
            })
            .collect()
    }
}

impl Ledger for DynamoLedger {
    async fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> InfraResult<CreateOutcome> {
        match self.transact("dynamodb create collection", self.creation(id, spec, now_ms)?).await {
            Ok(()) => return Ok(CreateOutcome::Created),
            Err(WriteError::Cancelled(r)) if r.first() == Some(&ItemFailure::ConditionFailed) => {}
            Err(WriteError::Infra(e)) => return Err(e),
            Err(e) => return Err(InfraError::new("dynamodb create collection", e)),
        }
        let existing = self
            .collection(id)
            .await?
            .ok_or_else(|| InfraError::new("dynamodb create collection", "exists but cannot be read back"))?;
        Ok(if existing.spec == *spec {
            CreateOutcome::Same
        } else if existing.spec.quantity != spec.quantity {
            CreateOutcome::QuantityDiffers
        } else {
            CreateOutcome::SettingsDiffer
        })
    }

    async fn collection(&self, id: &CollectionId) -> InfraResult<Option<CollectionRecord>> {
        let Some(header) = self.get::<CollectionItem>(col_pk(id), "dynamodb get collection").await? else {
            return Ok(None);
        };
        // One snapshot of every bucket (TransactGetItems is serialisable against the write
        // transactions): a BatchGetItem could see one half of a move, and a decision on it (a
        // short bucket's refusals, an identity check, drift) would be wrong.
        let op = "dynamodb read buckets";
        let mut gets = Vec::with_capacity(header.buckets as usize);
        for k in 0..header.buckets {
            let get = Get::builder()
                .table_name(&self.table)
                .key("pk", bucket_pk(id, k))
                .build()
                .map_err(|e| InfraError::new(op, e))?;
            gets.push(TransactGetItem::builder().get(get).build());
        }
        let out = self.client.transact_get_items().set_transact_items(Some(gets)).send().await.map_err(sdk_err(op))?;
        let buckets = out
            .responses
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let item = r.item.ok_or_else(|| InfraError::new(op, format!("{id} has no bucket {k}")))?;
                serde_dynamo::from_item::<_, BucketItem>(item).map(|b| b.levels()).map_err(|e| InfraError::new(op, e))
            })
            .collect::<InfraResult<Vec<StockLevels>>>()?;
        if buckets.len() != header.buckets as usize {
            return Err(InfraError::new(op, format!("{id}: {} of {} buckets read", buckets.len(), header.buckets)));
        }
        Ok(Some(header.into_record(buckets)))
    }

    async fn collections(&self) -> InfraResult<Vec<CollectionId>> {
        let values = [(":k", s(COLLECTIONS))];
        self.query_index("dynamodb list collections", KIND_INDEX, "gsi2pk = :k", &values, usize::MAX, |item| {
            Ok(match item.get("gsi2sk") {
                Some(AttributeValue::S(id)) => CollectionId::parse(id).ok(),
                _ => None,
            })
        })
        .await
    }

    async fn record_drift(&self, id: &CollectionId, drift: i64) -> InfraResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", col_pk(id))
            .update_expression("SET lastDrift = :d")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", n(drift))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_err("dynamodb record drift"))
    }

    async fn order(&self, key: &OrderKey) -> InfraResult<Option<OrderRecord>> {
        Ok(self.get::<OrderItem>(ord_pk(key), "dynamodb get order").await?.map(OrderItem::into_record))
    }

    async fn orders(&self, ids: &[OrderKey]) -> InfraResult<Vec<OrderRecord>> {
        let mut uniq: Vec<&OrderKey> = ids.iter().collect();
        uniq.sort();
        uniq.dedup();
        let items: Vec<OrderItem> =
            self.batch_get(uniq.into_iter().map(ord_pk).collect(), "dynamodb batch get orders").await?;
        Ok(items.into_iter().map(OrderItem::into_record).collect())
    }

    async fn collection_records(&self, ids: &[CollectionId]) -> InfraResult<Vec<CollectionRecord>> {
        let headers: Vec<CollectionItem> =
            self.batch_get(ids.iter().map(col_pk).collect(), "dynamodb batch get collections").await?;
        self.with_buckets(headers).await
    }

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

    async fn untallied(&self, collection: &CollectionId, bucket: u32, limit: usize) -> InfraResult<Vec<Untallied>> {
        self.list_untallied(collection, bucket, limit).await
    }

    async fn tally(&self, collection: &CollectionId, bucket: u32, orders: &[Untallied]) -> Result<(), WriteError> {
        if orders.is_empty() {
            return Ok(());
        }
        if orders.len() > TALLY_CHUNK {
            let detail = format!("{} orders in one tally (at most {TALLY_CHUNK})", orders.len());
            return Err(InfraError::new("dynamodb tally", detail).into());
        }
        self.transact("dynamodb tally", self.tally_items(collection, bucket, orders)?).await
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

    async fn expired_reservations(&self, deadline_s: i64, limit: usize) -> InfraResult<Vec<OrderKey>> {
        let mut out = Vec::new();
        for shard in 0..EXPIRY_SHARDS {
            let values = [(":p", s(format!("EXP#{shard}"))), (":d", n(deadline_s))];
            let condition = "gsi1pk = :p AND gsi1sk <= :d";
            out.extend(
                self.query_index(
                    "dynamodb query expired",
                    EXPIRY_INDEX,
                    condition,
                    &values,
                    limit - out.len(),
                    |item| {
                        Ok(match item.get("pk") {
                            Some(AttributeValue::S(pk)) => parse_ord_key(pk),
                            _ => None,
                        })
                    },
                )
                .await?,
            );
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
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
