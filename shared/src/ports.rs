//! Ports: what the use cases need from the outside world, shaped around how they use it.
//!
//! - [`StockCache`]: the fast filter (Redis): per-collection stock, the per-order entries that make
//!   Try idempotent, the time-indexed log of deductions not yet known durable, and a directory from
//!   order id to collection.
//! - [`Ledger`]: the durable truth (DynamoDB): collections, reservations, tombstones.
//! - [`Queue`]: the buffers (SQS): reservation messages and payment-window timers.
//!
//! Each has exactly one real adapter in [`crate::adapters`]. Methods return `impl Future + Send`
//! (static dispatch, no `async_trait`).

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::domain::{CancelReason, CollectionId, CollectionSpec, OrderId, Settlement, Status, StockLevels, UserId};

/// An infrastructure failure (network, throttling past retries, unexpected reply). Business
/// outcomes are never reported through it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct InfraError {
    pub op: &'static str,
    pub message: String,
}

impl InfraError {
    pub fn new(op: &'static str, e: impl std::fmt::Display) -> Self {
        Self { op, message: e.to_string() }
    }
}

pub type InfraResult<T> = Result<T, InfraError>;

// ---------------------------------------------------------------------------------------------
// Stock cache (Redis)

/// The order directory's answer when a Try claims an order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time this order id is seen.
    Fresh,
    /// Seen before with the same collection, user and quantity (a replay).
    Same,
    /// Seen before with a different body.
    Different,
    /// The order id carries a cancel tombstone.
    Tombstone,
}

/// What the directory knows about an order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryEntry {
    Order { collection: CollectionId, user: UserId, quantity: u32 },
    Tombstone { user: UserId },
}

/// An order's state in its collection's Redis entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Taken in Redis; DynamoDB not known to have it.
    Pending,
    /// Known durable.
    Settled,
    /// Given back (or a tombstone that never took anything).
    Cancelled,
    /// DynamoDB refused it; its Redis deduction is kept (Redis had drifted high).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub state: CacheState,
    pub quantity: u32,
    pub accepted_at_ms: i64,
    pub user: UserId,
}

#[derive(Debug, Clone)]
pub struct TakeRequest<'a> {
    pub collection: &'a CollectionId,
    pub order: &'a OrderId,
    pub user: &'a UserId,
    pub quantity: u32,
    pub now_ms: i64,
    pub per_user_limit: Option<u32>,
    /// A pending entry logged before this may be under reconciliation's decision.
    pub stale_before_ms: i64,
}

/// The Try script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOutcome {
    Taken {
        stock_left: i64,
    },
    Replay {
        state: CacheState,
        accepted_at_ms: i64,
    },
    /// A replay of a pending entry old enough for reconciliation to be deciding it right now.
    ReplayStale {
        accepted_at_ms: i64,
    },
    Mismatch,
    Cancelled,
    NoCache,
    SoldOut,
    Insufficient {
        available: i64,
    },
    LimitExceeded {
        held: i64,
    },
}

/// What settling does to pending entries (see [`crate::domain::Settlement`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SettleAs {
    /// DynamoDB has the reservation.
    Durable,
    /// DynamoDB refused it (stock short).
    Failed,
    /// DynamoDB has the order from an earlier deduction: settled, and this deduction given back.
    DurableReturning,
    /// DynamoDB refused the order earlier: failed, and this deduction given back.
    FailedReturning,
}

impl SettleAs {
    /// The settle a [`Settlement`] asks for (`None`: it releases, or the deduction is lost).
    pub fn of(s: Settlement) -> Option<Self> {
        match s {
            Settlement::Settle => Some(SettleAs::Durable),
            Settlement::SettleReturning => Some(SettleAs::DurableReturning),
            Settlement::Fail => Some(SettleAs::Failed),
            Settlement::FailReturning => Some(SettleAs::FailedReturning),
            Settlement::Release | Settlement::Lost => None,
        }
    }
}

/// The release script's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The order's share went back to Redis now.
    Returned(u32),
    /// It had gone back before.
    Already,
    /// The order FAILED: its Redis deduction is not returned blindly.
    WasFailed,
    /// No entry; a tombstone entry was written when asked to.
    Absent,
    /// A settled order with no cancel intent in the log: not returned (drift repair owns it).
    Unlogged,
}

