//! The collection's stock model (docs/DESIGN.md#stock-identities): its settings, its durable stock levels with
//! their identities, and the drift between Redis and DynamoDB.

use serde::{Deserialize, Serialize};

use super::buckets::{DEFAULT_BUCKETS, MAX_BUCKETS};

/// Largest `quantity` a collection may be created with.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
pub const DEFAULT_PAYMENT_WINDOW_SECONDS: u32 = 900;
pub const DEFAULT_MAX_PER_ORDER: u32 = 10;
/// Longest payment window accepted (one day); longer windows are re-delayed in 900 s hops.
pub const MAX_PAYMENT_WINDOW_SECONDS: i64 = 86_400;

/// What an admin fixes when creating a collection. Immutable afterwards but for a raise of its
/// cache shards, which every function learns of within its settings cache's life
/// (`app::SPEC_TTL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionSpec {
    pub quantity: u64,
    /// Units one user may hold (reserved or confirmed) at once; `None` = no limit.
    pub per_user_limit: Option<u32>,
    pub payment_window_seconds: u32,
    pub max_per_order: u32,
    /// Stock buckets its durable stock is split over (docs/DESIGN.md#stock-buckets).
    pub buckets: u32,
    /// Cache shards its Redis state is split over, each holding the stock buckets `k` with
    /// `k % cache_shards` its index (docs/DESIGN.md#cache-shards); divides `buckets`.
    #[serde(default = "one")]
    pub cache_shards: u32,
}

fn one() -> u32 {
    1
}

/// A field of a collection spec that is out of range, named for the problem response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct SpecError {
    pub field: &'static str,
    pub rule: &'static str,
}

impl CollectionSpec {
    /// Validates raw numbers from the API (absent optional fields take their defaults).
    pub fn parse(
        quantity: Option<i64>,
        per_user_limit: Option<i64>,
        payment_window_seconds: Option<i64>,
        buckets: Option<i64>,
        cache_shards: Option<i64>,
    ) -> Result<Self, SpecError> {
        let quantity = match quantity {
            Some(q) if (0..=MAX_QUANTITY).contains(&q) => q as u64,
            Some(_) => return Err(SpecError { field: "quantity", rule: "must be an integer from 0 to 1000000000" }),
            None => return Err(SpecError { field: "quantity", rule: "is required" }),
        };
        let per_user_limit = match per_user_limit {
            None => None,
            Some(k) if (1..=i64::from(u32::MAX)).contains(&k) => Some(k as u32),
            Some(_) => return Err(SpecError { field: "perUserLimit", rule: "must be a positive integer" }),
        };
        let payment_window_seconds = match payment_window_seconds {
            None => DEFAULT_PAYMENT_WINDOW_SECONDS,
            Some(s) if (1..=MAX_PAYMENT_WINDOW_SECONDS).contains(&s) => s as u32,
            Some(_) => {
                return Err(SpecError { field: "paymentWindowSeconds", rule: "must be an integer from 1 to 86400" });
            }
        };
        let buckets = match buckets {
            None => DEFAULT_BUCKETS,
            Some(b) if (1..=i64::from(MAX_BUCKETS)).contains(&b) => b as u32,
            Some(_) => return Err(SpecError { field: "buckets", rule: "must be an integer from 1 to 64" }),
        };
        let cache_shards = match cache_shards {
            None => 1,
            Some(r) if r >= 1 && r <= i64::from(buckets) && i64::from(buckets) % r == 0 => r as u32,
            Some(_) => return Err(SpecError { field: "cacheShards", rule: "must be an integer that divides buckets" }),
        };
        Ok(Self {
            quantity,
            per_user_limit,
            payment_window_seconds,
            max_per_order: DEFAULT_MAX_PER_ORDER,
            buckets,
            cache_shards,
        })
    }
}

impl CollectionSpec {
    /// Whether a creation asking for `asked` is this collection again: the same settings, and
    /// the cache shards it has or was created with (`created_cache_shards`: the creation's body
    /// repeated after a raise is still the same collection).
    pub fn is_created_as(&self, asked: &CollectionSpec, created_cache_shards: u32) -> bool {
        (asked.cache_shards == self.cache_shards || asked.cache_shards == created_cache_shards)
            && *self == CollectionSpec { cache_shards: self.cache_shards, ..asked.clone() }
    }

