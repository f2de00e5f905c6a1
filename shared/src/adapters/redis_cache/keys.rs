//! Key naming: every key of one cache shard of a collection shares its hash tag (one Redis
//! Cluster slot): `{<prefix>:c:<collectionId>}` for shard 0, `{<prefix>:c:<collectionId>:<r>}`
//! for shard r; which buyer bucket and time slice an order lands in. The layout is written once,
//! in docs/DESIGN.md#redis-layout.

use crate::domain::CollectionId;

/// Seconds per time slice of the index.
pub const SLICE_SECONDS: i64 = 10;
/// Buyers per bucket a collection is sized for (a listpack holds up to 128 fields by default,
/// and a shorter one is quicker to search).
pub const BUYERS_PER_BUCKET: i64 = 16;

/// One cache shard's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// Shard `shard`'s keys (shard 0's tag is the collection's, as before shards).
    pub fn new(prefix: &str, collection: &CollectionId, shard: u32) -> Self {
        let tag = match shard {
            0 => format!("{{{prefix}:c:{collection}}}"),
            r => format!("{{{prefix}:c:{collection}:{r}}}"),
        };
        Self { tag }
    }
    /// The shard's stock key in a layout of `shards` cache shards: named by the count, so that a
    /// function still routing with a layout since raised finds no stock (`NOCACHE`) rather than
    /// another layout's (docs/DESIGN.md#raising-cacheshards).
    pub fn stock(&self, shards: u32) -> String {
        match shards {
            0 | 1 => format!("{}:stock", self.tag),
            n => format!("{}:stock:{n}", self.tag),
        }
    }
    pub fn meta(&self) -> String {
        format!("{}:meta", self.tag)
    }
    pub fn slices(&self) -> String {
        format!("{}:slices", self.tag)
    }
    pub fn bucket(&self, n: u32) -> String {
        format!("{}:u:{n}", self.tag)
    }
    pub fn slice(&self, n: i64) -> String {
        format!("{}:t:{n}", self.tag)
    }
    /// Shard moves taken from this shard and not yet known in their recipient (`move_out.lua`).
    pub fn moves(&self) -> String {
        format!("{}:moves", self.tag)
    }
    /// Shard move ids applied here (`move_in.lua`).
    pub fn moved_in(&self) -> String {
        format!("{}:movedin", self.tag)
    }
    /// The write turn of stock bucket `k` (a DynamoDB item; not a buyer bucket).
    pub fn turn(&self, k: u32) -> String {
        format!("{}:turn:{k}", self.tag)
    }
}

/// The bucket count of a collection of `quantity` units.
pub fn buckets_for(quantity: i64) -> u32 {
    (quantity.max(1) as u64).div_ceil(BUYERS_PER_BUCKET as u64).min(1 << 16) as u32
}

/// The bucket of a stored buyer.
pub fn bucket_of(buyer: &[u8], nb: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(buyer) % u64::from(nb.max(1))) as u32
}

/// The buyer bucket a buyer's entries live in, of a collection of `nb` buckets.
pub fn user_bucket(user: &crate::domain::UserId, nb: u32) -> u32 {
    bucket_of(&super::codec::buyer_bytes(user), nb)
}

/// Whole seconds of an epoch-milliseconds instant (what the scripts store).
pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The time slice an instant falls in.
pub fn slice_of(ms: i64) -> i64 {
    secs(ms).div_euclid(SLICE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let id = CollectionId::parse("drop-1").unwrap();
        for (shard, tag) in [(0, "{fs:c:drop-1}:"), (2, "{fs:c:drop-1:2}:")] {
            let k = Keys::new("fs", &id, shard);
            for key in [
                k.stock(1),
                k.stock(4),
                k.meta(),
                k.slices(),
                k.bucket(7),
                k.slice(170_000_000),
                k.turn(3),
                k.moves(),
                k.moved_in(),
            ] {
                assert!(key.starts_with(tag), "{key}");
            }
        }
    }

    #[test]
    fn a_stock_key_is_named_by_its_layout() {
        let k = Keys::new("fs", &CollectionId::parse("drop-1").unwrap(), 0);
        assert_eq!(k.stock(1), "{fs:c:drop-1}:stock", "one shard: the name before shards");
        assert_eq!(k.stock(0), k.stock(1));
        assert_eq!(k.stock(4), "{fs:c:drop-1}:stock:4");
        assert_ne!(k.stock(2), k.stock(4));
    }

    #[test]
    fn buckets_and_slices() {
        assert!(buckets_for(100_000) >= 1_563 && buckets_for(0) == 1 && buckets_for(i64::MAX) == 1 << 16);
        assert_eq!(buckets_for(16), 1);
        assert_eq!(buckets_for(17), 2);
        assert!(bucket_of(b"alice", 7) < 7);
        assert_eq!(bucket_of(b"alice", 0), 0);
        let used: std::collections::BTreeSet<u32> =
            (0..64).map(|i| bucket_of(format!("u{i}").as_bytes(), 16)).collect();
        assert!(used.len() > 8, "buyers spread over the buckets: {used:?}");
        assert_eq!((secs(-1), secs(1_999)), (-1, 1));
        assert_eq!((slice_of(19_999), slice_of(20_000)), (1, 2));
    }
}
