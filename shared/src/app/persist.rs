//! Persist: the SQS consumer that makes accepted Tries durable in DynamoDB.
//!
//! Per collection and stock bucket in a batch: one transaction = one conditional update of the
//! bucket's item for the chunk's total + one conditional put per order (≤ 99 orders). When DynamoDB cancels it, the
//! per-item reasons say which orders were already there (replays, tombstones) and whether stock
//! was short; those are set aside or fitted, and the rest retried. Only messages that are still
//! unresolved after retries are reported as batch item failures (SQS redelivers them, and after
//! the queue's maxReceiveCount moves them to the DLQ).
//!
//! A collection's stock is split over stock buckets (docs/DESIGN.md#stock-buckets): each order
//! takes its units from its buyer's home bucket, so a batch is chunked per bucket and the chunks
//! of different buckets run at once, on different items. DynamoDB cancels a transaction on an
//! item another one is writing (`TransactionConflict`), so the writers of one bucket take turns:
//! each holds the bucket's write turn (a key in Redis, [`App::take_turn`]) for one chunk's
//! transaction, the others wait for it rather than conflict. When the bucket is short while
//! others still hold stock, units move to it first (one transaction, [`App::refill`]); orders are
//! refused (FAILED) only when the whole collection is short.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;

use super::{App, AppError, backoff};
use crate::domain::batch::{ORDERS_PER_TRANSACTION, fit_to_stock, group_by_collection};
use crate::domain::buckets::{plan_moves, shard_of_bucket};
use crate::domain::{CollectionId, Event, OrderKey, Status, home_bucket, landing, payment_deadline, settlement};
use crate::ports::{
    Catalog, ItemFailure, Landing, OrderBook, Queue, ReservationMessage, SettleAs, Settling, StockWrites,
    TimeoutMessage, WriteError, WriteTurns,
};

/// Transaction attempts per chunk before its orders are reported for redelivery.
const MAX_ATTEMPTS: u32 = 8;
/// How long a refill waits for a donor bucket's turn (it holds its own bucket's meanwhile).
const DONOR_WAIT: Duration = Duration::from_millis(500);
/// Buckets of one collection a consumer writes at once.
const BUCKETS_AT_ONCE: usize = 8;

/// What a refill found or did for a short bucket.
enum Refill {
    /// The bucket has enough, or no move went through (donors drained or busy meanwhile):
    /// transact again.
    Again,
    /// At least one move went through: transact again.
    Moved,
    /// What the bucket has is all this chunk gets: no other bucket holds any, or this chunk had
    /// moves already and the whole collection is short of what it needs (two short buckets would
    /// otherwise trade the same units back and forth until the chunk ran out of attempts).
    Short(i64),
    /// The collection is gone.
    Gone,
}

/// What became of a chunk's orders.
#[derive(Default)]
struct ChunkResult {
    durable: Vec<ReservationMessage>,
    refused: Vec<ReservationMessage>,
    existing: Vec<ReservationMessage>,
    unresolved: Vec<OrderKey>,
}

impl<C: Settling + WriteTurns, L: Catalog + OrderBook + StockWrites, Q: Queue> App<C, L, Q> {
    /// Makes accepted Tries durable: per collection and stock bucket, chunked transactions.
    /// Returns the orders that are still unresolved after retries (their messages come back from
    /// SQS). The same order twice in one batch (a duplicate delivery) is persisted once.
    pub async fn persist(&self, msgs: Vec<ReservationMessage>, now_ms: i64) -> Vec<OrderKey> {
        let mut seen = std::collections::HashSet::new();
        let msgs: Vec<ReservationMessage> = msgs.into_iter().filter(|m| seen.insert(m.key())).collect();
        let mut unresolved = Vec::new();
        // One budget of turn-waiting for the whole invocation: past it, chunks transact without
        // their turn (conflicts retried), so waiting never runs persist into its timeout.
        let waits_until = self.clock.instant() + self.settings.persist_turn_budget;
        for (collection, group) in group_by_collection(msgs, |m| &m.collection_id) {
            unresolved.extend(self.persist_collection(&collection, group, waits_until, now_ms).await);
        }
        unresolved
    }

