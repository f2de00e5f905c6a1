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

    /// Whether the collection's flag is up (an expired flag is dropped).
    pub fn is_up(&self, id: &CollectionId) -> bool {
        let Ok(mut m) = self.until.lock() else { return false };
        match m.get(id) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                m.remove(id);
                false
            }
            None => false,
        }
    }

    pub fn raise(&self, id: &CollectionId) {
        if let Ok(mut m) = self.until.lock() {
            m.insert(id.clone(), Instant::now() + self.lifetime);
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

    // The clock is what is tested: paused tokio time, no real sleeps.
    #[tokio::test(start_paused = true)]
    async fn a_flag_lasts_its_lifetime_and_a_return_clears_it() {
        let flags = SoldOutFlags::new(Duration::from_millis(500));
        let c = CollectionId::parse("drop").unwrap();
        assert!(!flags.is_up(&c));
        flags.raise(&c);
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(flags.is_up(&c), "up for its whole lifetime");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!flags.is_up(&c), "down once it expired");
        flags.raise(&c);
        flags.clear(&c);
        assert!(!flags.is_up(&c), "stock came back: down at once");
        let other = CollectionId::parse("other").unwrap();
        flags.raise(&other);
        assert!(!flags.is_up(&c) && flags.is_up(&other), "per collection");
    }
}
