//! Timeouts: payment-window timers (SQS, delayed) and the expiry sweep that backs them up; each
//! cancels a RESERVED order past its deadline as the system (reason TIMEOUT).
//!
//! Give-backs are batched like persist's writes: the due orders of one stock bucket are cancelled
//! together, one transaction of up to 99 orders and their bucket. An order DynamoDB refuses in
//! that transaction (another second phase won, or the order itself is poisoned) leaves the batch
//! and takes the one-by-one cancel path, so it never fails the batch for the others.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::cancel::Canceller;
use super::{App, AppError, TURN_WAIT, backoff};
use crate::domain::batch::ORDERS_PER_TRANSACTION;
use crate::domain::{CancelReason, CollectionId, OrderKey, Status};
use crate::ports::{
    CacheWarmup, Catalog, ItemFailure, OrderBook, OrderCache, OrderRecord, Queue, Settling, StockWrites,
    TimeoutMessage, WriteError, WriteTurns,
};

/// Transaction attempts of one batch before what is left takes the one-by-one path.
const MAX_ATTEMPTS: u32 = 6;

/// What a sweep or a batch of timers did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutReport {
    pub cancelled: u32,
    pub already_final: u32,
    pub redelayed: u32,
    pub errors: u32,
}

impl<C: OrderCache + Settling + CacheWarmup + WriteTurns, L: Catalog + OrderBook + StockWrites, Q: Queue> App<C, L, Q> {
    /// Payment-window timers: each fires (or is re-delayed when not yet due). Returns the
    /// orders whose timer could not be handled (SQS delivers them again) and what was done.
    pub async fn fire_timers(&self, timers: Vec<TimeoutMessage>, now_ms: i64) -> (Vec<OrderKey>, TimeoutReport) {
        let mut report = TimeoutReport::default();
        let mut failed = Vec::new();
        let (due, later): (Vec<TimeoutMessage>, Vec<TimeoutMessage>) =
            timers.into_iter().partition(|t| t.due_at <= now_ms / 1000);
        if !later.is_empty() {
            match self.queue.schedule_timeouts(&later, now_ms).await {
                Ok(()) => report.redelayed += later.len() as u32,
                Err(e) => {
                    tracing::error!(count = later.len(), error = %e, "timers not re-delayed; SQS will redeliver");
                    report.errors += later.len() as u32;
                    failed.extend(later.iter().map(TimeoutMessage::key));
                }
            }
        }
        failed.extend(self.time_out(due.iter().map(TimeoutMessage::key).collect(), now_ms, &mut report).await);
        (failed, report)
    }

    /// Backstop for lost timers: cancels every RESERVED order whose deadline has passed.
    pub async fn sweep_expired(&self, now_ms: i64, limit: usize) -> Result<TimeoutReport, AppError> {
        let mut report = TimeoutReport::default();
        let due = self.ledger.expired_reservations(now_ms / 1000, limit).await?;
        for order in self.time_out(due, now_ms, &mut report).await {
            tracing::error!(order = %order, "sweep could not cancel");
        }
        Ok(report)
    }

    /// Cancels due orders as timed out: the RESERVED ones of each bucket in batches, the rest
    /// (and what a batch set aside) one by one. Returns the orders that could not be handled.
    async fn time_out(&self, mut orders: Vec<OrderKey>, now_ms: i64, report: &mut TimeoutReport) -> Vec<OrderKey> {
        orders.sort();
        orders.dedup();
        let records: HashMap<OrderKey, OrderRecord> = match self.ledger.orders(&orders).await {
            Ok(rs) => rs.into_iter().map(|r| (r.key(), r)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the due orders; cancelling them one by one");
                HashMap::new()
            }
        };
        let mut batches: BTreeMap<(CollectionId, u32), Vec<OrderRecord>> = BTreeMap::new();
        let mut one_by_one = Vec::new();
        for key in orders {
            match records.get(&key) {
                Some(r) if r.status == Status::Reserved => {
                    batches.entry((key.collection.clone(), r.bucket)).or_default().push(r.clone())
                }
                _ => one_by_one.push(key),
            }
        }
        let mut failed = Vec::new();
        for ((collection, bucket), recs) in batches {
            // Without the collection's settings (a failed read), each order takes the one-by-one path.
            let Ok(spec) = self.spec(&collection).await else {
                one_by_one.extend(recs.iter().map(OrderRecord::key));
                continue;
            };
            let at = (&collection, spec.cache_shards, bucket);
            for chunk in recs.chunks(ORDERS_PER_TRANSACTION) {
                let (aside, unreleased) = self.give_back(at, chunk, CancelReason::Timeout, now_ms, report).await;
                one_by_one.extend(aside);
                report.errors += unreleased.len() as u32;
                failed.extend(unreleased);
            }
        }
        for key in one_by_one {
            match self.cancel(&key, Canceller::System(CancelReason::Timeout), now_ms).await {
                Ok(c) if c.changed => report.cancelled += 1,
                Ok(_) | Err(AppError::Refused(_)) | Err(AppError::ReservationNotFound) => report.already_final += 1,
                Err(e) => {
                    tracing::error!(order = %key, error = %e, "timeout not handled; SQS will redeliver");
                    report.errors += 1;
                    failed.push(key);
                }
            }
        }
        failed
    }

