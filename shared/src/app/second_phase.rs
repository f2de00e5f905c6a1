//! The second phase of try-confirm-cancel: confirm (payment), cancel (buyer, timeout,
//! reconciliation), with the empty-rollback and anti-hanging guards.
//!
//! Order of writes for a cancel of a RESERVED order: Redis intent (the order goes back in the
//! log) → DynamoDB transaction (order CANCELLED + stock back, conditional) → Redis release (once).
//! A cancel that dies after DynamoDB is finished by reconciliation from the log. A cancel of an
//! order not yet durable writes a DynamoDB tombstone first; the late persist message then finds it
//! and is refused.

use serde::Serialize;

use super::status::{Located, ReservationView};
use super::{App, AppError};
use crate::domain::{CancelReason, OrderId, Refusal, Status, Transition, UserId, transition};
use crate::ports::{CacheState, Ledger, Queue, StockCache, TimeoutMessage, Tombstone, WriteError};

/// Re-reads after a lost conditional write before giving up (a storm of concurrent operations on
/// one order settles long before this).
const MAX_ROUNDS: u32 = 6;

/// Who asks for a cancel.
#[derive(Debug, Clone, Copy)]
pub enum Canceller<'a> {
    /// The buyer: must own the order; an unseen order id gets an empty-rollback tombstone.
    Owner(&'a UserId),
    /// The system (timeout, reconciliation): no ownership check.
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

/// What a sweep or a batch of timers did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutReport {
    pub cancelled: u32,
    pub already_final: u32,
    pub redelayed: u32,
    pub errors: u32,
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    /// RESERVED → CONFIRMED.
    ///
    /// # Errors
    /// `Refused(NotYetReserved)` (retryable), `Refused(AlreadyCancelled)`, `Refused(OrderFailed)`,
    /// `ReservationNotFound`.
    pub async fn confirm(&self, order: &OrderId, now_ms: i64) -> Result<ReservationView, AppError> {
        for _ in 0..MAX_ROUNDS {
            let located = self.locate(order).await?;
            match transition(located.status(), crate::domain::Event::Confirm) {
                Err(Refusal::Unknown) => return Err(AppError::ReservationNotFound),
                Err(r) => return Err(r.into()),
                Ok(Transition::Already(_)) | Ok(Transition::To(_)) => {}
            }
            let Located::Durable(mut rec) = located else { return Err(Refusal::NotYetReserved.into()) };
            if rec.status == Status::Confirmed {
                return Ok(rec.into());
            }
            match self.ledger.confirm(&rec, now_ms).await {
                Ok(()) => {
                    rec.status = Status::Confirmed;
                    tracing::info!(order = %order, "confirmed");
                    return Ok(rec.into());
                }
                Err(WriteError::ConditionFailed) => continue, // raced a cancel: re-read and decide
                Err(WriteError::Cancelled(r)) => tracing::warn!(order = %order, reasons = ?r, "confirm retried"),
                Err(WriteError::Infra(e)) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable("too much contention on this order; retry".into()))
    }

    /// Cancels an order, whatever state it is in, with one effect however often it runs.
    ///
    /// # Errors
    /// `ReservationNotFound` (not the caller's), `Refused(AlreadyConfirmed)`, `Refused(OrderFailed)`.
    pub async fn cancel(&self, order: &OrderId, who: Canceller<'_>, now_ms: i64) -> Result<Cancelled, AppError> {
        let reason = match who {
            Canceller::Owner(_) => CancelReason::User,
            Canceller::System(r) => r,
        };
        for _ in 0..MAX_ROUNDS {
            let located = self.locate(order).await?;
            if let Canceller::Owner(u) = who
                && located.owner().is_some_and(|o| o != u)
            {
                return Err(AppError::ReservationNotFound);
            }
            match located {
                Located::Durable(mut rec) => {
                    let Some(collection) = rec.collection.clone() else {
                        // An empty-rollback tombstone.
                        return Ok(Cancelled::before(rec.into()));
                    };
                    match transition(Some(rec.status), crate::domain::Event::Cancel)? {
                        Transition::Already(_) => {
                            // Finish a cancel that died between DynamoDB and Redis.
                            self.cache.release(&collection, order, None, now_ms).await?;
                            self.clear_sold_out(&collection);
                            return Ok(Cancelled::before(rec.into()));
                        }
                        Transition::To(_) => {
                            let spec = self.spec(&collection).await?;
                            self.cache.mark_intent(&collection, &rec, now_ms).await?;
                            match self.ledger.cancel_reserved(&rec, spec.quantity as i64, reason, now_ms).await {
                                Ok(()) => {
                                    self.cache.release(&collection, order, None, now_ms).await?;
                                    self.clear_sold_out(&collection);
                                    tracing::info!(order = %order, reason = reason.as_str(), "cancelled; stock returned");
                                    rec.status = Status::Cancelled;
                                    rec.reason = Some(reason.as_str().to_owned());
                                    return Ok(Cancelled::now(rec.into()));
                                }
                                Err(WriteError::ConditionFailed) => continue, // raced confirm or cancel
                                Err(WriteError::Cancelled(r)) => {
                                    tracing::warn!(order = %order, reasons = ?r, "cancel retried")
                                }
                                Err(WriteError::Infra(e)) => return Err(e.into()),
                            }
                        }
                    }
                }
                Located::Cached { collection, user, quantity, state, accepted_at_ms } => {
                    if state == CacheState::Failed {
                        return Err(Refusal::OrderFailed.into());
                    }
                    // Not durable yet: the tombstone decides between this cancel and the persist.
                    let t = Tombstone {
                        order,
                        collection: Some(&collection),
                        user: &user,
                        quantity,
                        accepted_at_ms,
                        reason,
                    };
                    let won = self.ledger.put_tombstone(&t, now_ms).await?;
                    if !won {
                        continue; // persist (or another cancel) wrote first: decide again
                    }
                    self.cache.release(&collection, order, Some(&user), now_ms).await?;
                    self.cache.tombstone_order(order, &user).await?;
                    self.clear_sold_out(&collection);
                    tracing::info!(order = %order, reason = reason.as_str(), "cancelled before persist; tombstone written");
                    return Ok(Cancelled::now(ReservationView::cancelled(
                        order,
                        Some(collection),
                        quantity,
                        Some(reason.as_str()),
                    )));
                }
                Located::Tombstone { .. } => {
                    return Ok(Cancelled::before(ReservationView::cancelled(order, None, 0, None)));
                }
                Located::Unknown { claimed } => {
                    // Empty rollback: nothing was taken (or a Try is mid-flight). Leave a durable
                    // tombstone so a late Try or persist message for this id is refused.
                    let owner = match (who, claimed) {
                        (_, Some((_, u, _))) => u,
                        (Canceller::Owner(u), None) => u.clone(),
                        (Canceller::System(_), None) => return Err(AppError::ReservationNotFound),
                    };
                    let reason = if matches!(who, Canceller::Owner(_)) { CancelReason::EmptyRollback } else { reason };
                    let t = Tombstone {
                        order,
                        collection: None,
                        user: &owner,
                        quantity: 0,
                        accepted_at_ms: now_ms,
                        reason,
                    };
                    if !self.ledger.put_tombstone(&t, now_ms).await? {
                        continue;
                    }
                    self.cache.tombstone_order(order, &owner).await?;
                    tracing::info!(order = %order, "empty rollback; tombstone written");
                    return Ok(Cancelled::now(ReservationView::cancelled(order, None, 0, Some(reason.as_str()))));
                }
            }
        }
        Err(AppError::Unavailable("too much contention on this order; retry".into()))
    }

    /// Fires (or re-delays) one payment-window timer.
    async fn fire_timer(&self, t: &TimeoutMessage, now_ms: i64, report: &mut TimeoutReport) -> Result<(), AppError> {
        if t.due_at > now_ms / 1000 {
            self.queue.schedule_timeouts(std::slice::from_ref(t), now_ms).await?;
            report.redelayed += 1;
            return Ok(());
        }
        match self.cancel(&t.order_id, Canceller::System(CancelReason::Timeout), now_ms).await {
            Ok(c) if c.changed => report.cancelled += 1,
            Ok(_) | Err(AppError::Refused(_)) | Err(AppError::ReservationNotFound) => report.already_final += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Payment-window timers: each fires (or is re-delayed when not yet due). Returns the
    /// orders whose timer could not be handled (SQS delivers them again) and what was done.
    pub async fn fire_timers(&self, timers: Vec<TimeoutMessage>, now_ms: i64) -> (Vec<OrderId>, TimeoutReport) {
        let mut report = TimeoutReport::default();
        let mut failed = Vec::new();
        for t in timers {
            if let Err(e) = self.fire_timer(&t, now_ms, &mut report).await {
                tracing::error!(order = %t.order_id, error = %e, "timer not handled; SQS will redeliver");
                report.errors += 1;
                failed.push(t.order_id);
            }
        }
        (failed, report)
    }

    /// Backstop for lost timers: cancels every RESERVED order whose deadline has passed.
    pub async fn sweep_expired(&self, now_ms: i64, limit: usize) -> Result<TimeoutReport, AppError> {
        let mut report = TimeoutReport::default();
        for order in self.ledger.expired_reservations(now_ms / 1000, limit).await? {
            let t = TimeoutMessage { order_id: order, due_at: now_ms / 1000 };
            if let Err(e) = self.fire_timer(&t, now_ms, &mut report).await {
                tracing::error!(order = %t.order_id, error = %e, "sweep could not cancel");
                report.errors += 1;
            }
        }
        Ok(report)
    }
}
