//! Rebuilding a cache shard's lost stock key from DynamoDB (warm-up and reconciliation). With
//! nothing unsettled in the shard's time index the stock is its stock buckets' saleable, set only
//! while the index stays drained. With unsettled entries it is that saleable read in one
//! transaction with their records, less what each still moves ([`held_back`]): a handful of
//! unsettled orders when a key is lost no longer keeps the whole shard at 503 until they settle
//! (docs/DESIGN.md#a-lost-stock-key).

use super::{App, AppError};
use crate::domain::buckets::shard_sum;
use crate::domain::{CacheShard, CollectionId, OrderKey, held_back};
use crate::ports::{
    CacheSnapshot, CacheWarmup, Catalog, CollectionRecord, MAX_ORDERS_WITH_LEVELS, MoveLog, Rebuild, ShardMoves,
};

impl<C: CacheWarmup + ShardMoves, L: Catalog + MoveLog, Q> App<C, L, Q> {
    /// Sets the missing stock key of cache shard `shard` that `snap` (taken before any DynamoDB
    /// read) found; `rec` was read after it and serves when nothing is unsettled. `Busy` with
    /// more unsettled entries than one transaction reads with the levels, or one whose ids cannot
    /// be read back, or when a drained slice the snapshot read changed meanwhile (`rebuild.lua`).
    ///
    /// # Errors
    /// `CollectionNotFound`, `Infra`.
    pub(crate) async fn rebuild_missing(
        &self,
        id: &CollectionId,
        at: CacheShard,
        snap: &CacheSnapshot,
        rec: &CollectionRecord,
    ) -> Result<Rebuild, AppError> {
        // A snapshot of another layout than DynamoDB's (raised since), or a raise under way: the
        // shard's stock is not this rebuild's to set (docs/DESIGN.md#raising-cacheshards).
        if at.count != rec.spec.cache_shards || rec.raising_from.is_some() {
            return Ok(Rebuild::Busy);
        }
        let (shard, shards) = (at.index, at.count);
        let levels = rec.shard_levels(shard);
        if snap.unsettled.is_empty() {
            // Checked after DynamoDB was read: see `moves_into`.
            if self.moves_into(id, shards, shard).await? {
                return Ok(Rebuild::Busy);
            }
            return Ok(self.cache.rebuild(id, at, snap, levels.saleable, true, levels.quantity).await?);
        }
        if snap.unsettled.len() > MAX_ORDERS_WITH_LEVELS || snap.unreadable_unsettled > 0 {
            return Ok(Rebuild::Busy);
        }
        let orders: Vec<OrderKey> = snap.unsettled.iter().map(|e| e.order.clone()).collect();
        let (buckets, records) =
            self.ledger.levels_with_orders(id, &orders).await?.ok_or(AppError::CollectionNotFound)?;
        let saleable = shard_sum(&buckets.iter().map(|b| b.saleable).collect::<Vec<_>>(), shard, shards);
        if self.moves_into(id, shards, shard).await? {
            return Ok(Rebuild::Busy);
        }
        let held: i64 = snap
            .unsettled
            .iter()
            .zip(&records)
            .map(|(e, r)| {
                let same = r.as_ref().is_none_or(|r| r.accepted_at_ms == e.accepted_at_ms);
                held_back(e.kind, e.quantity, r.as_ref().map(|r| r.status), same)
            })
            .sum();
        tracing::info!(collection = %id, shard, unsettled = orders.len(), held_back = held, "rebuilding with unsettled entries held back");
        Ok(self.cache.rebuild_with_unsettled(id, at, snap, saleable - held, levels.quantity).await?)
    }
}
