//! Settlement: what happens to an order's Redis deduction once DynamoDB's decision for that order
//! is known. Persist (after its transaction) and reconciliation (for deductions older than its
//! threshold) both ask [`settlement`], so the two can never disagree.
//!
//! A deduction is *the* durable one only when DynamoDB's record was written from it, which the
//! record's `acceptedAt` tells: after Redis forgot a settled order (retention) a replayed Try
//! takes stock again, and that second deduction must go back, whatever the record says.

use super::Status;

/// What the cache does with one deduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// DynamoDB holds this deduction: the entry becomes settled (durable).
    Settle,
    /// DynamoDB refused it: the entry becomes failed; Redis keeps the units (it had drifted
    /// high, and reconciliation re-syncs it from DynamoDB).
    Fail,
    /// DynamoDB holds the order from an earlier deduction: settle the entry and give this
    /// deduction's units (and the buyer's counter) back.
    SettleReturning,
    /// DynamoDB refused the order earlier: fail the entry and give this deduction's units back.
    FailReturning,
    /// The order is cancelled (or tombstoned) in DynamoDB: give its units back, once.
    Release,
    /// DynamoDB has nothing for it (yet): its message may still be on its way, or lost.
    /// Reconciliation heals it forward, or past its give-up writes a tombstone first and only
    /// gives the units back if that write wins.
    Missing,
}

/// `durable`: the status of DynamoDB's record for the order (`None`: no record).
/// `same_deduction`: the record was written from this very deduction (equal `acceptedAt`).
pub fn settlement(durable: Option<Status>, same_deduction: bool) -> Settlement {
    match (durable, same_deduction) {
        (None, _) => Settlement::Missing,
        (Some(Status::Cancelled), _) => Settlement::Release,
        (Some(Status::Failed), true) => Settlement::Fail,
        (Some(Status::Failed), false) => Settlement::FailReturning,
        (Some(Status::Reserved | Status::Confirmed | Status::Pending), true) => Settlement::Settle,
        (Some(Status::Reserved | Status::Confirmed | Status::Pending), false) => Settlement::SettleReturning,
    }
}

/// An unsettled entry in the time index: a deduction not yet known durable, or a cancel intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsettledKind {
    Deduction,
    Intent,
}

/// The units of one unsettled entry that a rebuild holds back from DynamoDB's saleable, given the
/// entry's record read in one transaction with that saleable: what DynamoDB will still take for
/// it, or Redis will still give back (so that once it settles, Redis's stock is DynamoDB's
/// saleable exactly). `same_deduction` as for [`settlement`].
///
/// - A deduction DynamoDB decided from this very deduction (settle, or fail: Redis keeps those
///   units taken) holds back nothing: saleable already says what it will say.
/// - Any other deduction holds back its units: DynamoDB has not taken them yet (missing: taken
///   when its message lands, or given back in Redis at its give-up), or Redis will give them
///   back (returning, released).
/// - A cancel intent holds back its units once DynamoDB's cancel committed (saleable has them and
///   the release will add them again), nothing before (both sides add them when it commits).
pub fn held_back(kind: UnsettledKind, quantity: u32, durable: Option<Status>, same_deduction: bool) -> i64 {
    let q = i64::from(quantity);
    match kind {
        UnsettledKind::Deduction => match settlement(durable, same_deduction) {
            Settlement::Settle | Settlement::Fail => 0,
            Settlement::SettleReturning | Settlement::FailReturning | Settlement::Release | Settlement::Missing => q,
        },
        UnsettledKind::Intent => {
            if durable == Some(Status::Cancelled) {
                q
            } else {
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Settlement as X;
    use Status as S;

    #[test]
    fn the_whole_table() {
        let table = [
            (None, true, X::Missing),
            (None, false, X::Missing),
            (Some(S::Reserved), true, X::Settle),
            (Some(S::Confirmed), true, X::Settle),
            (Some(S::Pending), true, X::Settle),
            (Some(S::Reserved), false, X::SettleReturning),
            (Some(S::Confirmed), false, X::SettleReturning),
            (Some(S::Failed), true, X::Fail),
            (Some(S::Failed), false, X::FailReturning),
            (Some(S::Cancelled), true, X::Release),
            (Some(S::Cancelled), false, X::Release),
        ];
        for (status, same, want) in table {
            assert_eq!(settlement(status, same), want, "{status:?} same={same}");
        }
    }

    #[test]
    fn a_rebuild_holds_back_what_is_still_to_move() {
        use UnsettledKind::{Deduction, Intent};
        let table = [
            (Deduction, None, true, 3),
            (Deduction, Some(S::Reserved), true, 0),
            (Deduction, Some(S::Confirmed), true, 0),
            (Deduction, Some(S::Failed), true, 0),
            (Deduction, Some(S::Reserved), false, 3),
            (Deduction, Some(S::Failed), false, 3),
            (Deduction, Some(S::Cancelled), true, 3),
            (Intent, Some(S::Reserved), true, 0),
            (Intent, Some(S::Confirmed), true, 0),
            (Intent, Some(S::Cancelled), true, 3),
            (Intent, None, true, 0),
        ];
        for (kind, status, same, want) in table {
            assert_eq!(held_back(kind, 3, status, same), want, "{kind:?} {status:?} same={same}");
        }
    }

    #[test]
    fn a_second_deduction_never_stays_taken_against_a_durable_order() {
        for s in [S::Reserved, S::Confirmed, S::Failed, S::Cancelled] {
            assert!(matches!(settlement(Some(s), false), X::SettleReturning | X::FailReturning | X::Release));
        }
    }
}
