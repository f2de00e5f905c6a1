//! Stock buckets: a collection's durable stock is split over `buckets` DynamoDB items so that its
//! writes run on that many chains at once (docs/DESIGN.md#stock-buckets). A buyer's orders live in
//! the buyer's home bucket; when a bucket runs dry, units move to it from the others of its cache
//! shard in one transaction. A collection's Redis state is split over cache shards lined up with
//! the buckets (docs/DESIGN.md#cache-shards). Everything here is the pure planning: where a buyer
//! lives (bucket and shard), how a quantity is first split, which buckets give how much when one
//! runs dry, and what a shard move carries from which buckets to which.

use xxhash_rust::xxh3::xxh3_64;

use super::UserId;

/// Most buckets a collection may have (a creation writes them all in one transaction).
pub const MAX_BUCKETS: u32 = 64;
/// Buckets of a collection created without `buckets`: enough chains for a hot drop on the local
/// stack and a few thousand second-phase calls a second on AWS (BENCHMARKS.md section 9).
pub const DEFAULT_BUCKETS: u32 = 16;

/// The bucket holding `user`'s orders (stable across processes and builds).
pub fn home_bucket(user: &UserId, buckets: u32) -> u32 {
    (xxh3_64(user.as_str().as_bytes()) % u64::from(buckets.max(1))) as u32
}

/// The cache shard holding stock bucket `k`'s stock and its buyers' records, of a collection of
/// `shards` cache shards (docs/DESIGN.md#cache-shards).
pub fn shard_of_bucket(k: u32, shards: u32) -> u32 {
    k % shards.max(1)
}

/// The cache shard holding `user`'s records: that of the user's home bucket, whatever the bucket
/// count, since the shard count divides it (`h % buckets % shards == h % shards`).
pub fn home_shard(user: &UserId, shards: u32) -> u32 {
    home_bucket(user, shards)
}

/// One cache shard of a collection's layout: its index and how many shards the layout has (a
/// shard's stock key is named by both, so a function routing with a layout that was since
/// raised finds no stock: docs/DESIGN.md#raising-cacheshards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheShard {
    pub index: u32,
    pub count: u32,
}

impl CacheShard {
    pub fn new(index: u32, count: u32) -> Self {
        Self { index, count }
    }
    /// Every shard of a layout of `count`, shard 0 first.
    pub fn all(count: u32) -> impl Iterator<Item = Self> {
        (0..count.max(1)).map(move |index| Self { index, count })
    }
}

/// Whether a raise from `from` to `to` cache shards is one this layout allows: `to` a larger
/// multiple of `from` that divides `buckets`, so that each shard splits into `to / from` shards
/// (shard r's buyers and stock buckets go to r, r + from, r + 2·from …, since
/// `h % to % from == h % from`), and nothing moves between old shards.
pub fn is_cache_shard_raise(from: u32, to: u32, buckets: u32) -> bool {
    from >= 1 && to > from && to.is_multiple_of(from) && buckets.is_multiple_of(to)
}

/// The stock buckets whose stock cache shard `r` holds, in order.
pub fn buckets_of_shard(r: u32, buckets: u32, shards: u32) -> impl Iterator<Item = u32> {
    (0..buckets.max(1)).filter(move |&k| shard_of_bucket(k, shards) == r)
}

/// Cache shard `shard`'s part of per-bucket figures (bucket 0 first): the sum over its stock
/// buckets.
pub fn shard_sum<T: Copy + std::iter::Sum<T>>(per_bucket: &[T], shard: u32, shards: u32) -> T {
    buckets_of_shard(shard, per_bucket.len() as u32, shards).filter_map(|k| per_bucket.get(k as usize).copied()).sum()
}

/// Units a shard move carries to a shard `missing` units short from a donor shard holding `has`:
/// half of the donor's (so that the two shards' buyers meet about the same stock, and a drained
/// shard is not back for one unit at a time), at least what is missing, never more than it has.
pub fn shard_move_units(has: i64, missing: i64) -> i64 {
    ((has + 1) / 2).max(missing).min(has).max(0)
}

/// DynamoDB's side of a shard move of `units` out of shard `from`: `(bucket, units)` from its
/// stock buckets, the richest first (empty when together they hold fewer).
pub fn shard_donors(saleable: &[i64], from: u32, shards: u32, units: i64) -> Vec<(u32, i64)> {
    let mut own: Vec<(u32, i64)> = buckets_of_shard(from, saleable.len() as u32, shards)
        .filter_map(|k| saleable.get(k as usize).map(|&s| (k, s)))
        .filter(|&(_, s)| s > 0)
        .collect();
    own.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut left = units;
    let mut out = Vec::new();
    for (k, s) in own {
        if left <= 0 {
            break;
        }
        let u = s.min(left);
        out.push((k, u));
        left -= u;
    }
    if left > 0 { Vec::new() } else { out }
}

