//! Admin: create a collection, warm its Redis stock from DynamoDB, and inspect both stores.

use serde::Serialize;

use super::{App, AppError};
use crate::domain::{CacheShard, CollectionId, CollectionSpec, IdentityViolation, StockLevels, drift};
use crate::ports::{
    CacheWarmup, Catalog, CreateOutcome, MAX_ORDERS_WITH_LEVELS, MoveLog, Rebuild, ShardMoves, Tallies,
};

/// What `GET /v1/admin/collections/{id}` answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionView {
    pub collection_id: CollectionId,
    pub quantity: i64,
    pub saleable: i64,
    /// Redis stock; `null` when the cache is lost or not warmed.
    pub cached: Option<i64>,
    /// Σ qty of PENDING reservations (in Redis, not yet durable).
    pub pending: i64,
    pub reserved: i64,
    pub confirmed: i64,
    /// `cached - (saleable - pending)` now; `null` without a cache.
    pub drift: Option<i64>,
    /// Drift seen by the last reconciliation run.
    pub last_reconciled_drift: Option<i64>,
    pub per_user_limit: Option<u32>,
    pub payment_window_seconds: u32,
    pub max_per_order: u32,
    pub identity_violations: Vec<IdentityViolation>,
    /// Each stock bucket's durable levels, bucket 0 first (the fields above are their sums).
    pub buckets: Vec<StockLevels>,
    /// Each cache shard's Redis levels, shard 0 first (`cached`, `pending` and `drift` above are
    /// their sums).
    pub cache_shards: Vec<ShardView>,
}

/// One cache shard in the admin view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardView {
    /// Redis stock; `null` when lost or not warmed.
    pub cached: Option<i64>,
    pub pending: i64,
    /// Its stock buckets' saleable.
    pub saleable: i64,
    /// `cached - (saleable - pending)`; `null` without a stock key.
    pub drift: Option<i64>,
}

/// Compare-and-set attempts for a warm-up racing live traffic.
const WARMUP_ATTEMPTS: u32 = 10;

impl<C: CacheWarmup + ShardMoves, L: Catalog + Tallies + MoveLog, Q> App<C, L, Q> {
    /// # Errors
    /// `QuantityImmutable` / `SettingsImmutable` when the collection exists with other settings.
    pub async fn create_collection(
        &self,
        id: &CollectionId,
        spec: &CollectionSpec,
        now_ms: i64,
    ) -> Result<CreateOutcome, AppError> {
        match self.ledger.create_collection(id, spec, now_ms).await? {
            CreateOutcome::QuantityDiffers => Err(AppError::QuantityImmutable),
            CreateOutcome::SettingsDiffer => Err(AppError::SettingsImmutable),
            ok => {
                for shard in 0..spec.cache_shards {
                    self.cache.prepare(id, shard, spec.shard_quantity(shard)).await?;
                }
                Ok(ok)
            }
        }
    }

    /// Loads Redis from DynamoDB, each cache shard atomically and without overwriting a live
    /// stock key: a shard's stock is set from its stock buckets' saleable only if no Redis change
    /// happened there since it was read, unsettled entries held back
    /// ([`Self::rebuild_missing`]). Returns the stock over every shard.
    pub async fn warm_up(&self, id: &CollectionId) -> Result<i64, AppError> {
        let spec = self.spec(id).await?;
        let mut cached = 0;
        for shard in CacheShard::all(spec.cache_shards) {
            cached += self.warm_up_shard(id, shard).await?;
        }
        Ok(cached)
    }

    async fn warm_up_shard(&self, id: &CollectionId, shard: CacheShard) -> Result<i64, AppError> {
        for attempt in 1..=WARMUP_ATTEMPTS {
            let snap = self.cache.snapshot(id, shard).await?;
            if let Some(s) = snap.stock {
                return Ok(s);
            }
            let rec = self.ledger.collection(id).await?.ok_or(AppError::CollectionNotFound)?;
            match self.rebuild_missing(id, shard, &snap, &rec).await? {
                Rebuild::Set(s) | Rebuild::Live(s) => {
                    self.sold_out.clear(id);
                    tracing::info!(collection = %id, shard = shard.index, cached = s, "warmed up");
                    return Ok(s);
                }
                Rebuild::Busy => {
                    return Err(AppError::Unavailable(format!(
                        "more than {MAX_ORDERS_WITH_LEVELS} deductions or cancels are unsettled, or stock is moving \
                         between cache shards, or its cache shards are being raised: warm-up waits until that settles \
                         (reconciliation rebuilds the stock by itself once it has); retry shortly"
                    )));
                }
                Rebuild::Race => super::backoff(attempt).await,
            }
        }
        Err(AppError::Unavailable("warm-up kept racing live traffic; retry".into()))
    }

    pub async fn inspect(&self, id: &CollectionId) -> Result<CollectionView, AppError> {
        let spec = self.spec(id).await?;
        let snaps =
            futures::future::try_join_all(CacheShard::all(spec.cache_shards).map(|at| self.cache.snapshot(id, at)))
                .await?;
        let rec = self.ledger.collection(id).await?.ok_or(AppError::CollectionNotFound)?;
        let cache_shards: Vec<ShardView> = snaps
            .iter()
            .enumerate()
            .map(|(shard, snap)| {
                let saleable = rec.shard_levels(shard as u32).saleable;
                ShardView {
                    cached: snap.stock,
                    pending: snap.pending,
                    saleable,
                    drift: snap.stock.map(|c| drift(c, saleable, snap.pending)),
                }
            })
            .collect();
        let cached = cache_shards.iter().map(|s| s.cached).sum::<Option<i64>>();
        let pending = cache_shards.iter().map(|s| s.pending).sum::<i64>();
        let identity_violations = rec.violations();
        // Confirms not tallied yet count as confirmed (`app::tally`).
        let untallied =
            futures::future::try_join_all((0..rec.spec.buckets).map(|b| self.ledger.untallied(id, b, usize::MAX)))
                .await?;
        let buckets: Vec<StockLevels> = rec
            .buckets
            .iter()
            .zip(&untallied)
            // The index lags: an order tallied a moment ago may still be listed; never more
            // than the bucket still counts as reserved.
            .map(|(l, u)| l.with_untallied(u.iter().map(|o| i64::from(o.quantity)).sum::<i64>().min(l.reserved)))
            .collect();
        let l: StockLevels = buckets.iter().copied().sum();
        Ok(CollectionView {
            collection_id: rec.id,
            quantity: l.quantity,
            saleable: l.saleable,
            cached,
            pending,
            reserved: l.reserved,
            confirmed: l.confirmed,
            drift: cached.map(|c| drift(c, l.saleable, pending)),
            last_reconciled_drift: rec.last_drift,
            per_user_limit: rec.spec.per_user_limit,
            payment_window_seconds: rec.spec.payment_window_seconds,
            max_per_order: rec.spec.max_per_order,
            identity_violations,
            buckets,
            cache_shards,
        })
    }
}