/// One collection's Redis counters, read atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheSnapshot {
    /// `None` when the stock key is missing (cache lost or never warmed).
    pub stock: Option<i64>,
    /// Σ qty of PENDING entries (counted from the log).
    pub pending: i64,
    /// Bumped whenever stock is set or an entry leaves the log; a compare-and-set guard for
    /// rebuilds (a Try only adds to the log, which a forced rebuild checks is empty).
    pub version: i64,
    /// Entries in the log (deductions or cancels not yet known durable).
    pub unsettled: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Stock set to this value.
    Set(i64),
    /// A live stock key was there and was left alone.
    Live(i64),
    /// Something changed since the snapshot; try again.
    Race,
    /// Deductions in flight; a forced rebuild would be unsafe now.
    Busy,
}

pub trait StockCache: Send + Sync + 'static {
    /// Claims the order id in the directory (or reports who holds it).
    fn claim_order(
        &self,
        order: &OrderId,
        collection: &CollectionId,
        user: &UserId,
        quantity: u32,
    ) -> impl Future<Output = InfraResult<Claim>> + Send;
    fn directory(&self, order: &OrderId) -> impl Future<Output = InfraResult<Option<DirectoryEntry>>> + Send;
    /// Marks the order id cancelled in the directory (anti-hanging for a late Try).
    fn tombstone_order(&self, order: &OrderId, user: &UserId) -> impl Future<Output = InfraResult<()>> + Send;

    /// The Try script: idempotency, tombstone, stock, per-user limit and log entry, atomically.
    fn take(&self, req: &TakeRequest<'_>) -> impl Future<Output = InfraResult<TakeOutcome>> + Send;
    /// Marks pending entries durable or failed and drops them from the log. With
    /// `clear_intents_before`, also drops the log entry of an already-settled order logged before
    /// that instant (a cancel intent whose cancel died; a live cancel's intent is younger).
    fn settle(
        &self,
        collection: &CollectionId,
        orders: &[OrderId],
        as_: SettleAs,
        clear_intents_before: Option<i64>,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<u32>> + Send;
    /// Records that a cancel of this durable order is about to change DynamoDB: the entry is
    /// settled (written again from the record if Redis forgot it) and put back in the log, so the
    /// release that follows returns its share once, whatever settles in between.
    fn mark_intent(
        &self,
        collection: &CollectionId,
        order: &OrderRecord,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<()>> + Send;
    /// Returns the order's share to Redis at most once. With `tombstone`, an absent entry becomes a
    /// cancelled one so a late Try is refused.
    fn release(
        &self,
        collection: &CollectionId,
        order: &OrderId,
        tombstone: Option<&UserId>,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<Released>> + Send;
    fn entry(
        &self,
        collection: &CollectionId,
        order: &OrderId,
    ) -> impl Future<Output = InfraResult<Option<CacheEntry>>> + Send;
    /// The entries of several orders at once (`None` where there is none).
    fn entries(
        &self,
        collection: &CollectionId,
        orders: &[OrderId],
    ) -> impl Future<Output = InfraResult<Vec<Option<CacheEntry>>>> + Send;
    /// Forgets entries settled before `before_ms` (at most `limit`); returns how many.
    fn trim_settled(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = InfraResult<u32>> + Send;
    fn snapshot(&self, collection: &CollectionId) -> impl Future<Output = InfraResult<CacheSnapshot>> + Send;
    /// Sets stock to DynamoDB's `saleable` minus the snapshot's pending units if the version is
    /// still the snapshot's (take the snapshot before reading DynamoDB); `only_if_missing` leaves
    /// a live stock key alone (warm-up), otherwise refuses while anything is in the log.
    fn rebuild(
        &self,
        collection: &CollectionId,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
    ) -> impl Future<Output = InfraResult<Rebuild>> + Send;
    /// Log entries accepted before `before_ms`, oldest first, at most `limit`.
    fn unsettled_before(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = InfraResult<Vec<OrderId>>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Ledger (DynamoDB)

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRecord {
    pub id: CollectionId,
    pub spec: CollectionSpec,
    pub levels: StockLevels,
    /// Drift seen by the last reconciliation run, if any ran.
    pub last_drift: Option<i64>,
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
    pub order: OrderId,
    /// `None` only for an empty-rollback tombstone (the collection was never known).
    pub collection: Option<CollectionId>,
    pub user: UserId,
    pub quantity: u32,
    pub status: Status,
    pub accepted_at_ms: i64,
    /// Payment deadline (epoch seconds) of a RESERVED order.
    pub expires_at: Option<i64>,
    pub reason: Option<String>,
    /// Whether this record ever took durable stock (false for tombstones and FAILED).
    pub took_stock: bool,
}

/// A CANCELLED record written where no record exists yet (anti-hanging).
#[derive(Debug, Clone)]
pub struct Tombstone<'a> {
    pub order: &'a OrderId,
    /// `None` for an empty rollback of an order never seen.
    pub collection: Option<&'a CollectionId>,
    pub user: &'a UserId,
    /// What the order took in Redis (0 for an empty rollback).
    pub quantity: u32,
    pub accepted_at_ms: i64,
    pub reason: CancelReason,
}

/// An accepted Try on its way to DynamoDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationMessage {
    pub order_id: OrderId,
    pub collection_id: CollectionId,
    pub user_id: UserId,
    pub quantity: u32,
    pub accepted_at_ms: i64,
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

pub trait Ledger: Send + Sync + 'static {
    fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<CreateOutcome>> + Send;
    fn collection(&self, id: &CollectionId) -> impl Future<Output = InfraResult<Option<CollectionRecord>>> + Send;
    fn collections(&self) -> impl Future<Output = InfraResult<Vec<CollectionId>>> + Send;
    fn record_drift(&self, id: &CollectionId, drift: i64) -> impl Future<Output = InfraResult<()>> + Send;
    fn order(&self, id: &OrderId) -> impl Future<Output = InfraResult<Option<OrderRecord>>> + Send;
    fn orders(&self, ids: &[OrderId]) -> impl Future<Output = InfraResult<Vec<OrderRecord>>> + Send;
    /// One transaction: take `Σ quantity(reserve)` from the collection (condition: enough
    /// saleable) and put each reservation (condition: no record yet), plus FAILED records for
    /// `refuse` (condition: no record yet). Item 0 is the collection; then `reserve`, then `refuse`.
    fn apply_reservations(
        &self,
        collection: &CollectionId,
        payment_window_seconds: u32,
        reserve: &[ReservationMessage],
        refuse: &[ReservationMessage],
        now_ms: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// RESERVED → CONFIRMED (condition: still RESERVED) with the collection's counters.
    fn confirm(&self, order: &OrderRecord, now_ms: i64) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// RESERVED → CANCELLED and the quantity back to saleable in one transaction
    /// (conditions: still RESERVED; `saleable + q ≤ quantity`).
    fn cancel_reserved(
        &self,
        order: &OrderRecord,
        collection_quantity: i64,
        reason: CancelReason,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// A CANCELLED record for an order with no record yet (condition: none there). `Ok(false)`
    /// when a record was already there.
    fn put_tombstone(&self, t: &Tombstone<'_>, now_ms: i64) -> impl Future<Output = InfraResult<bool>> + Send;
    /// RESERVED orders whose payment deadline is at or before `deadline_s`.
    fn expired_reservations(
        &self,
        deadline_s: i64,
        limit: usize,
    ) -> impl Future<Output = InfraResult<Vec<OrderId>>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Queue (SQS)

/// A payment-window timer: fires when due, or is re-delayed when SQS's 900 s cap is shorter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutMessage {
    pub order_id: OrderId,
    /// Epoch seconds.
    pub due_at: i64,
}

pub trait Queue: Send + Sync + 'static {
    fn publish_reservation(&self, msg: &ReservationMessage) -> impl Future<Output = InfraResult<()>> + Send;
    /// Sends each timer with a delay of `min(900, due_at - now)` seconds.
    fn schedule_timeouts(&self, timers: &[TimeoutMessage], now_ms: i64)
    -> impl Future<Output = InfraResult<()>> + Send;
}
