//! The one retry policy, backon's exponential backoff with jitter, for every retry and wait loop:
//! [`delay`] spaces the retries of a failed or conflicting call, [`turn_polls`] the polls for a
//! write turn someone else holds. Each delay is a base `d` plus up to `d` of jitter, `d` growing
//! from the minimum by the factor up to the maximum.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Retries of a call: 20 ms doubling up to 640 ms (so each wait is 20–40 ms at first, at most
/// 1.28 s).
const RETRIES: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_millis(20))
    .with_max_delay(Duration::from_millis(640))
    .with_max_times(usize::MAX);

/// Polls for a write turn: 2.5 ms growing by 2^(1/8) per poll up to 12 ms, so a crowd of
/// waiters stays a small load on the collection's slot (2.5–5 ms apart at first, at most 24 ms).
const TURN_POLLS: ExponentialBuilder = ExponentialBuilder::new()
    .with_jitter()
    .with_min_delay(Duration::from_micros(2_500))
    .with_factor(1.090_507_7)
    .with_max_delay(Duration::from_millis(12))
    .with_max_times(usize::MAX);

/// The wait before retry `attempt` (1-based) of a call.
pub fn delay(attempt: u32) -> Duration {
    RETRIES.build().nth(attempt.max(1) as usize - 1).unwrap_or(Duration::from_millis(640))
}

/// Waits before retry `attempt` (1-based) of a call.
pub async fn backoff(attempt: u32) {
    tokio::time::sleep(delay(attempt)).await;
}

/// The waits between one waiter's polls for a write turn.
pub fn turn_polls() -> ExponentialBackoff {
    TURN_POLLS.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn retries_double_from_20_ms_with_jitter_up_to_640() {
        for _ in 0..50 {
            let d = delay(1);
            assert!(d >= MS(20) && d < MS(40), "{d:?}");
            let d = delay(2);
            assert!(d >= MS(40) && d < MS(80), "{d:?}");
            for attempt in [6, 7, 50] {
                let d = delay(attempt);
                assert!(d >= MS(640) && d < MS(1_280), "{attempt}: {d:?}");
            }
            assert!(delay(0) < MS(40), "attempt 0 counts as the first");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_waits_its_delay() {
        let start = tokio::time::Instant::now();
        backoff(2).await;
        let waited = start.elapsed();
        // The delay is under 80 ms; tokio's timer rounds a sleep up to its next millisecond.
        assert!(waited >= MS(40) && waited <= MS(80), "{waited:?}");
    }

    #[test]
    fn turn_polls_start_near_2_ms_and_stay_under_24() {
        let polls: Vec<Duration> = turn_polls().take(40).collect();
        assert!(polls[0] >= Duration::from_micros(2_500) && polls[0] < MS(5), "{:?}", polls[0]);
        assert!(polls[8] >= MS(5) && polls[8] < MS(10), "doubled after 8 polls: {:?}", polls[8]);
        assert!(polls.iter().all(|d| *d < MS(24)), "{polls:?}");
        assert!(polls[39] >= MS(12), "{:?}", polls[39]);
    }
}
