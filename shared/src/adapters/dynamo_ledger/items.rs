//! The table's items: their keys, their attributes as serde structs, and their conversion to the
//! ports' records. The layout is written once, in `docs/DESIGN.md#dynamodb-items`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::domain::{CollectionId, CollectionSpec, OrderId, OrderKey, Status, StockLevels, UserId, payment_deadline};
use crate::ports::{CollectionRecord, InfraError, InfraResult, OrderRecord, ReservationMessage};

pub const EXPIRY_INDEX: &str = "byExpiry";
pub const KIND_INDEX: &str = "byKind";
pub const EXPIRY_SHARDS: u32 = 16;
pub(super) const COLLECTIONS: &str = "COLLECTIONS";
/// Final records expire after 30 days.
pub(super) const FINAL_TTL_SECONDS: i64 = 30 * 86_400;

pub(super) fn col_pk(id: &CollectionId) -> AttributeValue {
    AttributeValue::S(format!("COL#{id}"))
}
/// A stock bucket's key: ids never contain `#`, so it cannot meet another collection's keys.
pub(super) fn bucket_pk(id: &CollectionId, bucket: u32) -> AttributeValue {
    AttributeValue::S(format!("COL#{id}#B{bucket}"))
}
pub(super) fn ord_key(key: &OrderKey) -> String {
    format!("ORD#{}#{}#{}", key.collection, key.order, key.user)
}
pub(super) fn ord_pk(key: &OrderKey) -> AttributeValue {
    AttributeValue::S(ord_key(key))
}
/// Parses [`ord_key`] back.
pub(super) fn parse_ord_key(pk: &str) -> Option<OrderKey> {
    let mut it = pk.strip_prefix("ORD#")?.splitn(3, '#');
    let collection = CollectionId::parse(it.next()?).ok()?;
    let order = OrderId::parse(it.next()?).ok()?;
    let user = UserId::parse(it.next()?).ok()?;
    Some(OrderKey::new(collection, user, order))
}
pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(super) fn expiry_shard(key: &OrderKey) -> String {
    // FNV-1a: stable across processes and builds.
    let h = ord_key(key).bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    format!("EXP#{}", h % EXPIRY_SHARDS)
}

/// The collection's header: its settings. No transaction writes it after creation (a raise of
/// its cache shards updates it on its own).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CollectionItem {
    pub pk: String,
    pub collection_id: CollectionId,
    pub quantity: i64,
    pub buckets: u32,
    /// Absent on items written before cache shards: one.
    #[serde(default = "one")]
    pub cache_shards: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user_limit: Option<u32>,
    pub payment_window_seconds: u32,
    pub max_per_order: u32,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift: Option<i64>,
    /// Set while a raise of `cache_shards` from this count is under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raising_from: Option<u32>,
    /// The cache shard count it was created with, once a raise changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_cache_shards: Option<u32>,
    pub gsi2pk: String,
    pub gsi2sk: String,
}

impl CollectionItem {
    pub fn new(id: &CollectionId, spec: &CollectionSpec, now_ms: i64) -> Self {
        Self {
            pk: format!("COL#{id}"),
            collection_id: id.clone(),
            quantity: spec.quantity as i64,
            buckets: spec.buckets,
            cache_shards: spec.cache_shards,
            per_user_limit: spec.per_user_limit,
            payment_window_seconds: spec.payment_window_seconds,
            max_per_order: spec.max_per_order,
            created_at: now_ms,
            last_drift: None,
            raising_from: None,
            created_cache_shards: None,
            gsi2pk: COLLECTIONS.to_owned(),
            gsi2sk: id.to_string(),
        }
    }

    /// The collection's settings.
    pub fn spec(&self) -> CollectionSpec {
        CollectionSpec {
            quantity: self.quantity.max(0) as u64,
            per_user_limit: self.per_user_limit,
            payment_window_seconds: self.payment_window_seconds,
            max_per_order: self.max_per_order,
            buckets: self.buckets,
            cache_shards: self.cache_shards,
        }
    }

