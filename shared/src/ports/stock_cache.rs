//! The stock cache port (Redis): per-collection stock, the per-order entries that make a Try
//! idempotent, and the time index of deductions and cancel intents not yet known durable —
//! all of an order in one slot, its buyer's cache shard (docs/DESIGN.md#cache-shards), keyed by
//! the buyer-scoped [`OrderKey`], with each buyer's request budget on the collection.
//!
//! Methods on one order (or orders of one collection) take the collection's `shards` count and
//! find each buyer's shard; methods on a collection's counters and time index take one `shard`.
//! Both come from the collection's settings (DynamoDB), never from Redis.

use std::future::Future;
use std::time::Duration;

use super::{InfraResult, OrderRecord};
use crate::domain::{BuyerBudget, CacheShard, CollectionId, OrderKey, Settlement, Status, UnsettledKind, UserId};

/// An order's state in its collection's Redis entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Taken in Redis; DynamoDB not known to have it.
    Pending,
    /// Settled: DynamoDB holds this deduction (stored as `S`).
    Durable,
    /// Given back (or a tombstone that never took anything).
    Cancelled,
    /// DynamoDB refused it; its Redis deduction is kept (Redis had drifted high).
    Failed,
}

impl CacheState {
    /// What the API says of an order only Redis knows.
    pub fn status(self) -> Status {
        match self {
            CacheState::Pending | CacheState::Durable => Status::Pending,
            CacheState::Cancelled => Status::Cancelled,
            CacheState::Failed => Status::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub state: CacheState,
    pub quantity: u32,
    pub accepted_at_ms: i64,
    pub user: UserId,
}

#[derive(Debug, Clone)]
pub struct DeductRequest<'a> {
    pub key: &'a OrderKey,
    /// The collection's cache shard count.
    pub shards: u32,
    pub quantity: u32,
    pub now_ms: i64,
    pub per_user_limit: Option<u32>,
    /// The buyer budget this Try spends a request of (`None`: off).
    pub budget: Option<BuyerBudget>,
    /// A pending order accepted before this may be under reconciliation's give-up (it is inside
    /// the quiet stretch before its deadline, or past it): a replay re-sends it but promises
    /// nothing.
    pub stale_before_ms: i64,
}

/// The deduction's answer (`deduct.lua`, the Try's one Redis call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeductOutcome {
    /// Taken now: the order is accepted (PENDING to the API, not yet durable).
    Accepted {
        stock_left: i64,
        /// When the order was accepted, as stored (whole seconds).
        accepted_at_ms: i64,
    },
    Replay {
        state: CacheState,
        accepted_at_ms: i64,
    },
    /// A replay of a pending entry old enough for reconciliation to be giving it up right now.
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
    /// The buyer's budget for this window is spent: nothing was looked at or changed.
    OverBudget {
        wait: Duration,
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
            Settlement::Release | Settlement::Missing => None,
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
    /// A settled order with no cancel intent: not returned (drift repair owns it).
    Unlogged,
}

/// One cache shard's Redis counters (stock and version read atomically, the rest from the time
/// index right after).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheSnapshot {
    /// `None` when the stock key is missing (cache lost or never warmed).
    pub stock: Option<i64>,
    /// Σ qty of PENDING entries (counted from the time index).
    pub pending: i64,
    /// Bumped whenever stock is set or an entry enters or leaves the cancel intent / pending
    /// states through settle, intent or release; a compare-and-set guard for rebuilds (a Try
    /// only adds to the time index, which a rebuild checks is empty).
    pub version: i64,
    /// Time slices still holding a deduction or cancel not yet known durable.
    pub open_slices: i64,
    /// The other registered time slices, as read: (number, length). A rebuild goes ahead only if
    /// these are still all there is, unchanged (nothing was logged since).
    pub drained_slices: Vec<(i64, u64)>,
    /// The unsettled entries in the open slices (each order once).
    pub unsettled: Vec<UnsettledEntry>,
    /// Unsettled entries whose ids could not be read back (none in practice): a rebuild with them
    /// cannot hold them back, and waits.
    pub unreadable_unsettled: u32,
}

/// One unsettled entry in the time index, as a snapshot read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsettledEntry {
    pub order: OrderKey,
    pub kind: UnsettledKind,
    pub quantity: u32,
    pub accepted_at_ms: i64,
}

