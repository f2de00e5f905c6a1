//! The reservation life (docs/DESIGN.md#reservation-life) as an explicit state machine.
//!
//! ```text
//!   (none) ─Try─▶ PENDING ─persist─▶ RESERVED ─confirm─▶ CONFIRMED
//!                   │  │                 │
//!   persist refused │  │ cancel          │ cancel / timeout
//!                   ▼  ▼                 ▼
//!                FAILED  CANCELLED ◀─────┘
//! ```
//!
//! Every use case asks [`transition`] what an event does to the state it observed, so the rules
//! (idempotent repeats, final states, the anti-hanging tombstone) live here and nowhere else.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Taken in Redis, not yet durable.
    Pending,
    /// Durable in DynamoDB, awaiting payment.
    Reserved,
    /// Paid. Final.
    Confirmed,
    /// Given back (or never taken: a tombstone). Final.
    Cancelled,
    /// DynamoDB refused what Redis accepted. Final.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Reserved => "RESERVED",
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Status::Pending,
            "RESERVED" => Status::Reserved,
            "CONFIRMED" => Status::Confirmed,
            "CANCELLED" => Status::Cancelled,
            "FAILED" => Status::Failed,
            _ => return None,
        })
    }
    /// Holds durable stock (counts in `quantity = saleable + Σ RESERVED + Σ CONFIRMED`).
    pub fn holds_durable_stock(self) -> bool {
        matches!(self, Status::Reserved | Status::Confirmed)
    }
}

/// Why a reservation was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// The buyer cancelled.
    User,
    /// The payment window passed.
    Timeout,
    /// A cancel arrived for an order never seen (empty rollback).
    EmptyRollback,
    /// Reconciliation found a Redis deduction whose message never reached DynamoDB.
    Lost,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::User => "USER",
            CancelReason::Timeout => "TIMEOUT",
            CancelReason::EmptyRollback => "EMPTY_ROLLBACK",
            CancelReason::Lost => "LOST",
        }
    }
}

/// What happens to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The persist consumer applies the durable deduction.
    Persist,
    /// DynamoDB had too little stock for the order.
    PersistRefused,
    /// Payment succeeded.
    Confirm,
    /// User cancel, timeout, or reconciliation of a lost deduction.
    Cancel,
}

/// An allowed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The state changes to this one.
    To(Status),
    /// The event was already applied (a replay): nothing changes, answer as before.
    Already(Status),
}

/// A refused step (its API problem code is mapped in `crate::http::problem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the reservation is already confirmed")]
    AlreadyConfirmed,
    #[error("the reservation is already cancelled")]
    AlreadyCancelled,
    #[error("the reservation is not durable yet; retry shortly")]
    NotYetReserved,
    #[error("the reservation failed: the stock was not available")]
    OrderFailed,
    #[error("the order was cancelled before it was persisted")]
    Tombstoned,
    #[error("no such reservation")]
    Unknown,
}

/// The whole state machine: what `event` does to a reservation observed in `from`
/// (`None` = no trace of the order anywhere).
/// A RESERVED order's payment deadline, epoch seconds: the payment window counts from when the order
/// became durable, not from its acceptance. Payment cannot be confirmed before the order is
/// RESERVED, so an order healed forward late (a lost message re-sent) still gets its whole window;
/// counted from acceptance, one that became durable past it was timed out at once.
pub fn payment_deadline(accepted_at_ms: i64, durable_at_ms: i64, window_seconds: u32) -> i64 {
    accepted_at_ms.max(durable_at_ms) / 1000 + i64::from(window_seconds)
}

pub fn transition(from: Option<Status>, event: Event) -> Result<Transition, Refusal> {
    use Event as E;
    use Status as S;
    use Transition::{Already, To};
    match (from, event) {
        // Persist: a message means a Try was accepted; it lands unless a tombstone is there.
        (None | Some(S::Pending), E::Persist) => Ok(To(S::Reserved)),
        (None | Some(S::Pending), E::PersistRefused) => Ok(To(S::Failed)),
        (Some(s @ (S::Reserved | S::Confirmed | S::Failed)), E::Persist | E::PersistRefused) => Ok(Already(s)),
        (Some(S::Cancelled), E::Persist | E::PersistRefused) => Err(Refusal::Tombstoned),
        // Confirm: only a durable reservation can be paid for.
        (Some(S::Reserved), E::Confirm) => Ok(To(S::Confirmed)),
        (Some(S::Confirmed), E::Confirm) => Ok(Already(S::Confirmed)),
        (Some(S::Pending), E::Confirm) => Err(Refusal::NotYetReserved),
        (Some(S::Cancelled), E::Confirm) => Err(Refusal::AlreadyCancelled),
        (Some(S::Failed), E::Confirm) => Err(Refusal::OrderFailed),
        (None, E::Confirm) => Err(Refusal::Unknown),
        // Cancel: allowed until paid; for an unseen order it leaves a tombstone (empty rollback).
        (None | Some(S::Pending | S::Reserved), E::Cancel) => Ok(To(S::Cancelled)),
        (Some(S::Cancelled), E::Cancel) => Ok(Already(S::Cancelled)),
        (Some(S::Confirmed), E::Cancel) => Err(Refusal::AlreadyConfirmed),
        (Some(S::Failed), E::Cancel) => Err(Refusal::OrderFailed),
    }
}

