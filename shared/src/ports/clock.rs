//! Time, as the use cases read it: wall-clock milliseconds for what is stored or compared across
//! functions (acceptance, deadlines, the time index), and a monotonic instant for the budgets
//! and waits of one invocation. Tests drive both with tokio's paused time ([`TokioClock`]).

use tokio::time::Instant;

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A monotonic instant (tokio's: paused time in tests moves it).
    fn instant(&self) -> Instant;
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
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_both_readings() {
        let c = TokioClock::starting_at(1_000);
        let i = c.instant();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(c.now_ms(), 2_500);
        assert_eq!(c.instant() - i, Duration::from_millis(1_500));
    }
}