/// What reconciliation reads of a collection to tell idle from active without running its
/// scripts: the stock, how many time slices are registered, and the mark its last clean run
/// left (see `crate::app::reconcile`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheProbe {
    pub stock: Option<i64>,
    pub slices: u64,
    pub mark: Option<String>,
    /// When a run last reconciled it (epoch seconds): runs take the longest unvisited first.
    pub visited_s: Option<i64>,
}

/// One trim call: records forgotten, and whether it completed a pass over every bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trimmed {
    pub removed: u32,
    pub pass_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Stock set to this value.
    Set(i64),
    /// A live stock key was there and was left alone.
    Live(i64),
    /// Something changed since the snapshot; try again.
    Race,
    /// Unsettled deductions; a forced rebuild would be unsafe now.
    Busy,
}

/// A Try and the status route: one order's entry, taken or read (and reconciliation, many at once).
pub trait OrderCache: Send + Sync + 'static {
    /// The Try script: idempotency, tombstone, stock, per-user limit and time index, atomically.
    fn deduct(&self, req: &DeductRequest<'_>) -> impl Future<Output = InfraResult<DeductOutcome>> + Send;
    fn entry(&self, order: &OrderKey, shards: u32) -> impl Future<Output = InfraResult<Option<CacheEntry>>> + Send;
    /// The entries of several orders at once (`None` where there is none).
    fn entries(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
    ) -> impl Future<Output = InfraResult<Vec<Option<CacheEntry>>>> + Send;
}

/// What DynamoDB decided, told to Redis: persist, cancel, timeouts and reconciliation.
pub trait Settling: Send + Sync + 'static {
    /// Marks pending entries durable or failed (out of the time index's concern). With
    /// `clear_intents_before`, also settles the cancel intent of an order logged before
    /// that instant (a cancel intent whose cancel died; a live cancel's intent is younger).
    fn settle(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
        as_: SettleAs,
        clear_intents_before: Option<i64>,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<u32>> + Send;
    /// Records that a cancel of this durable order is about to change DynamoDB: the entry is
    /// settled (written again from the record if Redis forgot it) and indexed as an intent, so the
    /// release that follows returns its share once, whatever settles in between.
    fn log_intent(&self, order: &OrderRecord, shards: u32, now_ms: i64)
    -> impl Future<Output = InfraResult<()>> + Send;
    /// Returns the order's share to Redis at most once. With `tombstone`, an absent entry becomes a
    /// cancelled one so a late Try is refused.
    fn release(
        &self,
        order: &OrderKey,
        shards: u32,
        tombstone: bool,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<Released>> + Send;
}

/// Warm-up and rebuild from DynamoDB (admin, reconciliation; cancel sizes a collection for a tombstone).
pub trait CacheWarmup: Send + Sync + 'static {
    /// Sizes a cache shard's Redis structures the first time (for the `quantity` its stock
    /// buckets hold), so that its entries can be written before its first warm-up (an empty
    /// rollback's tombstone).
    fn prepare(
        &self,
        collection: &CollectionId,
        shard: u32,
        quantity: i64,
    ) -> impl Future<Output = InfraResult<()>> + Send;
    fn snapshot(
        &self,
        collection: &CollectionId,
        shard: CacheShard,
    ) -> impl Future<Output = InfraResult<CacheSnapshot>> + Send;
    /// Sets the shard's stock to its stock buckets' `saleable` minus the snapshot's pending units
    /// if the version is still the snapshot's (take the snapshot before reading DynamoDB);
    /// `only_if_missing` leaves a live stock key alone (warm-up), otherwise refuses while any
    /// time slice is open; either refuses while a shard move from the shard is open. `quantity`
    /// (its stock buckets') sizes its Redis structures the first time.
    fn rebuild(
        &self,
        collection: &CollectionId,
        shard: CacheShard,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
        quantity: i64,
    ) -> impl Future<Output = InfraResult<Rebuild>> + Send;
    /// Sets a missing stock key to `stock` with unsettled entries: the caller computed it from
    /// DynamoDB read in one transaction with their records (after the snapshot), holding back
    /// what each still moves ([`crate::domain::held_back`]). Only if the version is still the
    /// snapshot's: a settle, intent or release since moves it; a Try adds nothing while the
    /// stock key is missing. `Live` if the key came back meanwhile.
    fn rebuild_with_unsettled(
        &self,
        collection: &CollectionId,
        shard: CacheShard,
        snapshot: &CacheSnapshot,
        stock: i64,
        quantity: i64,
    ) -> impl Future<Output = InfraResult<Rebuild>> + Send;
}