    /// The units cache shard `shard` holds at creation: its stock buckets' shares (what sizes
    /// its Redis structures).
    pub fn shard_quantity(&self, shard: u32) -> i64 {
        let split = super::buckets::split_quantity(self.quantity as i64, self.buckets);
        super::buckets::buckets_of_shard(shard, self.buckets, self.cache_shards).map(|k| split[k as usize]).sum()
    }
}

/// Durable stock of one collection, as DynamoDB keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StockLevels {
    pub quantity: i64,
    pub saleable: i64,
    pub reserved: i64,
    pub confirmed: i64,
}

impl StockLevels {
    /// The levels as a reader should see them: `untallied` units of confirmed orders (still
    /// counted as reserved until the tally) counted as confirmed.
    pub fn with_untallied(self, untallied: i64) -> Self {
        Self { reserved: self.reserved - untallied, confirmed: self.confirmed + untallied, ..self }
    }
}

/// A broken stock identity (docs/DESIGN.md#stock-identities).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "identity", rename_all = "camelCase")]
pub enum IdentityViolation {
    /// `saleable` outside `0 ..= quantity`.
    SaleableOutOfBounds { saleable: i64, quantity: i64 },
    /// `quantity != saleable + reserved + confirmed`.
    Unbalanced { quantity: i64, accounted: i64 },
    /// A negative counter.
    Negative { field: &'static str, value: i64 },
    /// The stock buckets' quantities do not add up to the collection's.
    BucketsUnbalanced { quantity: i64, buckets: i64 },
    /// One stock bucket's own identity does not hold.
    InBucket { bucket: u32, violation: Box<IdentityViolation> },
}

/// Every identity of a collection split over stock buckets: the whole's (the sum of the
/// buckets), each bucket's own, and the buckets' quantities adding up to `quantity`.
pub fn bucket_violations(quantity: i64, buckets: &[StockLevels]) -> Vec<IdentityViolation> {
    let whole: StockLevels = buckets.iter().copied().sum();
    let mut v = whole.violations();
    if whole.quantity != quantity {
        v.push(IdentityViolation::BucketsUnbalanced { quantity, buckets: whole.quantity });
    }
    for (k, b) in buckets.iter().enumerate() {
        v.extend(
            b.violations()
                .into_iter()
                .map(|x| IdentityViolation::InBucket { bucket: k as u32, violation: Box::new(x) }),
        );
    }
    v
}

impl std::ops::Add for StockLevels {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            quantity: self.quantity + o.quantity,
            saleable: self.saleable + o.saleable,
            reserved: self.reserved + o.reserved,
            confirmed: self.confirmed + o.confirmed,
        }
    }
}

