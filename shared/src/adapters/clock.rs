//! The system's clocks behind the [`Clock`] port: the wall clock for epoch milliseconds, tokio's
//! monotonic clock for instants.

use crate::ports::Clock;

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
    fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}