/// The state persist writes for an order with no durable record yet (PENDING) on `event`
/// (`Persist`, or `PersistRefused`); `None` when the machine allows no such step.
pub fn landing(event: Event) -> Option<Status> {
    match transition(Some(Status::Pending), event) {
        Ok(Transition::To(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reasons_keep_their_stored_names() {
        let names = [CancelReason::User, CancelReason::Timeout, CancelReason::EmptyRollback, CancelReason::Lost]
            .map(CancelReason::as_str);
        assert_eq!(names, ["USER", "TIMEOUT", "EMPTY_ROLLBACK", "LOST"]);
    }

    #[test]
    fn persist_lands_reserved_or_failed() {
        assert_eq!(landing(Event::Persist), Some(Status::Reserved));
        assert_eq!(landing(Event::PersistRefused), Some(Status::Failed));
        assert_eq!(landing(Event::Confirm), None);
    }

    #[test]
    fn the_payment_window_counts_from_durability() {
        // Durable a second after acceptance: the window from then.
        assert_eq!(payment_deadline(10_000, 11_500, 60), 71);
        // Healed forward 5 minutes later with a 60 s window: still 60 s to pay.
        assert_eq!(payment_deadline(10_000, 310_000, 60), 370);
        // A clock behind the acceptance (skew) never shortens it.
        assert_eq!(payment_deadline(10_000, 9_000, 60), 70);
    }
    use Event as E;
    use Status as S;
    use Transition::{Already, To};

    const ALL: [Option<Status>; 6] =
        [None, Some(S::Pending), Some(S::Reserved), Some(S::Confirmed), Some(S::Cancelled), Some(S::Failed)];

    #[test]
    fn happy_path() {
        assert_eq!(transition(Some(S::Pending), E::Persist), Ok(To(S::Reserved)));
        assert_eq!(transition(Some(S::Reserved), E::Confirm), Ok(To(S::Confirmed)));
    }

    #[test]
    fn cancel_from_each_state() {
        assert_eq!(transition(None, E::Cancel), Ok(To(S::Cancelled)), "empty rollback leaves a tombstone");
        assert_eq!(transition(Some(S::Pending), E::Cancel), Ok(To(S::Cancelled)));
        assert_eq!(transition(Some(S::Reserved), E::Cancel), Ok(To(S::Cancelled)));
        assert_eq!(transition(Some(S::Cancelled), E::Cancel), Ok(Already(S::Cancelled)));
        assert_eq!(transition(Some(S::Confirmed), E::Cancel), Err(Refusal::AlreadyConfirmed));
        assert_eq!(transition(Some(S::Failed), E::Cancel), Err(Refusal::OrderFailed));
    }

    #[test]
    fn confirm_from_each_state() {
        assert_eq!(transition(Some(S::Confirmed), E::Confirm), Ok(Already(S::Confirmed)));
        assert_eq!(transition(Some(S::Pending), E::Confirm), Err(Refusal::NotYetReserved));
        assert_eq!(transition(Some(S::Cancelled), E::Confirm), Err(Refusal::AlreadyCancelled));
        assert_eq!(transition(Some(S::Failed), E::Confirm), Err(Refusal::OrderFailed));
        assert_eq!(transition(None, E::Confirm), Err(Refusal::Unknown));
    }

    #[test]
    fn persist_is_idempotent_and_refused_by_tombstones() {
        assert_eq!(transition(None, E::Persist), Ok(To(S::Reserved)));
        assert_eq!(transition(Some(S::Reserved), E::Persist), Ok(Already(S::Reserved)));
        assert_eq!(transition(Some(S::Confirmed), E::Persist), Ok(Already(S::Confirmed)));
        assert_eq!(transition(Some(S::Failed), E::Persist), Ok(Already(S::Failed)));
        assert_eq!(transition(Some(S::Cancelled), E::Persist), Err(Refusal::Tombstoned));
        assert_eq!(transition(Some(S::Pending), E::PersistRefused), Ok(To(S::Failed)));
        assert_eq!(transition(Some(S::Cancelled), E::PersistRefused), Err(Refusal::Tombstoned));
    }

    #[test]
    fn final_states_never_move() {
        for ev in [E::Persist, E::PersistRefused, E::Confirm, E::Cancel] {
            for fin in [S::Confirmed, S::Cancelled, S::Failed] {
                if let Ok(To(s)) = transition(Some(fin), ev) {
                    panic!("{fin:?} moved to {s:?} on {ev:?}");
                }
            }
        }
    }

    #[test]
    fn every_event_is_idempotent() {
        // Applying an event to the state it produced is a no-op or the same refusal: one effect.
        for from in ALL {
            for ev in [E::Persist, E::PersistRefused, E::Confirm, E::Cancel] {
                if let Ok(To(next)) = transition(from, ev) {
                    let again = transition(Some(next), ev);
                    assert!(
                        matches!(again, Ok(Already(s)) if s == next) || again.is_err(),
                        "{from:?} --{ev:?}--> {next:?} then {again:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn only_reserved_and_confirmed_hold_stock() {
        assert!(S::Reserved.holds_durable_stock() && S::Confirmed.holds_durable_stock());
        assert!(!S::Pending.holds_durable_stock() && !S::Cancelled.holds_durable_stock());
        for s in [S::Pending, S::Reserved, S::Confirmed, S::Cancelled, S::Failed] {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