    /// Cancels one bucket's RESERVED orders in one transaction, as a cancel does one: Redis
    /// intents, the transaction, Redis releases. Returns the orders it set aside for the
    /// one-by-one path, and the cancelled ones whose Redis release failed (a redelivery, or
    /// reconciliation from the intent, finishes them).
    async fn give_back(
        &self,
        (collection, shards, bucket): (&CollectionId, u32, u32),
        recs: &[OrderRecord],
        reason: CancelReason,
        now_ms: i64,
        report: &mut TimeoutReport,
    ) -> (Vec<OrderKey>, Vec<OrderKey>) {
        let mut aside = Vec::new();
        let mut batch = Vec::with_capacity(recs.len());
        for r in recs {
            match self.on_layout(&r.collection, self.cache.log_intent(r, shards, now_ms).await) {
                Ok(()) => batch.push(r.clone()),
                Err(_) => aside.push(r.key()),
            }
        }
        for attempt in 1..=MAX_ATTEMPTS {
            if batch.is_empty() {
                break;
            }
            let turn = self.take_turn(collection, bucket, TURN_WAIT).await;
            let done = self.ledger.cancel_reserved(&batch, reason, now_ms).await;
            self.end_turn(collection, bucket, turn).await;
            let reasons = match done {
                Ok(()) => return (aside, self.released((collection, shards), &batch, now_ms, reason, report).await),
                Err(WriteError::Cancelled(reasons)) => reasons,
                Err(e) => {
                    tracing::warn!(%collection, bucket, attempt, error = %e, "give-back failed; retrying");
                    backoff(attempt).await;
                    continue;
                }
            };
            let reason_of = |i: usize| reasons.get(i).copied().unwrap_or(ItemFailure::None);
            let (mut keep, before) = (Vec::new(), batch.len());
            for (i, r) in batch.drain(..).enumerate() {
                match reason_of(1 + i) {
                    ItemFailure::ConditionFailed | ItemFailure::Other => aside.push(r.key()),
                    _ => keep.push(r),
                }
            }
            batch = keep;
            if reason_of(0) == ItemFailure::ConditionFailed && batch.len() == before {
                tracing::error!(%collection, bucket, "bucket refused a give-back; cancelling one by one");
                break;
            }
            if reasons.contains(&ItemFailure::Retryable) {
                backoff(attempt).await;
            }
        }
        aside.extend(batch.iter().map(OrderRecord::key));
        (aside, Vec::new())
    }

    /// After a give-back: each order's Redis share back once. Returns those Redis did not take.
    async fn released(
        &self,
        (collection, shards): (&CollectionId, u32),
        batch: &[OrderRecord],
        now_ms: i64,
        reason: CancelReason,
        report: &mut TimeoutReport,
    ) -> Vec<OrderKey> {
        report.cancelled += batch.len() as u32;
        self.sold_out.clear(collection);
        let mut unreleased = Vec::new();
        for r in batch {
            let key = r.key();
            match self.on_layout(collection, self.cache.release(&key, shards, false, now_ms).await) {
                Ok(_) => tracing::info!(order = %key, reason = reason.as_str(), "cancelled; stock returned"),
                Err(e) => {
                    tracing::warn!(order = %key, error = %e, "cancelled in DynamoDB; Redis release left to a retry");
                    unreleased.push(key);
                }
            }
        }
        unreleased
    }
}
