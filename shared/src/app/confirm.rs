//! Confirm: the payment service's second phase, RESERVED → CONFIRMED, exactly once. A confirm
//! racing a cancel reads again and lets the state machine decide: exactly one of them wins. It
//! writes the order alone (no stock bucket): reconciliation's tally counts its units as confirmed
//! in their bucket later ([`super::tally`]).

use super::status::{Located, ReservationView};
use super::{App, AppError, MAX_ROUNDS};
use crate::domain::{OrderKey, Refusal, Status, Transition, transition};
use crate::ports::{Catalog, OrderBook, OrderCache, StockWrites, WriteError};

impl<C: OrderCache, L: Catalog + OrderBook + StockWrites, Q> App<C, L, Q> {
    /// RESERVED → CONFIRMED.
    ///
    /// # Errors
    /// `Refused(NotYetReserved)` (retryable), `Refused(AlreadyCancelled)`, `Refused(OrderFailed)`,
    /// `ReservationNotFound`.
    pub async fn confirm(&self, order: &OrderKey, now_ms: i64) -> Result<ReservationView, AppError> {
        let started = self.clock.instant();
        for round in 1..=MAX_ROUNDS {
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
                    tracing::info!(%order, "confirmed");
                    return Ok(rec.into());
                }
                Err(WriteError::ConditionFailed) => continue, // raced a cancel: re-read and decide
                Err(WriteError::Cancelled(r)) => {
                    tracing::warn!(%order, reasons = ?r, "confirm retried");
                    self.second_phase_backoff(started, round).await;
                }
                Err(WriteError::Infra(e)) => return Err(e.into()),
            }
        }
        Err(super::contention(order, None))
    }
}
