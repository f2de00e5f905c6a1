//! Cancel: the buyer's cancel, a payment-window timeout or reconciliation giving a reservation
//! up, with the empty-rollback and anti-hanging guards.
//!
//! Order of writes for a cancel of a RESERVED order: Redis intent (the order goes back in the
//! log) → DynamoDB transaction (order CANCELLED + stock back, conditional) → Redis release (once).
//! A cancel that dies after DynamoDB is finished by reconciliation from the log. A cancel of an
//! order not yet durable writes a DynamoDB tombstone first; the late persist message then finds it
//! and is refused.

use super::status::{Located, ReservationView};
use super::{App, AppError, MAX_ROUNDS};
use crate::domain::{CancelReason, OrderId, Refusal, Status, Transition, UserId, transition};
use crate::ports::{CacheState, Ledger, Queue, StockCache, Tombstone, WriteError};

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

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
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
                            self.sold_out.clear(&collection);
                            return Ok(Cancelled::before(rec.into()));
                        }
                        Transition::To(_) => {
                            let spec = self.spec(&collection).await?;
                            self.cache.mark_intent(&collection, &rec, now_ms).await?;
                            match self.ledger.cancel_reserved(&rec, spec.quantity as i64, reason, now_ms).await {
                                Ok(()) => {
                                    self.cache.release(&collection, order, None, now_ms).await?;
                                    self.sold_out.clear(&collection);
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
                    self.sold_out.clear(&collection);
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
}
