//! The real adapters behind a gate: every call of the stock cache (Redis), the ledger (DynamoDB)
//! and the queue (SQS) is one step of the schedule. Without a gate (set-up, quiescence) a call
//! goes straight through. Calls that carry nothing (an empty list) are not steps.

use std::future::Future;
use std::time::Duration;

use flashstock::adapters::{DynamoLedger, RedisCache, SqsQueue};
use flashstock::domain::{BuyerBudget, CacheShard, CancelReason, CollectionId, CollectionSpec, OrderKey};
use flashstock::ports::prelude::*;
use flashstock::ports::{
    CacheEntry, CacheProbe, CacheSnapshot, CollectionHeader, CollectionRecord, CreateOutcome, DeductOutcome,
    DeductRequest, InfraError, InfraResult, Landing, MoveBack, MoveIn, MoveOut, MoveState, OpenMove, OrderRecord,
    Rebuild, Released, ReservationMessage, SettleAs, ShardLevel, Split, TimeoutMessage, Tombstone, Trimmed, Untallied,
    WriteError,
};

use crate::gate::{Fault, Gate};

/// A real adapter whose calls pass through an operation's gate.
#[derive(Clone)]
pub struct Gated<T> {
    pub inner: T,
    pub gate: Option<Gate>,
    /// Every stock bucket's write turn is held by someone else for the whole schedule (a holder
    /// that stalls and renews it): writers wait for it until their budget runs out.
    pub turns_held: bool,
}

impl<T> Gated<T> {
    pub fn new(inner: T, gate: Option<Gate>) -> Self {
        Self { inner, gate, turns_held: false }
    }

    async fn step<R, E, F, Fut>(&self, label: &'static str, call: F) -> Result<R, E>
    where
        E: From<InfraError>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let Some(gate) = &self.gate else { return call().await };
        let r = match gate.enter(label).await {
            None => call().await,
            Some(Fault::FailBefore) => {
                Err(InfraError::new(label, "injected: the request never reached the service").into())
            }
            Some(Fault::FailAfter) => {
                let _ = call().await;
                Err(InfraError::new(label, "injected: the request took effect, its answer was lost").into())
            }
            Some(Fault::SentTwice) => {
                let _ = call().await;
                call().await
            }
        };
        gate.leave();
        r
    }
}

/// Implements a port on a gated adapter: each method is one step under its label, forwarded to
/// the real adapter; `empty(arg)` makes a call that carries nothing (an empty list) no step.
macro_rules! gated {
    ($port:ident for $inner:ty { $(
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $label:literal $(, empty($e:ident))?;
    )* }) => {
        impl $port for Gated<$inner> {
            $(async fn $name(&self, $($arg: $ty),*) -> $ret {
                $(if $e.is_empty() {
                    return Ok(Default::default());
                })?
                self.step($label, move || self.inner.$name($($arg),*)).await
            })*
        }
    };
}

