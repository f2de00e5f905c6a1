//! Time, as the use cases read it: wall-clock milliseconds for what is stored or compared across
//! functions (acceptance, deadlines, the time index), and a monotonic instant for the budgets
//! and waits of one invocation. Tests drive both with tokio's paused time ([`TokioClock`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic instant (tokio's: paused time in tests moves it).
    fn instant(&self) -> Instant;
}

impl<T: Clock + ?Sized> Clock for Arc<T> {
    fn now_ms(&self) -> i64 {
        (**self).now_ms()
    }
    fn instant(&self) -> Instant {
        (**self).instant()
    }
}

/// The system's clocks moved forward by an offset a test sets ([`ShiftedClock::advance`]): a
/// window of the app's own (the sold-out flag, a budget) passes without a real sleep. Redis,
/// DynamoDB and SQS keep their own time, so it only moves what the app decides by its clock.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_ms: AtomicI64,
}

impl ShiftedClock {
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
    /// Moves it back: an instance whose clock lags behind the others'.
    pub fn rewind(&self, by: Duration) {
        self.offset_ms.fetch_sub(by.as_millis() as i64, Ordering::Relaxed);
    }
    fn offset(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms() + self.offset()
    }
    fn instant(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.offset().max(0) as u64)
    }
}

/// A clock whose wall time is a fixed start plus tokio's monotonic time since: with paused time
/// (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) a test moves both at once.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall_at_start_ms: i64,
    start: Instant,
}

impl TokioClock {
    pub fn starting_at(wall_ms: i64) -> Self {
        Self { wall_at_start_ms: wall_ms, start: Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.wall_at_start_ms + self.start.elapsed().as_millis() as i64
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_both_readings() {
        let c = TokioClock::starting_at(1_000);
        let i = c.instant();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(c.now_ms(), 2_500);
        assert_eq!(c.instant() - i, Duration::from_millis(1_500));
    }

    #[test]
    fn a_shifted_clock_moves_both_readings_by_its_offset() {
        let c = ShiftedClock::default();
        let (w, i) = (crate::now_ms(), Instant::now());
        c.advance(Duration::from_secs(60));
        assert!(c.now_ms() >= w + 60_000 && c.now_ms() < w + 70_000);
        assert!(c.instant() >= i + Duration::from_secs(60));
        c.rewind(Duration::from_secs(45));
        assert!(c.now_ms() >= w + 15_000 && c.now_ms() < w + 25_000);
        // Shared, it reads the same.
        let shared: &dyn Clock = &std::sync::Arc::new(c);
        assert!(shared.now_ms() >= w + 15_000 && shared.now_ms() < w + 25_000);
    }
}
