//! [`Ledger`] on DynamoDB: one table, conditional writes and transactions.
//!
//! # Items
//! - Collection `pk = "COL#<id>"`: `quantity` (fixed), `saleable`, `reserved`, `confirmed`,
//!   `perUserLimit?`, `paymentWindowSeconds`, `maxPerOrder`, `createdAt`, `lastDrift?`;
//!   `gsi2pk = "COLLECTIONS"`, `gsi2sk = <id>` list collections (index `byKind`, keys only; the keys
//!   never change, so stock updates never write the index).
//! - Reservation `pk = "ORD#<collectionId>#<orderId>#<userId>"` (an order id is scoped to its
//!   buyer and collection; neither id contains `#`, so the key parses back):
//!   `collectionId`, `orderId`, `userId`, `quantity`, `status`,
//!   `acceptedAt` (ms), `expiresAt?` (s), `reason?`, `tookStock`; while RESERVED,
//!   `gsi1pk = "EXP#<0..15>"`, `gsi1sk = expiresAt` (index `byExpiry`, sparse, sharded so the
//!   timeout sweep never makes one hot partition). CANCELLED and FAILED records carry `ttl` (30
//!   days: longer than any SQS message can live, so a tombstone outlives every late message);
//!   CONFIRMED ones never expire (the stock identity is summed over them).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use serde::{Deserialize, Serialize};

use crate::domain::{CancelReason, CollectionId, CollectionSpec, OrderId, OrderKey, Status, StockLevels, UserId};
use crate::ports::{
    CollectionRecord, CreateOutcome, InfraError, InfraResult, ItemFailure, Ledger, OrderRecord, ReservationMessage,
    Tombstone, WriteError,
};

pub const EXPIRY_INDEX: &str = "byExpiry";
pub const KIND_INDEX: &str = "byKind";
pub const EXPIRY_SHARDS: u32 = 16;
const COLLECTIONS: &str = "COLLECTIONS";
/// Final records expire after 30 days.
const FINAL_TTL_SECONDS: i64 = 30 * 86_400;

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