impl std::iter::Sum for StockLevels {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

impl StockLevels {
    /// Every stock identity that does not hold (empty when all hold).
    pub fn violations(&self) -> Vec<IdentityViolation> {
        let mut v = Vec::new();
        if self.saleable < 0 || self.saleable > self.quantity {
            v.push(IdentityViolation::SaleableOutOfBounds { saleable: self.saleable, quantity: self.quantity });
        }
        for (field, value) in [("reserved", self.reserved), ("confirmed", self.confirmed)] {
            if value < 0 {
                v.push(IdentityViolation::Negative { field, value });
            }
        }
        let accounted = self.saleable + self.reserved + self.confirmed;
        if accounted != self.quantity {
            v.push(IdentityViolation::Unbalanced { quantity: self.quantity, accounted });
        }
        v
    }
}

/// How far Redis is from what DynamoDB says it should be: while entries are unsettled,
/// `cached = saleable - Σ qty(PENDING)`. Positive = Redis too high (risk of FAILED orders, never of
/// oversell); negative = Redis too low (undersell until reconciled).
pub fn drift(cached: i64, saleable: i64, pending: i64) -> i64 {
    cached - (saleable - pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_creation_repeated_after_a_raise_is_the_same_collection() {
        let asked = CollectionSpec::parse(Some(10), None, None, Some(16), Some(2)).unwrap();
        let now = CollectionSpec { cache_shards: 8, ..asked.clone() };
        assert!(now.is_created_as(&asked, 2) && asked.is_created_as(&asked, 2));
        assert!(now.is_created_as(&now, 2), "the count it has now");
        assert!(!now.is_created_as(&asked, 8), "created with 8: 2 was never its count");
        assert!(!asked.is_created_as(&now, 2));
        assert!(!now.is_created_as(&CollectionSpec { cache_shards: 4, ..asked.clone() }, 2));
        assert!(!CollectionSpec { quantity: 11, ..now.clone() }.is_created_as(&asked, 2));
    }

    #[test]
    fn untallied_units_read_as_confirmed() {
        let l = StockLevels { quantity: 10, saleable: 4, reserved: 5, confirmed: 1 };
        assert_eq!(l.with_untallied(3), StockLevels { quantity: 10, saleable: 4, reserved: 2, confirmed: 4 });
        assert_eq!(l.with_untallied(0), l);
        assert!(l.with_untallied(3).violations().is_empty(), "the identity holds either way");
    }

    #[test]
    fn spec_defaults_and_bounds() {
        let s = CollectionSpec::parse(Some(200), None, None, None, None).unwrap();
        assert_eq!(s.quantity, 200);
        assert_eq!(s.per_user_limit, None);
        assert_eq!(s.payment_window_seconds, 900);
        assert_eq!(s.max_per_order, 10);
        assert_eq!(s.buckets, DEFAULT_BUCKETS);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(1), None).unwrap().buckets, 1);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(64), None).unwrap().buckets, 64);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(0), None).unwrap_err().field, "buckets");
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(65), None).unwrap_err().field, "buckets");
        // Cache shards divide the buckets: 1 by default, up to one per bucket.
        assert_eq!(CollectionSpec::parse(Some(1), None, None, None, None).unwrap().cache_shards, 1);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(12), Some(3)).unwrap().cache_shards, 3);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(4), Some(4)).unwrap().cache_shards, 4);
        assert_eq!(CollectionSpec::parse(Some(1), None, None, Some(1), Some(1)).unwrap().cache_shards, 1);
        for bad in [0, -1, 5, 8, 3] {
            let e = CollectionSpec::parse(Some(1), None, None, Some(4), Some(bad)).unwrap_err();
            assert_eq!(e.field, "cacheShards", "{bad}");
        }
        assert!(CollectionSpec::parse(Some(0), Some(1), Some(1), None, None).is_ok());
        assert!(CollectionSpec::parse(Some(MAX_QUANTITY), None, Some(86_400), None, None).is_ok());
        assert_eq!(CollectionSpec::parse(None, None, None, None, None).unwrap_err().field, "quantity");
        assert_eq!(CollectionSpec::parse(Some(-1), None, None, None, None).unwrap_err().field, "quantity");
        assert_eq!(
            CollectionSpec::parse(Some(MAX_QUANTITY + 1), None, None, None, None).unwrap_err().field,
            "quantity"
        );
        assert_eq!(CollectionSpec::parse(Some(1), Some(0), None, None, None).unwrap_err().field, "perUserLimit");
        assert_eq!(
            CollectionSpec::parse(Some(1), None, Some(0), None, None).unwrap_err().field,
            "paymentWindowSeconds"
        );
        assert_eq!(
            CollectionSpec::parse(Some(1), None, Some(86_401), None, None).unwrap_err().field,
            "paymentWindowSeconds"
        );
    }

    #[test]
    fn bucket_levels_sum_field_by_field() {
        let a = StockLevels { quantity: 10, saleable: 6, reserved: 3, confirmed: 1 };
        let b = StockLevels { quantity: 5, saleable: 0, reserved: 1, confirmed: 4 };
        assert_eq!(
            [a, b].into_iter().sum::<StockLevels>(),
            StockLevels { quantity: 15, saleable: 6, reserved: 4, confirmed: 5 }
        );
        assert_eq!(std::iter::empty::<StockLevels>().sum::<StockLevels>(), StockLevels::default());
    }

    #[test]
    fn identities_hold_for_a_consistent_collection() {
        let l = StockLevels { quantity: 100, saleable: 60, reserved: 30, confirmed: 10 };
        assert!(l.violations().is_empty());
    }

    #[test]
    fn each_identity_is_checked() {
        let over = StockLevels { quantity: 10, saleable: 11, reserved: 0, confirmed: -1 };
        let v = over.violations();
        assert!(v.contains(&IdentityViolation::SaleableOutOfBounds { saleable: 11, quantity: 10 }));
        assert!(v.contains(&IdentityViolation::Negative { field: "confirmed", value: -1 }));
        assert!(!v.iter().any(|x| matches!(x, IdentityViolation::Unbalanced { .. })));
        let lost = StockLevels { quantity: 10, saleable: 5, reserved: 3, confirmed: 0 };
        assert_eq!(lost.violations(), vec![IdentityViolation::Unbalanced { quantity: 10, accounted: 8 }]);
        let under = StockLevels { quantity: 10, saleable: -1, reserved: 11, confirmed: 0 };
        assert_eq!(under.violations().len(), 1);
    }

    #[test]
    fn a_cache_shard_is_sized_for_its_stock_buckets_and_old_specs_have_one() {
        // 10 over 4 buckets is [3, 3, 2, 2]; two shards hold buckets {0, 2} and {1, 3}.
        let s = CollectionSpec::parse(Some(10), None, None, Some(4), Some(2)).unwrap();
        assert_eq!((s.shard_quantity(0), s.shard_quantity(1)), (5, 5));
        let s = CollectionSpec::parse(Some(11), None, None, Some(4), Some(4)).unwrap();
        assert_eq!((0..4).map(|r| s.shard_quantity(r)).collect::<Vec<_>>(), vec![3, 3, 3, 2]);
        assert_eq!(CollectionSpec::parse(Some(7), None, None, Some(2), None).unwrap().shard_quantity(0), 7);
        // A spec stored before cache shards reads as one.
        let old = r#"{"quantity":5,"perUserLimit":null,"paymentWindowSeconds":900,"maxPerOrder":10,"buckets":2}"#;
        assert_eq!(serde_json::from_str::<CollectionSpec>(old).unwrap().cache_shards, 1);
    }

    #[test]
    fn saleable_at_the_bounds_is_no_violation() {
        let at = |saleable| StockLevels { quantity: 4, saleable, reserved: 4 - saleable, confirmed: 0 }.violations();
        assert!(at(0).is_empty() && at(4).is_empty());
        assert_eq!(
            StockLevels { quantity: 4, saleable: -1, reserved: 5, confirmed: 0 }.violations(),
            vec![IdentityViolation::SaleableOutOfBounds { saleable: -1, quantity: 4 }]
        );
    }

    #[test]
    fn buckets_are_checked_each_and_together() {
        let a = StockLevels { quantity: 6, saleable: 2, reserved: 3, confirmed: 1 };
        let b = StockLevels { quantity: 4, saleable: 4, reserved: 0, confirmed: 0 };
        assert!(bucket_violations(10, &[a, b]).is_empty());
        assert_eq!(
            bucket_violations(11, &[a, b]),
            vec![IdentityViolation::BucketsUnbalanced { quantity: 11, buckets: 10 }]
        );
        // Units moved out of a bucket without their share of its quantity: that bucket and the
        // whole are unbalanced.
        let drained = StockLevels { saleable: 0, ..a };
        let v = bucket_violations(10, &[drained, b]);
        assert!(v.contains(&IdentityViolation::InBucket {
            bucket: 0,
            violation: Box::new(IdentityViolation::Unbalanced { quantity: 6, accounted: 4 })
        }));
        assert!(v.contains(&IdentityViolation::Unbalanced { quantity: 10, accounted: 8 }));
        // A bucket below zero is caught even when the whole looks fine.
        let low = StockLevels { quantity: 4, saleable: -1, reserved: 5, confirmed: 0 };
        let high = StockLevels { quantity: 6, saleable: 6, reserved: 0, confirmed: 0 };
        let v = bucket_violations(10, &[low, high]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(matches!(v[0], IdentityViolation::InBucket { bucket: 0, .. }));
    }

    #[test]
    fn drift_counts_pending_as_taken() {
        assert_eq!(drift(40, 50, 10), 0);
        assert_eq!(drift(45, 50, 10), 5);
        assert_eq!(drift(0, 3, 0), -3);
    }
}