gated!(OrderCache for RedisCache {
    fn deduct(req: &DeductRequest<'_>) -> InfraResult<DeductOutcome> = "redis deduct.lua";
    fn entry(order: &OrderKey, shards: u32) -> InfraResult<Option<CacheEntry>> = "redis entry";
    fn entries(collection: &CollectionId, shards: u32, orders: &[OrderKey]) -> InfraResult<Vec<Option<CacheEntry>>>
        = "redis entries", empty(orders);
});

gated!(Settling for RedisCache {
    fn settle(collection: &CollectionId, shards: u32, orders: &[OrderKey], as_: SettleAs, clear_intents_before: Option<i64>, now_ms: i64)
        -> InfraResult<u32> = "redis settle.lua", empty(orders);
    fn log_intent(order: &OrderRecord, shards: u32, now_ms: i64) -> InfraResult<()> = "redis intent.lua";
    fn release(order: &OrderKey, shards: u32, tombstone: bool, now_ms: i64) -> InfraResult<Released> = "redis release.lua";
});

gated!(CacheWarmup for RedisCache {
    fn prepare(collection: &CollectionId, shard: u32, quantity: i64) -> InfraResult<()> = "redis prepare";
    fn snapshot(collection: &CollectionId, shard: CacheShard) -> InfraResult<CacheSnapshot> = "redis snapshot.lua";
    fn rebuild(collection: &CollectionId, shard: CacheShard, snapshot: &CacheSnapshot, saleable: i64, only_if_missing: bool, quantity: i64)
        -> InfraResult<Rebuild> = "redis rebuild.lua";
    fn rebuild_with_unsettled(collection: &CollectionId, shard: CacheShard, snapshot: &CacheSnapshot, stock: i64, quantity: i64)
        -> InfraResult<Rebuild> = "redis rebuild.lua unsettled";
});

gated!(ShardMoves for RedisCache {
    fn shard_levels(collection: &CollectionId, shards: u32) -> InfraResult<Vec<ShardLevel>> = "redis shard_level.lua";
    fn move_out(collection: &CollectionId, from: CacheShard, to: u32, id: &str, wanted: i64, least: i64, now_ms: i64)
        -> InfraResult<MoveOut> = "redis move_out.lua";
    fn move_in(collection: &CollectionId, to: CacheShard, id: &str, units: i64, now_ms: i64) -> InfraResult<MoveIn>
        = "redis move_in.lua";
    fn move_done(collection: &CollectionId, from: CacheShard, id: &str) -> InfraResult<bool> = "redis move_out.lua done";
    fn move_back(collection: &CollectionId, from: CacheShard, id: &str) -> InfraResult<MoveBack> = "redis move_out.lua back";
    fn open_moves(collection: &CollectionId, from: u32) -> InfraResult<Vec<OpenMove>> = "redis open moves";
});

gated!(CacheRaise for RedisCache {
    fn fence(collection: &CollectionId, shard: u32, from: u32, to: u32) -> InfraResult<bool> = "redis fence.lua";
    fn split(collection: &CollectionId, shard: u32, to: u32, quantities: &[i64], from_bucket: u32, now_ms: i64)
        -> InfraResult<Split> = "redis split (adopt.lua, hdel)";
    fn unfence(collection: &CollectionId, shard: u32, to: u32) -> InfraResult<()> = "redis unfence";
});

impl TimeIndex for Gated<RedisCache> {
    async fn unsettled_before(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
    ) -> InfraResult<Vec<OrderKey>> {
        self.step("redis unsettled", move || self.inner.unsettled_before(collection, shard, before_ms, limit)).await
    }
    async fn relog(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
        logged_before_ms: i64,
        log_at_ms: i64,
    ) -> InfraResult<Vec<bool>> {
        self.step("redis relog.lua", move || self.inner.relog(collection, shards, orders, logged_before_ms, log_at_ms))
            .await
    }
    async fn trim_settled(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
        keep_durable: bool,
    ) -> InfraResult<Trimmed> {
        self.step("redis trim.lua", move || self.inner.trim_settled(collection, shard, before_ms, limit, keep_durable))
            .await
    }
    /// Not scheduling points: only `reconcile`'s skip decision reads the probe and the mark
    /// (the scenarios reconcile their collection unconditionally, and the e2e suite tests the
    /// skip).
    async fn probe(&self, ids: &[(CollectionId, u32)]) -> InfraResult<Vec<CacheProbe>> {
        self.inner.probe(ids).await
    }
    async fn note_reconciled(&self, id: &CollectionId, now_ms: i64, mark: Option<&str>) -> InfraResult<()> {
        self.inner.note_reconciled(id, now_ms, mark).await
    }
}

/// Every writer (persist's chunks, moves, tallies, cancels) holds its bucket's write turn
/// here, as if turns always overlapped (one expired under its holder): the turn only orders
/// writers for throughput, DynamoDB's conditions stay the guarantee, and those are what the
/// scenarios explore. (A real turn would make a writer wait, outside any step, for one the
/// schedule holds at a gate.) With `turns_held`, no writer ever gets it: each waits for it as
/// long as its budget allows, in real time, then writes without it.
impl WriteTurns for Gated<RedisCache> {
    async fn take_turn(&self, _: &CollectionId, _: u32, _holder: &str, _ttl: Duration) -> InfraResult<bool> {
        Ok(!self.turns_held)
    }
    async fn give_turn(&self, _collection: &CollectionId, _bucket: u32, _holder: &str) -> InfraResult<()> {
        Ok(())
    }
}

/// Not a scheduling point: the HTTP layer spends a cancel's budget, not the use case (a Try's
/// is in its deduction, a step).
impl BuyerBudgets for Gated<RedisCache> {
    async fn spend_request(
        &self,
        order: &OrderKey,
        shards: u32,
        budget: BuyerBudget,
        now_ms: i64,
    ) -> InfraResult<Option<Duration>> {
        self.inner.spend_request(order, shards, budget, now_ms).await
    }
}

gated!(Catalog for DynamoLedger {
    fn create_collection(id: &CollectionId, spec: &CollectionSpec, now_ms: i64) -> InfraResult<CreateOutcome>
        = "dynamodb create-collection";
    fn collection(id: &CollectionId) -> InfraResult<Option<CollectionRecord>> = "dynamodb get-collection";
    fn collection_header(id: &CollectionId) -> InfraResult<Option<CollectionHeader>> = "dynamodb get-header";
    fn begin_raise(id: &CollectionId, from: u32, to: u32) -> InfraResult<bool> = "dynamodb begin-raise";
    fn end_raise(id: &CollectionId, from: u32, to: u32) -> InfraResult<()> = "dynamodb end-raise";
    fn collections() -> InfraResult<Vec<CollectionId>> = "dynamodb list-collections";
    fn collection_records(ids: &[CollectionId]) -> InfraResult<Vec<CollectionRecord>> = "dynamodb batch get collections";
    fn record_drift(id: &CollectionId, drift: i64) -> InfraResult<()> = "dynamodb record-drift";
    fn levels_with_orders(id: &CollectionId, orders: &[OrderKey]) -> InfraResult<Option<flashstock::ports::LevelsWithOrders>>
        = "dynamodb get-collection with orders";
});

gated!(OrderBook for DynamoLedger {
    fn order(id: &OrderKey) -> InfraResult<Option<OrderRecord>> = "dynamodb get-order";
    fn orders(ids: &[OrderKey]) -> InfraResult<Vec<OrderRecord>> = "dynamodb get-orders", empty(ids);
    fn expired_reservations(deadline_s: i64, limit: usize) -> InfraResult<Vec<OrderKey>> = "dynamodb query-expired";
});

gated!(StockWrites for DynamoLedger {
    fn apply_reservations(collection: &CollectionId, bucket: u32, payment_window_seconds: u32, orders: &[Landing<'_>], now_ms: i64)
        -> Result<(), WriteError> = "dynamodb persist-transaction";
    fn move_stock(collection: &CollectionId, from: u32, to: u32, units: i64) -> Result<(), WriteError>
        = "dynamodb move-transaction";
    fn confirm(order: &OrderRecord, now_ms: i64) -> Result<(), WriteError> = "dynamodb confirm-order";
    fn cancel_reserved(orders: &[OrderRecord], reason: CancelReason, now_ms: i64) -> Result<(), WriteError>
        = "dynamodb cancel-transaction";
    fn put_tombstone(t: &Tombstone<'_>, now_ms: i64) -> InfraResult<bool> = "dynamodb put-tombstone";
});

gated!(MoveLog for DynamoLedger {
    fn move_between_shards(collection: &CollectionId, id: &str, from: &[(u32, i64)], to: u32, now_ms: i64)
        -> Result<(), WriteError> = "dynamodb shard-move-transaction";
    fn move_state(collection: &CollectionId, id: &str) -> InfraResult<Option<MoveState>> = "dynamodb get-shard-move";
    fn abort_move(collection: &CollectionId, id: &str, now_ms: i64) -> InfraResult<bool> = "dynamodb abort-shard-move";
});

gated!(Tallies for DynamoLedger {
    fn untallied(collection: &CollectionId, bucket: u32, limit: usize) -> InfraResult<Vec<Untallied>>
        = "dynamodb query-untallied";
    fn tally(collection: &CollectionId, bucket: u32, orders: &[Untallied]) -> Result<(), WriteError>
        = "dynamodb tally-transaction", empty(orders);
});

gated!(Queue for SqsQueue {
    fn send_reservation(msg: &ReservationMessage) -> InfraResult<()> = "sqs send reservation";
    fn resend_reservations(msgs: &[ReservationMessage]) -> InfraResult<()> = "sqs resend reservations";
    fn schedule_timeouts(timers: &[TimeoutMessage], now_ms: i64) -> InfraResult<()> = "sqs send timers", empty(timers);
});