fn col_pk(id: &CollectionId) -> AttributeValue {
    AttributeValue::S(format!("COL#{id}"))
}
fn ord_key(key: &OrderKey) -> String {
    format!("ORD#{}#{}#{}", key.collection, key.order, key.user)
}
fn ord_pk(key: &OrderKey) -> AttributeValue {
    AttributeValue::S(ord_key(key))
}
/// Parses [`ord_key`] back.
fn parse_ord_key(pk: &str) -> Option<OrderKey> {
    let mut it = pk.strip_prefix("ORD#")?.splitn(3, '#');
    let collection = CollectionId::parse(it.next()?).ok()?;
    let order = OrderId::parse(it.next()?).ok()?;
    let user = UserId::parse(it.next()?).ok()?;
    Some(OrderKey::new(collection, user, order))
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn expiry_shard(key: &OrderKey) -> String {
    // FNV-1a: stable across processes and builds.
    let h = ord_key(key).bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("EXP#{}", h % EXPIRY_SHARDS)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CollectionItem {
    pk: String,
    collection_id: CollectionId,
    quantity: i64,
    saleable: i64,
    reserved: i64,
    confirmed: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per_user_limit: Option<u32>,
    payment_window_seconds: u32,
    max_per_order: u32,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_drift: Option<i64>,
    gsi2pk: String,
    gsi2sk: String,
}

impl CollectionItem {
    fn into_record(self) -> CollectionRecord {
        CollectionRecord {
            id: self.collection_id,
            spec: CollectionSpec {
                quantity: self.quantity.max(0) as u64,
                per_user_limit: self.per_user_limit,
                payment_window_seconds: self.payment_window_seconds,
                max_per_order: self.max_per_order,
            },
            levels: StockLevels {
                quantity: self.quantity,
                saleable: self.saleable,
                reserved: self.reserved,
                confirmed: self.confirmed,
            },
            last_drift: self.last_drift,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem {
    pk: String,
    order_id: OrderId,
    collection_id: CollectionId,
    user_id: UserId,
    quantity: u32,
    status: Status,
    accepted_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    took_stock: bool,
    updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
}

impl OrderItem {
    fn into_record(self) -> OrderRecord {
        OrderRecord {
            order: self.order_id,
            collection: self.collection_id,
            user: self.user_id,
            quantity: self.quantity,
            status: self.status,
            accepted_at_ms: self.accepted_at,
            expires_at: self.expires_at,
            reason: self.reason,
            took_stock: self.took_stock,
        }
    }
}

fn to_item<T: Serialize>(v: &T) -> InfraResult<HashMap<String, AttributeValue>> {
    serde_dynamo::to_item(v).map_err(|e| InfraError::new("dynamodb encode item", e))
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
fn sdk_err<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    op: &'static str,
) -> impl FnOnce(SdkError<E, R>) -> InfraError {
    move |e| InfraError::new(op, aws_sdk_dynamodb::error::DisplayErrorContext(e))
}

/// Retries of a BatchGetItem's unprocessed keys before giving up (≈ 5 s of backoff).
const BATCH_GET_ATTEMPTS: u32 = 8;

impl DynamoLedger {
    /// Strongly consistent reads of these keys, 100 per BatchGetItem, unprocessed keys retried
    /// with backoff; the items found, decoded (keys without an item are left out).
    async fn batch_get<T: serde::de::DeserializeOwned>(
        &self,
        pks: Vec<AttributeValue>,
        what: &'static str,
    ) -> InfraResult<Vec<T>> {
        let mut out = Vec::with_capacity(pks.len());
        for chunk in pks.chunks(100) {
            let keys = chunk.iter().map(|pk| HashMap::from([("pk".to_owned(), pk.clone())])).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| InfraError::new("dynamodb build batch get", e))?,
            );
            let mut attempt = 0u32;
            while let Some(req) = request.take() {
                let res =
                    self.client.batch_get_item().request_items(&self.table, req).send().await.map_err(sdk_err(what))?;
                for item in res.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    out.push(serde_dynamo::from_item(item).map_err(|e| InfraError::new(what, e))?);
                }
                request = res.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
                if request.is_some() {
                    attempt += 1;
                    if attempt > BATCH_GET_ATTEMPTS {
                        return Err(InfraError::new(what, "keys still unprocessed after retries (throttled)"));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
        Ok(out)
    }

    /// Reads one item by key, consistently, and decodes it.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        pk: AttributeValue,
        op: &'static str,
    ) -> InfraResult<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err(op))?;
        out.item.map(serde_dynamo::from_item).transpose().map_err(|e| InfraError::new(op, e))
    }

    /// One transaction moving an order between statuses together with its collection's counters
    /// (confirm, cancel). The order's condition failing (item 0) means another second phase won:
    /// `ConditionFailed`, so the caller reads again and decides.
    async fn order_and_collection(
        &self,
        op: &'static str,
        order: Update,
        collection: Update,
    ) -> Result<(), WriteError> {
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(order).build())
            .transact_items(TransactWriteItem::builder().update(collection).build())
            .send()
            .await;
        match res.map_err(|e| map_transact_error(op, e)) {
            Ok(_) => Ok(()),
            Err(WriteError::Cancelled(r)) if r.first() == Some(&ItemFailure::ConditionFailed) => {
                Err(WriteError::ConditionFailed)
            }
            Err(e) => Err(e),
        }
    }

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

    fn reservation_put(
        &self,
        m: &ReservationMessage,
        status: Status,
        payment_window_seconds: u32,
        now_ms: i64,
    ) -> InfraResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(reservation_item(m, status, payment_window_seconds, now_ms)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| InfraError::new("dynamodb build put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// The item persist writes for an accepted Try (RESERVED) or a refused one (FAILED).
pub fn reservation_item(
    m: &ReservationMessage,
    status: Status,
    payment_window_seconds: u32,
    now_ms: i64,
) -> InfraResult<HashMap<String, AttributeValue>> {
    let reserved = status == Status::Reserved;
    let expires_at = reserved.then(|| m.accepted_at_ms / 1000 + i64::from(payment_window_seconds));
    to_item(&OrderItem {
        pk: ord_key(&m.key()),
        order_id: m.order_id.clone(),
        collection_id: m.collection_id.clone(),
        user_id: m.user_id.clone(),
        quantity: m.quantity,
        status,
        accepted_at: m.accepted_at_ms,
        expires_at,
        reason: (!reserved).then(|| "INSUFFICIENT_STOCK".to_owned()),
        took_stock: reserved,
        updated_at: now_ms,
        gsi1pk: reserved.then(|| expiry_shard(&m.key())),
        gsi1sk: expires_at,
        ttl: (!reserved).then_some(now_ms / 1000 + FINAL_TTL_SECONDS),
    })
}

/// An item's size by DynamoDB's rules (attribute names plus values: strings by their UTF-8
/// length, numbers by significant digits / 2 + 1, booleans 1 byte).
pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => {
                        let d = n.trim_start_matches(['-', '0']).replace('.', "");
                        d.trim_end_matches('0').len().div_ceil(2) + 1
                    }
                    _ => 1,
                }
        })
        .sum()
}

impl Ledger for DynamoLedger {
    async fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> InfraResult<CreateOutcome> {
        let item = CollectionItem {
            pk: format!("COL#{id}"),
            collection_id: id.clone(),
            quantity: spec.quantity as i64,
            saleable: spec.quantity as i64,
            reserved: 0,
            confirmed: 0,
            per_user_limit: spec.per_user_limit,
            payment_window_seconds: spec.payment_window_seconds,
            max_per_order: spec.max_per_order,
            created_at: now_ms,
            last_drift: None,
            gsi2pk: COLLECTIONS.to_owned(),
            gsi2sk: id.to_string(),
        };
        if self.put_new("dynamodb create collection", &item).await? {
            return Ok(CreateOutcome::Created);
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
        Ok(self.get::<CollectionItem>(col_pk(id), "dynamodb get collection").await?.map(CollectionItem::into_record))
    }

    async fn collections(&self) -> InfraResult<Vec<CollectionId>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(KIND_INDEX)
            .key_condition_expression("gsi2pk = :k")
            .expression_attribute_values(":k", s(COLLECTIONS));
        let mut items = query.into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(sdk_err("dynamodb list collections"))?;
            if let Some(AttributeValue::S(id)) = item.get("gsi2sk")
                && let Ok(id) = CollectionId::parse(id)
            {
                out.push(id);
            }
        }
        Ok(out)
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
        let items: Vec<CollectionItem> =
            self.batch_get(ids.iter().map(col_pk).collect(), "dynamodb batch get collections").await?;
        Ok(items.into_iter().map(CollectionItem::into_record).collect())
    }

    async fn apply_reservations(
        &self,
        collection: &CollectionId,
        payment_window_seconds: u32,
        reserve: &[ReservationMessage],
        refuse: &[ReservationMessage],
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let total: i64 = reserve.iter().map(|m| i64::from(m.quantity)).sum();
        let head = if total > 0 {
            let u = Update::builder()
                .table_name(&self.table)
                .key("pk", col_pk(collection))
                .update_expression("SET saleable = saleable - :t, reserved = reserved + :t")
                .condition_expression("saleable >= :t")
                .expression_attribute_values(":t", n(total))
                .build()
                .map_err(|e| InfraError::new("dynamodb build update", e))?;
            TransactWriteItem::builder().update(u).build()
        } else {
            let c = ConditionCheck::builder()
                .table_name(&self.table)
                .key("pk", col_pk(collection))
                .condition_expression("attribute_exists(pk)")
                .build()
                .map_err(|e| InfraError::new("dynamodb build condition check", e))?;
            TransactWriteItem::builder().condition_check(c).build()
        };
        let mut items = vec![head];
        for m in reserve {
            items.push(self.reservation_put(m, Status::Reserved, payment_window_seconds, now_ms)?);
        }
        for m in refuse {
            items.push(self.reservation_put(m, Status::Failed, payment_window_seconds, now_ms)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_transact_error("dynamodb apply reservations", e))
    }

    async fn confirm(&self, order: &OrderRecord, now_ms: i64) -> Result<(), WriteError> {
        let collection = &order.collection;
        let o = Update::builder()
            .table_name(&self.table)
            .key("pk", ord_pk(&order.key()))
            .update_expression("SET #s = :c, updatedAt = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression("#s = :r")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":c", s(Status::Confirmed.as_str()))
            .expression_attribute_values(":r", s(Status::Reserved.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| InfraError::new("dynamodb build update", e))?;
        let c = Update::builder()
            .table_name(&self.table)
            .key("pk", col_pk(collection))
            .update_expression("SET reserved = reserved - :q, confirmed = confirmed + :q")
            .condition_expression("reserved >= :q")
            .expression_attribute_values(":q", n(order.quantity))
            .build()
            .map_err(|e| InfraError::new("dynamodb build update", e))?;
        self.order_and_collection("dynamodb confirm", o, c).await
    }

    async fn cancel_reserved(
        &self,
        order: &OrderRecord,
        collection_quantity: i64,
        reason: CancelReason,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        let collection = &order.collection;
        let q = i64::from(order.quantity);
        let o = Update::builder()
            .table_name(&self.table)
            .key("pk", ord_pk(&order.key()))
            .update_expression("SET #s = :x, reason = :why, updatedAt = :now, #ttl = :ttl REMOVE gsi1pk, gsi1sk")
            .condition_expression("#s = :r")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":x", s(Status::Cancelled.as_str()))
            .expression_attribute_values(":r", s(Status::Reserved.as_str()))
            .expression_attribute_values(":why", s(reason.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":ttl", n(now_ms / 1000 + FINAL_TTL_SECONDS))
            .build()
            .map_err(|e| InfraError::new("dynamodb build update", e))?;
        let c = Update::builder()
            .table_name(&self.table)
            .key("pk", col_pk(collection))
            .update_expression("SET saleable = saleable + :q, reserved = reserved - :q")
            .condition_expression("saleable <= :cap AND reserved >= :q")
            .expression_attribute_values(":q", n(q))
            .expression_attribute_values(":cap", n(collection_quantity - q))
            .build()
            .map_err(|e| InfraError::new("dynamodb build update", e))?;
        self.order_and_collection("dynamodb cancel", o, c).await
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
            updated_at: now_ms,
            gsi1pk: None,
            gsi1sk: None,
            ttl: Some(now_ms / 1000 + FINAL_TTL_SECONDS),
        };
        self.put_new("dynamodb put tombstone", &item).await
    }

    async fn expired_reservations(&self, deadline_s: i64, limit: usize) -> InfraResult<Vec<OrderKey>> {
        let mut out = Vec::new();
        for shard in 0..EXPIRY_SHARDS {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EXPIRY_INDEX)
                .key_condition_expression("gsi1pk = :p AND gsi1sk <= :d")
                .expression_attribute_values(":p", s(format!("EXP#{shard}")))
                .expression_attribute_values(":d", n(deadline_s));
            let mut items = query.into_paginator().items().send();
            while let Some(item) = items.next().await {
                let item = item.map_err(sdk_err("dynamodb query expired"))?;
                if let Some(AttributeValue::S(pk)) = item.get("pk")
                    && let Some(id) = parse_ord_key(pk)
                {
                    out.push(id);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str, order: &str) -> OrderKey {
        OrderKey::new(CollectionId::parse("c").unwrap(), UserId::parse(user).unwrap(), OrderId::parse(order).unwrap())
    }

    #[test]
    fn expiry_shards_are_stable_and_bounded() {
        let a = expiry_shard(&key("u", "order-1"));
        assert_eq!(a, expiry_shard(&key("u", "order-1")));
        let shards: std::collections::HashSet<_> =
            (0..500).map(|i| expiry_shard(&key("u", &format!("o{i}")))).collect();
        assert_eq!(shards.len(), EXPIRY_SHARDS as usize, "all shards are used");
    }

    #[test]
    fn order_keys_parse_back_from_the_partition_key() {
        for k in [key("u", "o1"), key("google-oauth2#10:x@y", "o1"), key("a", "b-c_d")] {
            assert_eq!(parse_ord_key(&ord_key(&k)), Some(k.clone()), "{k}");
        }
        assert_ne!(ord_key(&key("alice", "o1")), ord_key(&key("bob", "o1")), "scoped to the buyer");
        assert_eq!(parse_ord_key("COL#c"), None);
    }

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
