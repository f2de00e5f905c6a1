//! Per-instance sold-out flags: after Redis answered "sold out" for a collection, this instance
//! refuses Tries of unknown order ids for a short while without a Redis round trip, keeping the
//! horde off the collection's shard. A return of stock clears the flag at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::CollectionId;

#[derive(Debug, Default)]
pub struct SoldOutFlags {
    lifetime: Duration,
    until: Mutex<HashMap<CollectionId, Instant>>,
}

impl SoldOutFlags {
    pub fn new(lifetime: Duration) -> Self {
        Self { lifetime, until: Mutex::default() }
    }

    /// Whether the collection's flag is up at `now` (an expired flag is dropped).
    pub fn is_up(&self, id: &CollectionId, now: Instant) -> bool {
        let Ok(mut m) = self.until.lock() else { return false };
        match m.get(id) {
            Some(until) if *until > now => true,
            Some(_) => {
                m.remove(id);
                false
            }
            None => false,
        }
    }

    pub fn raise(&self, id: &CollectionId, now: Instant) {
        if let Ok(mut m) = self.until.lock() {
            m.insert(id.clone(), now + self.lifetime);
        }
    }

    pub fn clear(&self, id: &CollectionId) {
        if let Ok(mut m) = self.until.lock() {
            m.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Clock, TokioClock};

    // The clock is what is tested: paused tokio time, no real sleeps.
    #[tokio::test(start_paused = true)]
    async fn a_flag_lasts_its_lifetime_and_a_return_clears_it() {
        let clock = TokioClock::starting_at(0);
        let flags = SoldOutFlags::new(Duration::from_millis(500));
        let c = CollectionId::parse("drop").unwrap();
        assert!(!flags.is_up(&c, clock.instant()));
        flags.raise(&c, clock.instant());
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(flags.is_up(&c, clock.instant()), "up for its whole lifetime");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!flags.is_up(&c, clock.instant()), "down once it expired");
        flags.raise(&c, clock.instant());
        flags.clear(&c);
        assert!(!flags.is_up(&c, clock.instant()), "stock came back: down at once");
        let other = CollectionId::parse("other").unwrap();
        flags.raise(&other, clock.instant());
        assert!(!flags.is_up(&c, clock.instant()) && flags.is_up(&other, clock.instant()), "per collection");
    }
}
