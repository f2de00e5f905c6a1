//! Cancel: the buyer's cancel, a payment-window timeout or reconciliation giving a reservation
//! up, with the empty-rollback and anti-hanging guards.
//!
//! Order of writes for a cancel of a RESERVED order: Redis intent (the order is indexed again as
//! an intent) → DynamoDB transaction (order CANCELLED + stock back, conditional) → Redis release
//! (once). A cancel that dies after DynamoDB is finished by reconciliation from the time index. A
//! cancel of an
//! order not yet durable writes a DynamoDB tombstone first; the late persist message then finds it
//! and is refused.

use super::status::{Located, ReservationView};
use super::{App, AppError, MAX_ROUNDS};
use crate::domain::{CancelReason, OrderKey, Refusal, Status, Transition, transition};
use crate::ports::{
    CacheState, CacheWarmup, Catalog, ItemFailure, OrderBook, OrderCache, Settling, StockWrites, Tombstone, WriteError,
    WriteTurns,
};

/// Who asks for a cancel.
#[derive(Debug, Clone, Copy)]
pub enum Canceller {
    /// The buyer (the key's user): an unseen order id gets an empty-rollback tombstone.
    Buyer,
    /// The system (timeout, reconciliation): an unseen order is not found.
    System(CancelReason),
}

/// A cancel's answer: the reservation now, and whether this call cancelled it (false for a replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub view: ReservationView,
    pub changed: bool,
}

impl Cancelled {
    fn now(view: ReservationView) -> Self {
        Self { view, changed: true }
    }
    fn before(view: ReservationView) -> Self {
        Self { view, changed: false }
    }
}

impl<C: OrderCache + Settling + CacheWarmup + WriteTurns, L: Catalog + OrderBook + StockWrites, Q> App<C, L, Q> {
    /// Cancels an order, whatever state it is in, with one effect however often it runs.
    ///
    /// # Errors
    /// `ReservationNotFound` (a system cancel of an unseen order), `CollectionNotFound` (a buyer's
    /// cancel of an unseen order on a collection that does not exist), `Refused(AlreadyConfirmed)`,
    /// `Refused(OrderFailed)`.
    pub async fn cancel(&self, order: &OrderKey, who: Canceller, now_ms: i64) -> Result<Cancelled, AppError> {
        let reason = match who {
            Canceller::Buyer => CancelReason::User,
            Canceller::System(r) => r,
        };
        let collection = &order.collection;
        let started = self.clock.instant();
        let mut contended = None;
        for round in 1..=MAX_ROUNDS {
            match self.locate(order).await? {
                Located::Durable(mut rec) => {
                    let shards = self.spec(collection).await?.cache_shards;
                    match transition(Some(rec.status), crate::domain::Event::Cancel)? {
                        Transition::Already(_) => {
                            // Finish a cancel that died between DynamoDB and Redis (the entry is
                            // given back once, or written as a cancelled one if Redis has none).
                            self.on_layout(collection, self.cache.release(order, shards, true, now_ms).await)?;
                            self.sold_out.clear(collection);
                            return Ok(Cancelled::before(rec.into()));
                        }
                        Transition::To(_) => {
                            self.on_layout(collection, self.cache.log_intent(&rec, shards, now_ms).await)?;
                            let turn = self.take_turn(collection, rec.bucket, self.turn_wait(started)).await;
                            let done = self.ledger.cancel_reserved(std::slice::from_ref(&rec), reason, now_ms).await;
                            self.end_turn(collection, rec.bucket, turn).await;
                            match done {
                                Ok(()) => {
                                    self.on_layout(collection, self.cache.release(order, shards, false, now_ms).await)?;
                                    self.sold_out.clear(collection);
                                    tracing::info!(%order, reason = reason.as_str(), "cancelled; stock returned");
                                    rec.status = Status::Cancelled;
                                    rec.reason = Some(reason.as_str().to_owned());
                                    return Ok(Cancelled::now(rec.into()));
                                }
                                // Raced a confirm or another cancel: read again and decide.
                                Err(WriteError::Cancelled(r)) if r.get(1) == Some(&ItemFailure::ConditionFailed) => {
                                    continue;
                                }
                                Err(WriteError::ConditionFailed) => continue,
                                Err(WriteError::Cancelled(r)) => {
                                    contended = Some(rec.bucket);
                                    tracing::warn!(order = %order, bucket = rec.bucket, reasons = ?r, "cancel retried");
                                    self.second_phase_backoff(started, round).await;
                                }
                                Err(WriteError::Infra(e)) => return Err(e.into()),
                            }
                        }
                    }
                }
                Located::Cached { quantity, state, accepted_at_ms } => {
                    if state == CacheState::Failed {
                        return Err(Refusal::OrderFailed.into());
                    }
                    // Not durable yet: the tombstone decides between this cancel and the persist.
                    let t = Tombstone { key: order, quantity, accepted_at_ms, reason };
                    let shards = self.spec(collection).await?.cache_shards;
                    if !self.tombstone(&t, shards, now_ms).await? {
                        continue; // persist (or another cancel) wrote first: decide again
                    }
                    self.sold_out.clear(collection);
                    tracing::info!(%order, reason = reason.as_str(), "cancelled before persist; tombstone written");
                    return Ok(Cancelled::now(ReservationView::cancelled(order, quantity, Some(reason.as_str()))));
                }
                Located::Unknown => {
                    // Empty rollback: nothing was taken (or a Try is mid-flight). Leave a durable
                    // tombstone and a cancelled entry, so a late Try or persist message for this
                    // buyer's order id is refused. Another buyer's same order id is another key.
                    if matches!(who, Canceller::System(_)) {
                        return Err(AppError::ReservationNotFound);
                    }
                    // No tombstones on collections that do not exist; Redis can hold this one's
                    // even before the collection's first warm-up.
                    let spec = self.spec(collection).await?;
                    let shard = crate::domain::buckets::home_shard(&order.user, spec.cache_shards);
                    self.cache.prepare(collection, shard, spec.shard_quantity(shard)).await?;
                    let reason = CancelReason::EmptyRollback;
                    let t = Tombstone { key: order, quantity: 0, accepted_at_ms: now_ms, reason };
                    if !self.tombstone(&t, spec.cache_shards, now_ms).await? {
                        continue;
                    }
                    tracing::info!(%order, "empty rollback; tombstone written");
                    return Ok(Cancelled::now(ReservationView::cancelled(order, 0, Some(reason.as_str()))));
                }
            }
        }
        Err(super::contention(order, contended))
    }
}

impl<C: Settling, L: StockWrites, Q> App<C, L, Q> {
    /// The one way a tombstone is written (a buyer's cancel before persist, an empty rollback,
    /// reconciliation giving an order up): the CANCELLED record where none is, and only if that
    /// write wins, the order's Redis entry cancelled and its share (if any) returned. `false`:
    /// a record was there first (persist or another cancel), nothing else done.
    pub(crate) async fn tombstone(&self, t: &Tombstone<'_>, shards: u32, now_ms: i64) -> Result<bool, AppError> {
        if !self.ledger.put_tombstone(t, now_ms).await? {
            return Ok(false);
        }
        self.on_layout(&t.key.collection, self.cache.release(t.key, shards, true, now_ms).await)?;
        Ok(true)
    }
}
