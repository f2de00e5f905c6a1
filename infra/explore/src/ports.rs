//! The real adapters behind a gate: every call of the stock cache (Redis), the ledger (DynamoDB)
//! and the queue (SQS) is one step of the schedule. Without a gate (set-up, quiescence) a call
//! goes straight through. Calls that carry nothing (an empty list) are not steps.

use std::future::Future;
use std::time::Duration;

use flashstock::adapters::{DynamoLedger, RedisCache, SqsQueue};
use flashstock::domain::{CancelReason, CollectionId, CollectionSpec, OrderKey, UserId};
use flashstock::ports::{
    CacheEntry, CacheProbe, CacheSnapshot, CollectionRecord, CreateOutcome, InfraError, InfraResult, Landing, Ledger,
    OrderRecord, Queue, Rebuild, Released, ReservationMessage, ReserveOutcome, ReserveRequest, SettleAs, StockCache,
    TimeoutMessage, Tombstone, Trimmed, Untallied, WriteError,
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
            Some(Fault::Resend) => {
                let _ = call().await;
                call().await
            }
        };
        gate.leave();
        r
    }
}

impl StockCache for Gated<RedisCache> {
    async fn prepare(&self, collection: &CollectionId, quantity: i64) -> InfraResult<()> {
        self.step("redis prepare", move || self.inner.prepare(collection, quantity)).await
    }
    async fn reserve(&self, req: &ReserveRequest<'_>) -> InfraResult<ReserveOutcome> {
        self.step("redis reserve.lua", move || self.inner.reserve(req)).await
    }
    async fn settle(
        &self,
        collection: &CollectionId,
        orders: &[OrderKey],
        as_: SettleAs,
        clear_intents_before: Option<i64>,
        now_ms: i64,
    ) -> InfraResult<u32> {
        if orders.is_empty() {
            return Ok(0);
        }
        self.step("redis settle.lua", move || self.inner.settle(collection, orders, as_, clear_intents_before, now_ms))
            .await
    }
    async fn relog(
        &self,
        collection: &CollectionId,
        orders: &[OrderKey],
        logged_before_ms: i64,
        log_at_ms: i64,
    ) -> InfraResult<Vec<bool>> {
        self.step("redis relog.lua", move || self.inner.relog(collection, orders, logged_before_ms, log_at_ms)).await
    }
    async fn mark_intent(&self, order: &OrderRecord, now_ms: i64) -> InfraResult<()> {
        self.step("redis intent.lua", move || self.inner.mark_intent(order, now_ms)).await
    }
    async fn release(&self, order: &OrderKey, tombstone: bool, now_ms: i64) -> InfraResult<Released> {
        self.step("redis release.lua", move || self.inner.release(order, tombstone, now_ms)).await
    }
    async fn entry(&self, order: &OrderKey) -> InfraResult<Option<CacheEntry>> {
        self.step("redis entry", move || self.inner.entry(order)).await
    }
    async fn entries(&self, collection: &CollectionId, orders: &[OrderKey]) -> InfraResult<Vec<Option<CacheEntry>>> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        self.step("redis entries", move || self.inner.entries(collection, orders)).await
    }
    async fn trim_settled(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
        keep_durable: bool,
    ) -> InfraResult<Trimmed> {
        self.step("redis trim.lua", move || self.inner.trim_settled(collection, before_ms, limit, keep_durable)).await
    }
    async fn snapshot(&self, collection: &CollectionId) -> InfraResult<CacheSnapshot> {
        self.step("redis snapshot.lua", move || self.inner.snapshot(collection)).await
    }
    async fn rebuild(
        &self,
        collection: &CollectionId,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
        quantity: i64,
    ) -> InfraResult<Rebuild> {
        self.step("redis rebuild.lua", move || {
            self.inner.rebuild(collection, snapshot, saleable, only_if_missing, quantity)
        })
        .await
    }
    async fn unsettled_before(
        &self,
        collection: &CollectionId,
        before_ms: i64,
        limit: usize,
    ) -> InfraResult<Vec<OrderKey>> {
        self.step("redis unsettled", move || self.inner.unsettled_before(collection, before_ms, limit)).await
    }
    /// Not scheduling points: only `reconcile`'s skip decision reads the probe and the mark
    /// (the scenarios reconcile their collection unconditionally, and the e2e suite tests the
    /// skip), and the HTTP layer spends budgets, not the use cases.
    async fn probe(&self, ids: &[CollectionId]) -> InfraResult<Vec<CacheProbe>> {
        self.inner.probe(ids).await
    }
    async fn note_reconciled(&self, id: &CollectionId, now_ms: i64, mark: Option<&str>) -> InfraResult<()> {
        self.inner.note_reconciled(id, now_ms, mark).await
    }
    /// Every writer (persist's chunks, moves, tallies, cancels) holds its bucket's write turn
    /// here, as if turns always overlapped (one expired under its holder): the turn only orders
    /// writers for throughput, DynamoDB's conditions stay the guarantee, and those are what the
    /// scenarios explore. (A real turn would make a writer wait, outside any step, for one the
    /// schedule holds at a gate.) With `turns_held`, no writer ever gets it: each waits for it as
    /// long as its budget allows, in real time, then writes without it.
    async fn take_lease(&self, _: &CollectionId, _: u32, _holder: &str, _ttl: Duration) -> InfraResult<bool> {
        Ok(!self.turns_held)
    }
    async fn give_lease(&self, _collection: &CollectionId, _bucket: u32, _holder: &str) -> InfraResult<()> {
        Ok(())
    }
    async fn spend_request(&self, user: &UserId, requests: u32, window: Duration) -> InfraResult<Option<Duration>> {
        self.inner.spend_request(user, requests, window).await
    }
}