    /// The record, with its buckets' levels (bucket 0 first) summed.
    pub fn into_record(self, buckets: Vec<StockLevels>) -> CollectionRecord {
        CollectionRecord {
            spec: self.spec(),
            id: self.collection_id,
            levels: buckets.iter().copied().sum(),
            buckets,
            last_drift: self.last_drift,
            raising_from: self.raising_from,
        }
    }
}

fn one() -> u32 {
    1
}

/// One stock bucket: its share of the quantity and where those units are. Its own identity
/// holds in every transaction: `quantity = saleable + reserved + confirmed`, `saleable ≥ 0`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BucketItem {
    pub pk: String,
    pub collection_id: CollectionId,
    pub bucket: u32,
    pub quantity: i64,
    pub saleable: i64,
    pub reserved: i64,
    pub confirmed: i64,
}

impl BucketItem {
    pub fn new(id: &CollectionId, bucket: u32, quantity: i64) -> Self {
        Self {
            pk: format!("COL#{id}#B{bucket}"),
            collection_id: id.clone(),
            bucket,
            quantity,
            saleable: quantity,
            reserved: 0,
            confirmed: 0,
        }
    }

    pub fn levels(&self) -> StockLevels {
        StockLevels {
            quantity: self.quantity,
            saleable: self.saleable,
            reserved: self.reserved,
            confirmed: self.confirmed,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderItem {
    pub pk: String,
    pub order_id: OrderId,
    pub collection_id: CollectionId,
    pub user_id: UserId,
    pub quantity: u32,
    pub status: Status,
    pub accepted_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub took_stock: bool,
    /// The stock bucket its units came from (records that took stock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<i64>,
    /// Set by a confirm, removed by the tally ([`super::tally`]): the order is listed in
    /// `byTally` under its bucket until its units are counted as confirmed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

impl OrderItem {
    pub fn into_record(self) -> OrderRecord {
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
            bucket: self.bucket.unwrap_or(0),
            untallied: self.gsi3pk.is_some(),
        }
    }
}

pub(super) fn to_item<T: Serialize>(v: &T) -> InfraResult<HashMap<String, AttributeValue>> {
    serde_dynamo::to_item(v).map_err(|e| InfraError::new("dynamodb encode item", e))
}

/// The item persist writes for an accepted Try (RESERVED, its units taken from `bucket`) or a
/// refused one (FAILED).
pub fn reservation_item(
    m: &ReservationMessage,
    status: Status,
    payment_window_seconds: u32,
    bucket: u32,
    now_ms: i64,
) -> InfraResult<HashMap<String, AttributeValue>> {
    let reserved = status == Status::Reserved;
    let expires_at = reserved.then(|| payment_deadline(m.accepted_at_ms, now_ms, payment_window_seconds));
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
        bucket: reserved.then_some(bucket),
        updated_at: now_ms,
        gsi1pk: reserved.then(|| expiry_shard(&m.key())),
        gsi1sk: expires_at,
        gsi3pk: None,
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
        assert_eq!(parse_ord_key("COL#c#B1"), None);
    }

    #[test]
    fn bucket_keys_are_apart_from_the_header_and_each_other() {
        let c = CollectionId::parse("c").unwrap();
        assert_ne!(bucket_pk(&c, 0), col_pk(&c));
        assert_ne!(bucket_pk(&c, 1), bucket_pk(&c, 11));
        assert_eq!(BucketItem::new(&c, 3, 7).pk, "COL#c#B3");
        assert_eq!(
            BucketItem::new(&c, 3, 7).levels(),
            StockLevels { quantity: 7, saleable: 7, reserved: 0, confirmed: 0 }
        );
    }

    #[test]
    fn a_reservation_records_the_bucket_it_took_from() {
        let m = ReservationMessage::new(&key("alice", "o1"), 1, 5_000);
        let item = reservation_item(&m, Status::Reserved, 900, 5, 6_000).unwrap();
        assert_eq!(item.get("bucket"), Some(&n(5)));
        assert_eq!(item.get("expiresAt"), Some(&n(906)), "the window from durability (6 s)");
        let failed = reservation_item(&m, Status::Failed, 900, 5, 6_000).unwrap();
        assert_eq!(failed.get("bucket"), None, "a FAILED record holds no stock");
    }
}