/// Reconciliation's reads and upkeep of the time index and its visits.
pub trait TimeIndex: Send + Sync + 'static {
    /// Log entries accepted before `before_ms`, oldest first, at most `limit`.
    fn unsettled_before(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = InfraResult<Vec<OrderKey>>> + Send;
    /// Logs these pending orders again at `log_at_ms`, each only if still pending and last
    /// logged before `logged_before_ms` (reconciliation re-sending their messages): true where
    /// it did. A re-logged order is due again a whole threshold after `log_at_ms`.
    fn relog(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
        logged_before_ms: i64,
        log_at_ms: i64,
    ) -> impl Future<Output = InfraResult<Vec<bool>>> + Send;
    /// Forgets entries settled (cancelled, failed, and unless `keep_durable` durable) before
    /// `before_ms`, looking at about `limit` of them per call, round robin over the shard's buyer
    /// buckets.
    fn trim_settled(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
        keep_durable: bool,
    ) -> impl Future<Output = InfraResult<Trimmed>> + Send;
    /// [`CacheProbe`]s of many collections (in order, each with its shard count), a few reads per
    /// shard, pipelined: the stock summed over the shards (`None` if one is missing), the slices
    /// counted over them, the mark and visit of shard 0. A collection that cannot be read gets an
    /// empty probe (so it is not taken for idle).
    fn probe(&self, ids: &[(CollectionId, u32)]) -> impl Future<Output = InfraResult<Vec<CacheProbe>>> + Send;
    /// Records a reconciliation visit, with the mark of a collection it found clean (on shard 0).
    fn note_reconciled(
        &self,
        id: &CollectionId,
        now_ms: i64,
        mark: Option<&str>,
    ) -> impl Future<Output = InfraResult<()>> + Send;
}

/// The write turns of the collection's stock buckets (every DynamoDB transaction on a bucket item).
pub trait WriteTurns: Send + Sync + 'static {
    /// Takes (or renews, if `holder` has it) the write turn of one of the collection's
    /// stock buckets for `ttl`: true when `holder` holds it. Persist's chunks, moves, tallies,
    /// cancels and timer batches take it so that one transaction at a time writes the bucket's
    /// item; a throughput aid only, DynamoDB's conditions stay the guarantee.
    fn take_turn(
        &self,
        collection: &CollectionId,
        bucket: u32,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = InfraResult<bool>> + Send;
    /// Gives the bucket's write turn back if `holder` still has it.
    fn give_turn(
        &self,
        collection: &CollectionId,
        bucket: u32,
        holder: &str,
    ) -> impl Future<Output = InfraResult<()>> + Send;
}

/// The buyer budget of a cancel (a Try spends its request in [`OrderCache::deduct`]).
pub trait BuyerBudgets: Send + Sync + 'static {
    /// Spends one request of `order`'s buyer on its collection, counted in Redis with the buyer's
    /// records so every function instance shares it: `None` within the budget, else how long
    /// until the window ends.
    fn spend_request(
        &self,
        order: &OrderKey,
        shards: u32,
        budget: BuyerBudget,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<Option<Duration>>> + Send;
}

/// Every part of the stock cache: what the real adapter and the explorer's gated one implement.
pub trait StockCache:
    OrderCache + Settling + CacheWarmup + TimeIndex + WriteTurns + BuyerBudgets + super::ShardMoves + super::CacheRaise
{
}

impl<
    T: OrderCache + Settling + CacheWarmup + TimeIndex + WriteTurns + BuyerBudgets + super::ShardMoves + super::CacheRaise,
> StockCache for T
{
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_state_is_shown_as_a_status() {
        // A durable entry whose record is not readable yet is still PENDING to the buyer.
        let table = [
            (CacheState::Pending, Status::Pending),
            (CacheState::Durable, Status::Pending),
            (CacheState::Cancelled, Status::Cancelled),
            (CacheState::Failed, Status::Failed),
        ];
        for (state, status) in table {
            assert_eq!(state.status(), status, "{state:?}");
        }
    }

    #[test]
    fn every_settlement_that_settles_has_a_script_target() {
        for s in [Settlement::Settle, Settlement::Fail, Settlement::SettleReturning, Settlement::FailReturning] {
            assert!(SettleAs::of(s).is_some(), "{s:?}");
        }
        assert_eq!(SettleAs::of(Settlement::Release), None);
        assert_eq!(SettleAs::of(Settlement::Missing), None);
    }
}
