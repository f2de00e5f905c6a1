//! The fate over time of an order Redis accepted and DynamoDB has no record of: one rule, used by
//! Try (is a replay's 202 still a promise?) and by reconciliation (re-send, leave alone, or give
//! up?). Ages count from the order's acceptance.
//!
//! ```text
//!  accepted            give-up − quiet stretch          give-up
//!  ├──── heal forward ──────────┼──────── quiet stretch ──────┼──── give up ────▶
//! ```

/// The window, from the settings: the give-up age and the quiet stretch before it
/// ([`crate::domain::Timing::quiet_stretch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingWindow {
    /// Age after which the order is given up (tombstone, stock back, CANCELLED/LOST).
    pub give_up_ms: i64,
    /// The stretch before the give-up in which nothing is re-sent and no replay promised.
    pub quiet_ms: i64,
}

/// What is done with such an order now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingFate {
    /// Young enough to heal forward: its message is re-sent, and a replay's 202 is a promise.
    HealForward,
    /// In the quiet stretch: nothing is re-sent and nothing promised; it waits for its give-up
    /// (every redelivery of the last message sent ends before it).
    Quiet,
    /// Past its give-up.
    GiveUp,
}

impl PendingWindow {
    /// The fate at `now_ms` of an order accepted at `accepted_at_ms`.
    pub fn fate(&self, accepted_at_ms: i64, now_ms: i64) -> PendingFate {
        if accepted_at_ms < now_ms - self.give_up_ms {
            PendingFate::GiveUp
        } else if accepted_at_ms < self.heal_forward_from(now_ms) {
            PendingFate::Quiet
        } else {
            PendingFate::HealForward
        }
    }

    /// Orders accepted at or after this instant still heal forward at `now_ms` (the bound Try
    /// hands its script, which sees only the entry's acceptance).
    pub fn heal_forward_from(&self, now_ms: i64) -> i64 {
        now_ms - self.give_up_ms + self.quiet_ms
    }

    /// When an order accepted at `accepted_at_ms` is past its give-up.
    pub fn give_up_at(&self, accepted_at_ms: i64) -> i64 {
        accepted_at_ms + self.give_up_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults: a 1,500 s give-up, 906 s quiet stretch.
    const W: PendingWindow = PendingWindow { give_up_ms: 1_500_000, quiet_ms: 906_000 };

    #[test]
    fn each_fate_over_its_boundaries() {
        let at = 1_000_000;
        assert_eq!(W.fate(at, at), PendingFate::HealForward);
        // Heals forward up to 594 s after acceptance, inclusive.
        assert_eq!(W.fate(at, at + 594_000), PendingFate::HealForward);
        assert_eq!(W.fate(at, at + 594_001), PendingFate::Quiet);
        // Quiet up to the give-up, inclusive; given up one millisecond later.
        assert_eq!(W.fate(at, at + 1_500_000), PendingFate::Quiet);
        assert_eq!(W.fate(at, at + 1_500_001), PendingFate::GiveUp);
        assert_eq!(W.give_up_at(at), at + 1_500_000);
    }

    #[test]
    fn the_heal_forward_bound_agrees_with_the_fate() {
        let now = 5_000_000;
        let from = W.heal_forward_from(now);
        assert_eq!(from, now - 594_000);
        assert_eq!(W.fate(from, now), PendingFate::HealForward);
        assert_eq!(W.fate(from - 1, now), PendingFate::Quiet);
    }

    #[test]
    fn a_clock_behind_the_acceptance_heals_forward() {
        // Skew: the deciding clock is behind the one that accepted.
        assert_eq!(W.fate(10_000, 9_000), PendingFate::HealForward);
    }
}