impl Ledger for Gated<DynamoLedger> {
    async fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> InfraResult<CreateOutcome> {
        self.step("dynamodb create-collection", move || self.inner.create_collection(id, spec, now_ms)).await
    }
    async fn collection(&self, id: &CollectionId) -> InfraResult<Option<CollectionRecord>> {
        self.step("dynamodb get-collection", move || self.inner.collection(id)).await
    }
    async fn collection_records(&self, ids: &[CollectionId]) -> InfraResult<Vec<CollectionRecord>> {
        self.step("dynamodb batch get collections", move || self.inner.collection_records(ids)).await
    }
    async fn collections(&self) -> InfraResult<Vec<CollectionId>> {
        self.step("dynamodb list-collections", move || self.inner.collections()).await
    }
    async fn record_drift(&self, id: &CollectionId, drift: i64) -> InfraResult<()> {
        self.step("dynamodb record-drift", move || self.inner.record_drift(id, drift)).await
    }
    async fn order(&self, id: &OrderKey) -> InfraResult<Option<OrderRecord>> {
        self.step("dynamodb get-order", move || self.inner.order(id)).await
    }
    async fn orders(&self, ids: &[OrderKey]) -> InfraResult<Vec<OrderRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.step("dynamodb get-orders", move || self.inner.orders(ids)).await
    }
    async fn apply_reservations(
        &self,
        collection: &CollectionId,
        bucket: u32,
        payment_window_seconds: u32,
        orders: &[Landing<'_>],
        now_ms: i64,
    ) -> Result<(), WriteError> {
        self.step("dynamodb persist-transaction", move || {
            self.inner.apply_reservations(collection, bucket, payment_window_seconds, orders, now_ms)
        })
        .await
    }
    async fn move_stock(&self, collection: &CollectionId, from: u32, to: u32, units: i64) -> Result<(), WriteError> {
        self.step("dynamodb move-transaction", move || self.inner.move_stock(collection, from, to, units)).await
    }
    async fn confirm(&self, order: &OrderRecord, now_ms: i64) -> Result<(), WriteError> {
        self.step("dynamodb confirm-order", move || self.inner.confirm(order, now_ms)).await
    }
    async fn untallied(&self, collection: &CollectionId, bucket: u32, limit: usize) -> InfraResult<Vec<Untallied>> {
        self.step("dynamodb query-untallied", move || self.inner.untallied(collection, bucket, limit)).await
    }
    async fn tally(&self, collection: &CollectionId, bucket: u32, orders: &[Untallied]) -> Result<(), WriteError> {
        if orders.is_empty() {
            return Ok(());
        }
        self.step("dynamodb tally-transaction", move || self.inner.tally(collection, bucket, orders)).await
    }
    async fn cancel_reserved(
        &self,
        orders: &[OrderRecord],
        reason: CancelReason,
        now_ms: i64,
    ) -> Result<(), WriteError> {
        self.step("dynamodb cancel-transaction", move || self.inner.cancel_reserved(orders, reason, now_ms)).await
    }
    async fn put_tombstone(&self, t: &Tombstone<'_>, now_ms: i64) -> InfraResult<bool> {
        self.step("dynamodb put-tombstone", move || self.inner.put_tombstone(t, now_ms)).await
    }
    async fn expired_reservations(&self, deadline_s: i64, limit: usize) -> InfraResult<Vec<OrderKey>> {
        self.step("dynamodb query-expired", move || self.inner.expired_reservations(deadline_s, limit)).await
    }
}

impl Queue for Gated<SqsQueue> {
    async fn publish_reservation(&self, msg: &ReservationMessage) -> InfraResult<()> {
        self.step("sqs send reservation", move || self.inner.publish_reservation(msg)).await
    }
    async fn publish_reservations(&self, msgs: &[ReservationMessage]) -> InfraResult<()> {
        self.step("sqs resend reservations", move || self.inner.publish_reservations(msgs)).await
    }
    async fn schedule_timeouts(&self, timers: &[TimeoutMessage], now_ms: i64) -> InfraResult<()> {
        if timers.is_empty() {
            return Ok(());
        }
        self.step("sqs send timers", move || self.inner.schedule_timeouts(timers, now_ms)).await
    }
}