    /// Persists one collection's orders, per stock bucket; returns the orders still unresolved.
    async fn persist_collection(
        &self,
        collection: &CollectionId,
        msgs: Vec<ReservationMessage>,
        waits_until: tokio::time::Instant,
        now_ms: i64,
    ) -> Vec<OrderKey> {
        let spec = match self.spec(collection).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%collection, error = %e, "cannot persist: collection unavailable");
                return msgs.iter().map(ReservationMessage::key).collect();
            }
        };
        let mut by_bucket: BTreeMap<u32, Vec<ReservationMessage>> = BTreeMap::new();
        for m in msgs {
            by_bucket.entry(home_bucket(&m.user_id, spec.buckets)).or_default().push(m);
        }
        let window = spec.payment_window_seconds;
        let mut unresolved: Vec<OrderKey> = futures::stream::iter(by_bucket)
            .map(|(bucket, msgs)| self.persist_bucket(collection, bucket, window, msgs, waits_until, now_ms))
            .buffer_unordered(BUCKETS_AT_ONCE)
            .concat()
            .await;
        unresolved.sort();
        unresolved.dedup();
        unresolved
    }

    /// Persists one bucket's orders, a chunk at a time; returns the orders still unresolved.
    async fn persist_bucket(
        &self,
        collection: &CollectionId,
        bucket: u32,
        window: u32,
        msgs: Vec<ReservationMessage>,
        waits_until: tokio::time::Instant,
        now_ms: i64,
    ) -> Vec<OrderKey> {
        let mut unresolved = Vec::new();
        for chunk in msgs.chunks(ORDERS_PER_TRANSACTION) {
            // The turn covers the transaction only: the follow-ups of one consumer (Redis, timers)
            // overlap the next one's transaction.
            let wait = waits_until.saturating_duration_since(self.clock.instant());
            let turn = self.take_turn(collection, bucket, wait).await;
            let r = self.apply_chunk(collection, bucket, window, chunk.to_vec(), now_ms).await;
            self.end_turn(collection, bucket, turn).await;
            unresolved.extend(r.unresolved);
            if let Err(e) = self.finish_chunk(collection, r.durable, r.refused, r.existing, now_ms).await {
                tracing::error!(%collection, error = %e, "durable, but Redis/timer follow-up failed; redelivery finishes it");
                unresolved.extend(chunk.iter().map(ReservationMessage::key));
            }
        }
        unresolved
    }

    /// Brings units to `bucket`, which was short of `need`, from other buckets as `plan_moves`
    /// picks them (each move one transaction, under the donor's turn), reading every bucket in
    /// one snapshot. Only buckets of the same cache shard give: a shard's Redis stock mirrors its
    /// own buckets (units cross shards only by a shard move, `app::shard_moves`).
    async fn refill(
        &self,
        collection: &CollectionId,
        bucket: u32,
        need: i64,
        moved_before: bool,
    ) -> Result<Refill, AppError> {
        let Some(rec) = self.ledger.collection(collection).await? else { return Ok(Refill::Gone) };
        let shards = rec.spec.cache_shards;
        let shard = shard_of_bucket(bucket, shards);
        let saleable: Vec<i64> = rec
            .buckets
            .iter()
            .enumerate()
            .map(|(k, b)| if shard_of_bucket(k as u32, shards) == shard { b.saleable } else { 0 })
            .collect();
        let here = saleable.get(bucket as usize).copied().unwrap_or(0);
        if here >= need {
            return Ok(Refill::Again);
        }
        let moves = plan_moves(&saleable, bucket as usize, need);
        let elsewhere: i64 =
            saleable.iter().enumerate().filter(|&(k, _)| k != bucket as usize).map(|(_, s)| s.max(&0)).sum();
        // After moves, a bucket still short in a collection short overall fits what it has: two
        // short buckets would otherwise trade the same units back and forth.
        if moves.is_empty() || (moved_before && here + elsewhere < need) {
            return Ok(Refill::Short(here));
        }
        let mut moved = false;
        for (from, units) in moves {
            let from = from as u32;
            let turn = self.take_turn(collection, from, DONOR_WAIT).await;
            let done = self.ledger.move_stock(collection, from, bucket, units).await;
            self.end_turn(collection, from, turn).await;
            match done {
                Ok(()) => {
                    moved = true;
                    tracing::info!(%collection, from, to = bucket, units, "stock moved between buckets")
                }
                // The donor was drained or busy meanwhile: the next round reads again.
                Err(WriteError::Cancelled(r)) => {
                    tracing::info!(%collection, from, to = bucket, reasons = ?r, "move refused")
                }
                Err(e) => return Err(AppError::Unavailable(e.to_string())),
            }
        }
        Ok(if moved { Refill::Moved } else { Refill::Again })
    }

    /// Runs the chunk's transaction until every order is durable, refused, or found already there.
    async fn apply_chunk(
        &self,
        collection: &CollectionId,
        bucket: u32,
        window: u32,
        mut reserve: Vec<ReservationMessage>,
        now_ms: i64,
    ) -> ChunkResult {
        let mut out = ChunkResult::default();
        // The states persist writes: what the state machine makes of an order with no durable
        // record (PENDING) on its message, and on DynamoDB refusing it.
        let (Some(reserved), Some(failed)) = (landing(Event::Persist), landing(Event::PersistRefused)) else {
            out.unresolved.extend(reserve.iter().map(ReservationMessage::key));
            return out;
        };
        let mut refuse: Vec<ReservationMessage> = Vec::new();
        let mut moved = false;
        for attempt in 1..=MAX_ATTEMPTS {
            if reserve.is_empty() && refuse.is_empty() {
                return out;
            }
            let orders: Vec<Landing<'_>> = (reserve.iter().map(|message| Landing { message, status: reserved }))
                .chain(refuse.iter().map(|message| Landing { message, status: failed }))
                .collect();
            let reasons = match self.ledger.apply_reservations(collection, bucket, window, &orders, now_ms).await {
                Ok(()) => {
                    out.durable.append(&mut reserve);
                    out.refused.append(&mut refuse);
                    return out;
                }
                Err(WriteError::Cancelled(reasons)) => reasons,
                Err(e) => {
                    tracing::warn!(%collection, attempt, error = %e, "persist transaction failed; retrying");
                    backoff(attempt).await;
                    continue;
                }
            };
            let reason = |i: usize| reasons.get(i).copied().unwrap_or(ItemFailure::None);
            let retryable = reasons.iter().any(|r| matches!(r, ItemFailure::Retryable | ItemFailure::Other));
            // Orders that already have a record (replays, tombstones) leave the transaction.
            let n = reserve.len();
            let (mut keep_r, mut keep_f) = (Vec::new(), Vec::new());
            for (i, m) in reserve.drain(..).enumerate() {
                if reason(1 + i) == ItemFailure::ConditionFailed { out.existing.push(m) } else { keep_r.push(m) }
            }
            for (i, m) in refuse.drain(..).enumerate() {
                if reason(1 + n + i) == ItemFailure::ConditionFailed { out.existing.push(m) } else { keep_f.push(m) }
            }
            let orders_set_aside = reasons.iter().skip(1).any(|r| *r == ItemFailure::ConditionFailed);
            (reserve, refuse) = (keep_r, keep_f);
            if reason(0) == ItemFailure::ConditionFailed && !orders_set_aside {
                // The bucket is short: refill it from the others, or, when none has any, apply
                // what fits and refuse the rest (FAILED).
                let need: i64 = reserve.iter().map(|m| i64::from(m.quantity)).sum();
                match self.refill(collection, bucket, need, moved).await {
                    Ok(Refill::Again) => {}
                    Ok(Refill::Moved) => moved = true,
                    Ok(Refill::Short(saleable)) => {
                        let qs: Vec<u32> = reserve.iter().map(|m| m.quantity).collect();
                        let fits = fit_to_stock(saleable, &qs);
                        let (mut yes, mut no) = (Vec::new(), Vec::new());
                        for (m, f) in reserve.drain(..).zip(fits) {
                            if f { yes.push(m) } else { no.push(m) }
                        }
                        reserve = yes;
                        refuse.append(&mut no);
                    }
                    Ok(Refill::Gone) => {
                        tracing::error!(%collection, "collection vanished; leaving orders to redelivery");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(%collection, bucket, error = %e, "could not refill a short bucket");
                        backoff(attempt).await;
                    }
                }
            }
            if retryable {
                backoff(attempt).await;
            }
        }
        out.unresolved.extend(reserve.iter().chain(&refuse).map(ReservationMessage::key));
        out
    }

    /// Tells Redis what DynamoDB decided and starts the payment-window timers.
    async fn finish_chunk(
        &self,
        collection: &CollectionId,
        durable: Vec<ReservationMessage>,
        refused: Vec<ReservationMessage>,
        existing: Vec<ReservationMessage>,
        now_ms: i64,
    ) -> Result<(), AppError> {
        let spec = self.spec(collection).await?;
        let window = spec.payment_window_seconds;
        let mut by: BTreeMap<SettleAs, Vec<OrderKey>> = BTreeMap::new();
        by.entry(SettleAs::Durable).or_default().extend(durable.iter().map(ReservationMessage::key));
        by.entry(SettleAs::Failed).or_default().extend(refused.iter().map(ReservationMessage::key));
        let mut timers: Vec<TimeoutMessage> = durable
            .iter()
            .map(|m| TimeoutMessage::new(&m.key(), payment_deadline(m.accepted_at_ms, now_ms, window)))
            .collect();
        if !existing.is_empty() {
            let ids: Vec<OrderKey> = existing.iter().map(ReservationMessage::key).collect();
            let taken_at: HashMap<OrderKey, i64> = existing.iter().map(|m| (m.key(), m.accepted_at_ms)).collect();
            for rec in self.ledger.orders(&ids).await? {
                let key = rec.key();
                let same = taken_at.get(&key) == Some(&rec.accepted_at_ms);
                let Some(as_) = SettleAs::of(settlement(Some(rec.status), same)) else {
                    // Anti-hanging: a tombstone (or a completed cancel) refuses the late message;
                    // this order's Redis share goes back at most once.
                    let r =
                        self.on_layout(collection, self.cache.release(&key, spec.cache_shards, false, now_ms).await)?;
                    tracing::info!(order = %key, released = ?r, "late message refused by tombstone");
                    continue;
                };
                if rec.status == Status::Reserved
                    && same
                    && let Some(due_at) = rec.expires_at
                {
                    // A redelivery: the first delivery may have died before its timer was sent.
                    timers.push(TimeoutMessage::new(&key, due_at));
                }
                by.entry(as_).or_default().push(key);
            }
        }
        let failed = by.get(&SettleAs::Failed).map_or(&[][..], Vec::as_slice);
        if !failed.is_empty() {
            tracing::warn!(%collection, count = failed.len(), "orders FAILED: DynamoDB had less stock than Redis");
        }
        for (as_, orders) in &by {
            self.on_layout(
                collection,
                self.cache.settle(collection, spec.cache_shards, orders, *as_, None, now_ms).await,
            )?;
        }
        self.queue.schedule_timeouts(&timers, now_ms).await?;
        Ok(())
    }
}
