//! The ledger port (DynamoDB): the durable truth — collections, reservations, tombstones — with
//! conditional writes and transactions.

use std::future::Future;

use super::{InfraError, InfraResult, ReservationMessage};
use crate::domain::{CancelReason, CollectionId, CollectionSpec, OrderId, OrderKey, Status, StockLevels, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRecord {
    pub id: CollectionId,
    pub spec: CollectionSpec,
    /// The whole collection's levels: the sum over its buckets.
    pub levels: StockLevels,
    /// Each stock bucket's levels, bucket 0 first (`spec.buckets` of them).
    pub buckets: Vec<StockLevels>,
    /// Drift seen by the last reconciliation run, if any ran.
    pub last_drift: Option<i64>,
    /// The cache shard count a raise to `spec.cache_shards` started from, while it is under way
    /// (docs/DESIGN.md#raising-cacheshards).
    pub raising_from: Option<u32>,
}

impl CollectionRecord {
    /// Every stock identity that does not hold, the whole's and each bucket's.
    pub fn violations(&self) -> Vec<crate::domain::IdentityViolation> {
        crate::domain::bucket_violations(self.spec.quantity as i64, &self.buckets)
    }

    /// Cache shard `shard`'s levels: the sum over its stock buckets.
    pub fn shard_levels(&self, shard: u32) -> StockLevels {
        crate::domain::buckets::shard_sum(&self.buckets, shard, self.spec.cache_shards)
    }
}

/// A collection's header item alone: its settings, and a raise of its cache shards under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionHeader {
    pub spec: CollectionSpec,
    /// See [`CollectionRecord::raising_from`].
    pub raising_from: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    Same,
    QuantityDiffers,
    SettingsDiffer,
}

/// A reservation or tombstone as DynamoDB keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub collection: CollectionId,
    pub user: UserId,
    pub order: OrderId,
    pub quantity: u32,
    pub status: Status,
    pub accepted_at_ms: i64,
    /// Payment deadline (epoch seconds) of a RESERVED order.
    pub expires_at: Option<i64>,
    pub reason: Option<String>,
    /// Whether this record ever took durable stock (false for tombstones and FAILED).
    pub took_stock: bool,
    /// The stock bucket its units were taken from (the buyer's home bucket when persisted).
    pub bucket: u32,
    /// A CONFIRMED order whose units its bucket still counts as reserved (not tallied yet).
    pub untallied: bool,
}

impl OrderRecord {
    pub fn key(&self) -> OrderKey {
        OrderKey::new(self.collection.clone(), self.user.clone(), self.order.clone())
    }
}

/// A confirmed order listed for the tally: its units still count as reserved in its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untallied {
    pub key: OrderKey,
    pub quantity: u32,
}

/// A CANCELLED record written where no record exists yet (anti-hanging).
#[derive(Debug, Clone)]
pub struct Tombstone<'a> {
    pub key: &'a OrderKey,
    /// What the order took in Redis (0 for an empty rollback).
    pub quantity: u32,
    pub accepted_at_ms: i64,
    pub reason: CancelReason,
}

/// Why one item of a transaction was cancelled (DynamoDB reports one per item, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFailure {
    None,
    ConditionFailed,
    /// TransactionConflict, throttling, or anything retryable.
    Retryable,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The transaction was cancelled; one reason per item, in request order.
    #[error("transaction cancelled: {0:?}")]
    Cancelled(Vec<ItemFailure>),
    /// A single conditional write failed.
    #[error("condition failed")]
    ConditionFailed,
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// A message persist writes, with the state [`crate::domain::transition`] gave its order.
#[derive(Debug, Clone, Copy)]
pub struct Landing<'a> {
    pub message: &'a ReservationMessage,
    pub status: Status,
}

/// Collections: created, read, listed, their drift recorded.
pub trait Catalog: Send + Sync + 'static {
    fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<CreateOutcome>> + Send;
    fn collection(&self, id: &CollectionId) -> impl Future<Output = InfraResult<Option<CollectionRecord>>> + Send;
    /// The header item alone (one read, no bucket): what the functions route by.
    fn collection_header(
        &self,
        id: &CollectionId,
    ) -> impl Future<Output = InfraResult<Option<CollectionHeader>>> + Send;
    /// Starts a raise of the cache shards from `from` to `to`: the header says `to`, raising from
    /// `from`. True if written now or already so (a raise resumed); false if the header says
    /// anything else.
    fn begin_raise(&self, id: &CollectionId, from: u32, to: u32) -> impl Future<Output = InfraResult<bool>> + Send;
    /// Ends the raise to `to` from `from` (nothing if it was ended before).
    fn end_raise(&self, id: &CollectionId, from: u32, to: u32) -> impl Future<Output = InfraResult<()>> + Send;
    fn collections(&self) -> impl Future<Output = InfraResult<Vec<CollectionId>>> + Send;
    /// Several collections' records at once (those that exist, in no particular order).
    fn collection_records(
        &self,
        ids: &[CollectionId],
    ) -> impl Future<Output = InfraResult<Vec<CollectionRecord>>> + Send;
    fn record_drift(&self, id: &CollectionId, drift: i64) -> impl Future<Output = InfraResult<()>> + Send;
    /// The collection's stock levels, per stock bucket (bucket 0 first), and these orders'
    /// records (`None`: no record), read in one transaction (serialisable against the write
    /// transactions): at most [`MAX_ORDERS_WITH_LEVELS`] orders. `None` for an unknown collection.
    fn levels_with_orders(
        &self,
        id: &CollectionId,
        orders: &[OrderKey],
    ) -> impl Future<Output = InfraResult<Option<LevelsWithOrders>>> + Send;
}

