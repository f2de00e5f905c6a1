//! The buyer budget: how many Tries and cancels one buyer may make on one collection per fixed
//! window (docs/DESIGN.md#abuse). Pure: which window an instant falls in, when it ends, and whether
//! one more request fits; the count itself lives with the buyer's records in Redis.

use std::time::Duration;

/// Most requests a budget may allow per window: the count is stored in one byte.
pub const MAX_BUDGET_REQUESTS: u32 = 255;

/// The deployment's budget unless configured otherwise: 20 requests a minute.
pub const DEFAULT_BUYER_BUDGET: BuyerBudget = BuyerBudget { requests: 20, window: Duration::from_secs(60) };

/// How many budgeted requests (Try and cancel) one buyer may make on a collection per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuyerBudget {
    pub requests: u32,
    pub window: Duration,
}

/// One fixed window of a budget: windows are numbered from the epoch, so every function
/// instance agrees on them without talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetWindow {
    /// The window's number: epoch milliseconds ÷ the window's length.
    pub number: u32,
    /// When it ends, epoch milliseconds.
    pub ends_ms: i64,
}

impl BuyerBudget {
    /// The window `now_ms` falls in.
    pub fn window_at(&self, now_ms: i64) -> BudgetWindow {
        let len = (self.window.as_millis() as i64).max(1);
        let n = now_ms.div_euclid(len);
        BudgetWindow { number: n.clamp(0, i64::from(u32::MAX)) as u32, ends_ms: (n + 1) * len }
    }

    /// Whether a request that would be the `nth` of its window fits the budget.
    pub fn allows(&self, nth: u32) -> bool {
        nth <= self.requests
    }
}

impl BudgetWindow {
    /// How long a refused buyer waits: until the window ends, at least 1 ms.
    pub fn left(&self, now_ms: i64) -> Duration {
        Duration::from_millis((self.ends_ms - now_ms).max(1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: BuyerBudget = BuyerBudget { requests: 20, window: Duration::from_secs(60) };

    #[test]
    fn windows_are_numbered_from_the_epoch_and_end_on_their_boundary() {
        assert_eq!(B.window_at(0), BudgetWindow { number: 0, ends_ms: 60_000 });
        assert_eq!(B.window_at(59_999), BudgetWindow { number: 0, ends_ms: 60_000 });
        assert_eq!(B.window_at(60_000), BudgetWindow { number: 1, ends_ms: 120_000 });
        assert_eq!(B.window_at(-1).number, 0, "before the epoch clamps");
        assert_eq!(B.window_at(60_000 * (i64::from(u32::MAX) + 5)).number, u32::MAX);
        let w = B.window_at(1_765_000_000_123);
        assert!(w.ends_ms > 1_765_000_000_123 && w.ends_ms - 60_000 <= 1_765_000_000_123);
    }

    #[test]
    fn the_last_request_that_fits_is_the_budget() {
        assert!(B.allows(1) && B.allows(20) && !B.allows(21));
    }

    #[test]
    fn a_refused_buyer_waits_until_the_window_ends() {
        let w = B.window_at(61_000);
        assert_eq!(w.left(61_000), Duration::from_millis(59_000));
        assert_eq!(w.left(119_999), Duration::from_millis(1));
        assert_eq!(w.left(120_000), Duration::from_millis(1), "never 0");
    }
}