/// The stock bucket of shard `to` that a shard move brings units into: its poorest (the lowest
/// index among equals).
pub fn shard_recipient(saleable: &[i64], to: u32, shards: u32) -> u32 {
    buckets_of_shard(to, saleable.len() as u32, shards)
        .min_by_key(|&k| (saleable.get(k as usize).copied().unwrap_or(0), k))
        .unwrap_or(to)
}

/// `quantity` split as evenly as it goes over `buckets`, the first ones taking the remainder.
pub fn split_quantity(quantity: i64, buckets: u32) -> Vec<i64> {
    let n = i64::from(buckets.max(1));
    (0..n).map(|k| quantity / n + i64::from(k < quantity % n)).collect()
}

/// Units to move into bucket `to`, which needs `need` and holds `saleable[to]`: `(from, units)`
/// per donor, each giving what is still missing and no more (measured: a donor drained past it
/// needs the units back for its own buyers, and a tight drop moved units back and forth). When
/// some buckets can cover the shortfall alone, `to`'s index picks one of them, so that the short
/// buckets of one drop spread their moves over the donors rather than all queueing on the
/// richest; otherwise the richest give first. Empty when `to` has enough or no donor has any;
/// short of `need` when all of them together do not have it.
pub fn plan_moves(saleable: &[i64], to: usize, need: i64) -> Vec<(usize, i64)> {
    let mut missing = need - saleable.get(to).copied().unwrap_or(0).max(0);
    if missing <= 0 {
        return Vec::new();
    }
    let able: Vec<usize> = (0..saleable.len()).filter(|&k| k != to && saleable[k] >= missing).collect();
    if !able.is_empty() {
        return vec![(able[to % able.len()], missing)];
    }
    let mut donors: Vec<(usize, i64)> =
        saleable.iter().copied().enumerate().filter(|&(k, s)| k != to && s > 0).collect();
    donors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut moves = Vec::new();
    for (from, has) in donors {
        if missing <= 0 {
            break;
        }
        let units = has.min(missing);
        moves.push((from, units));
        missing -= units;
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn a_raise_splits_each_shard_into_its_own_descendants() {
        assert!(is_cache_shard_raise(1, 2, 16) && is_cache_shard_raise(2, 8, 16) && is_cache_shard_raise(1, 64, 64));
        assert!(!is_cache_shard_raise(2, 2, 16), "not a raise");
        assert!(!is_cache_shard_raise(4, 2, 16), "a lowering");
        assert!(!is_cache_shard_raise(2, 3, 12), "not a multiple");
        assert!(!is_cache_shard_raise(2, 8, 12), "does not divide the buckets");
        assert!(!is_cache_shard_raise(0, 2, 16));
        for i in 0..500 {
            let user = u(&format!("buyer-{i}"));
            let (old, new) = (home_shard(&user, 2), home_shard(&user, 8));
            assert_eq!(new % 2, old, "a buyer stays within their old shard's descendants");
            let k = home_bucket(&user, 16);
            assert_eq!(shard_of_bucket(k, 8), new, "and with their home bucket");
        }
        assert_eq!(CacheShard::all(3).map(|s| (s.index, s.count)).collect::<Vec<_>>(), vec![(0, 3), (1, 3), (2, 3)]);
        assert_eq!(CacheShard::all(0).count(), 1);
    }

    #[test]
    fn home_buckets_are_stable_bounded_and_all_used() {
        assert_eq!(home_bucket(&u("alice"), 16), home_bucket(&u("alice"), 16));
        assert_eq!(home_bucket(&u("alice"), 1), 0);
        assert_eq!(home_bucket(&u("alice"), 0), 0, "no buckets means one");
        let used: std::collections::HashSet<u32> = (0..500).map(|i| home_bucket(&u(&format!("b{i}")), 16)).collect();
        assert_eq!(used.len(), 16);
        assert!(used.iter().all(|&k| k < 16));
    }

    #[test]
    fn a_buyers_shard_is_their_home_buckets() {
        for (buckets, shards) in [(16, 4), (12, 3), (64, 64), (8, 1), (6, 2)] {
            for i in 0..200 {
                let b = u(&format!("b{i}"));
                assert_eq!(
                    home_shard(&b, shards),
                    shard_of_bucket(home_bucket(&b, buckets), shards),
                    "{buckets}/{shards}"
                );
            }
        }
        assert_eq!(buckets_of_shard(1, 8, 4).collect::<Vec<_>>(), vec![1, 5]);
        assert_eq!(buckets_of_shard(0, 3, 1).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(buckets_of_shard(2, 6, 3).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(shard_of_bucket(5, 0), 0, "no shards means one");
        assert_eq!(shard_sum(&[1, 2, 4, 8, 16, 32], 1, 3), 2 + 16);
        assert_eq!(shard_sum(&[1, 2, 4], 0, 1), 7);
        assert_eq!(shard_sum::<i64>(&[], 0, 1), 0);
    }

    #[test]
    fn shard_moves_carry_half_the_donors_and_at_least_whats_missing() {
        assert_eq!(shard_move_units(10, 1), 5);
        assert_eq!(shard_move_units(11, 1), 6);
        assert_eq!(shard_move_units(1, 1), 1, "the last unit moves whole");
        assert_eq!(shard_move_units(10, 7), 7, "at least what is missing");
        assert_eq!(shard_move_units(3, 7), 3, "never more than the donor has");
        assert_eq!(shard_move_units(0, 1), 0);
        assert_eq!(shard_move_units(-2, 1), 0);
    }

    #[test]
    fn shard_moves_take_from_the_donor_shards_buckets_and_bring_to_the_poorest() {
        // Four buckets over two shards: shard 0 holds buckets 0 and 2, shard 1 buckets 1 and 3.
        let saleable = [3, 0, 5, 1];
        assert_eq!(shard_donors(&saleable, 0, 2, 4), vec![(2, 4)]);
        assert_eq!(shard_donors(&saleable, 0, 2, 7), vec![(2, 5), (0, 2)]);
        assert_eq!(shard_donors(&saleable, 0, 2, 8), vec![(2, 5), (0, 3)]);
        assert!(shard_donors(&saleable, 0, 2, 9).is_empty(), "short: nothing");
        assert_eq!(shard_donors(&saleable, 1, 2, 1), vec![(3, 1)]);
        assert_eq!(shard_donors(&[2, 2], 0, 1, 3), vec![(0, 2), (1, 1)], "ties: the lower bucket first");
        assert_eq!(shard_recipient(&saleable, 1, 2), 1);
        assert_eq!(shard_recipient(&saleable, 0, 2), 0);
        assert_eq!(shard_recipient(&[4, 1, 1, 0], 1, 2), 3);
        assert_eq!(shard_recipient(&[0, 0, 0, 0], 1, 2), 1, "equals: the lowest index");
    }

    #[test]
    fn quantities_split_evenly_and_sum() {
        assert_eq!(split_quantity(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(split_quantity(1, 3), vec![1, 0, 0]);
        assert_eq!(split_quantity(0, 2), vec![0, 0]);
        assert_eq!(split_quantity(7, 1), vec![7]);
        assert_eq!(split_quantity(5, 0), vec![5]);
        for (q, m) in [(200, 16), (1_000_000_000, 64), (63, 64)] {
            let s = split_quantity(q, m);
            assert_eq!(s.len(), m as usize);
            assert_eq!(s.iter().sum::<i64>(), q);
            assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn moves_take_what_is_missing_from_a_donor_that_has_it() {
        // Bucket 0 needs 2 and has 0: buckets 1 and 2 can cover it; bucket 0 picks the first.
        assert_eq!(plan_moves(&[0, 4, 10], 0, 2), vec![(1, 2)]);
        // Bucket 3 picks another of the able ones: short buckets spread over the donors.
        assert_eq!(plan_moves(&[5, 4, 10, 0], 3, 2), vec![(0, 2)]);
        assert_eq!(plan_moves(&[5, 4, 10, 0, 0], 4, 2), vec![(1, 2)]);
        // Only the rich can cover it.
        assert_eq!(plan_moves(&[0, 1, 10], 0, 5), vec![(2, 5)]);
        // Nobody can alone: the richest first, then the next.
        assert_eq!(plan_moves(&[0, 4, 10], 0, 12), vec![(2, 10), (1, 2)]);
        // One unit left anywhere moves whole.
        assert_eq!(plan_moves(&[0, 1, 0], 0, 1), vec![(1, 1)]);
        // Ties go to the lower bucket.
        assert_eq!(plan_moves(&[0, 3, 3], 0, 7), vec![(1, 3), (2, 3)]);
    }

    #[test]
    fn no_moves_when_enough_or_nothing_anywhere() {
        assert!(plan_moves(&[5, 4], 0, 5).is_empty(), "has enough");
        assert!(plan_moves(&[0, 0, 0], 1, 1).is_empty(), "nothing to move");
        assert!(plan_moves(&[-1, 0], 1, 1).is_empty(), "a negative donor gives nothing");
        // Short overall: everything moves, still short.
        assert_eq!(plan_moves(&[1, 2, 0], 2, 9), vec![(1, 2), (0, 1)]);
        // The recipient's own units count.
        assert_eq!(plan_moves(&[3, 8], 0, 4), vec![(1, 1)]);
    }
}