/// Per-bucket levels (bucket 0 first) and orders' records, read in one transaction.
pub type LevelsWithOrders = (Vec<StockLevels>, Vec<Option<OrderRecord>>);

/// Most orders [`Catalog::levels_with_orders`] reads with a collection's levels: a transaction
/// reads at most 100 items, its buckets (up to 64) among them.
pub const MAX_ORDERS_WITH_LEVELS: usize = 100 - crate::domain::MAX_BUCKETS as usize;

/// Orders read back: one, many, or those past their payment deadline.
pub trait OrderBook: Send + Sync + 'static {
    fn order(&self, key: &OrderKey) -> impl Future<Output = InfraResult<Option<OrderRecord>>> + Send;
    fn orders(&self, keys: &[OrderKey]) -> impl Future<Output = InfraResult<Vec<OrderRecord>>> + Send;
    /// RESERVED orders whose payment deadline is at or before `deadline_s`.
    fn expired_reservations(
        &self,
        deadline_s: i64,
        limit: usize,
    ) -> impl Future<Output = InfraResult<Vec<OrderKey>>> + Send;
}

/// The conditional writes that move an order and its units: persist, moves, confirm, cancel, tombstones.
pub trait StockWrites: Send + Sync + 'static {
    /// One transaction: put each order in the state the state machine gave it (condition: no
    /// record yet), and take the units of those that hold durable stock (RESERVED) from the
    /// collection's stock bucket `bucket` (condition: the bucket has that much saleable). Item 0
    /// is the bucket, then the orders in turn.
    fn apply_reservations(
        &self,
        collection: &CollectionId,
        bucket: u32,
        payment_window_seconds: u32,
        orders: &[Landing<'_>],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// Moves `units` of saleable stock, with their share of the quantity, from bucket `from` to
    /// bucket `to` in one transaction (condition: `from` has them). Item 0 is `from`.
    fn move_stock(
        &self,
        collection: &CollectionId,
        from: u32,
        to: u32,
        units: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// RESERVED → CONFIRMED (condition: still RESERVED), a write of the order alone: its units
    /// stay counted as reserved in its bucket until [`Ledger::tally`] moves them. The condition
    /// failing is `ConditionFailed`; a conflict with a transaction on the order, or throttling,
    /// is `Cancelled([Retryable])`.
    fn confirm(&self, order: &OrderRecord, now_ms: i64) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// RESERVED → CANCELLED for each order, and their units back to saleable in their bucket, in
    /// one transaction (conditions: each order still RESERVED; all share `orders[0].bucket`).
    /// Item 0 is the bucket, then the orders in turn.
    fn cancel_reserved(
        &self,
        orders: &[OrderRecord],
        reason: CancelReason,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// A CANCELLED record for an order with no record yet (condition: none there). `Ok(false)`
    /// when a record was already there.
    fn put_tombstone(&self, t: &Tombstone<'_>, now_ms: i64) -> impl Future<Output = InfraResult<bool>> + Send;
}

/// Confirmed units counted into their bucket after the fact (reconciliation's tally, the admin view).
pub trait Tallies: Send + Sync + 'static {
    /// Up to `limit` confirmed orders of this bucket not tallied yet (read from an eventually
    /// consistent index: one may have been tallied meanwhile).
    fn untallied(
        &self,
        collection: &CollectionId,
        bucket: u32,
        limit: usize,
    ) -> impl Future<Output = InfraResult<Vec<Untallied>>> + Send;
    /// One transaction: these orders' units from the bucket's reserved to its confirmed, each
    /// order marked tallied (condition: not tallied yet, so each is counted once). At most 99
    /// orders; item 0 is the bucket, then the orders in turn.
    fn tally(
        &self,
        collection: &CollectionId,
        bucket: u32,
        orders: &[Untallied],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// Every part of the ledger: what the real adapter and the explorer's gated one implement.
pub trait Ledger: Catalog + OrderBook + StockWrites + Tallies + super::MoveLog {}

impl<T: Catalog + OrderBook + StockWrites + Tallies + super::MoveLog> Ledger for T {}
