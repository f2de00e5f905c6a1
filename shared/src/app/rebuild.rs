//! Rebuilding a lost stock key from DynamoDB (warm-up and reconciliation). With nothing unsettled
//! in the time index the stock is the saleable, set only while the index stays drained. With
//! unsettled entries it is the saleable read in one transaction with their records, less what
//! each still moves ([`held_back`]): a handful of unsettled orders when a key is lost no longer
//! keeps the whole collection at 503 until they settle (docs/DESIGN.md#a-lost-stock-key).

use super::{App, AppError};
use crate::domain::{CollectionId, OrderKey, StockLevels, held_back};
use crate::ports::{CacheSnapshot, CacheWarmup, Catalog, MAX_ORDERS_WITH_LEVELS, Rebuild};

impl<C: CacheWarmup, L: Catalog, Q> App<C, L, Q> {
    /// Sets the missing stock key `snap` (taken before any DynamoDB read) found; `levels` were
    /// read after it and serve when nothing is unsettled. `Busy` with more unsettled entries than
    /// one transaction reads with the levels, or one whose ids cannot be read back, or when a
    /// drained slice the snapshot read changed meanwhile (`rebuild.lua`).
    ///
    /// # Errors
    /// `CollectionNotFound`, `Infra`.
    pub(crate) async fn rebuild_missing(
        &self,
        id: &CollectionId,
        snap: &CacheSnapshot,
        levels: StockLevels,
    ) -> Result<Rebuild, AppError> {
        if snap.unsettled.is_empty() {
            return Ok(self.cache.rebuild(id, snap, levels.saleable, true, levels.quantity).await?);
        }
        if snap.unsettled.len() > MAX_ORDERS_WITH_LEVELS || snap.unreadable_unsettled > 0 {
            return Ok(Rebuild::Busy);
        }
        let orders: Vec<OrderKey> = snap.unsettled.iter().map(|e| e.order.clone()).collect();
        let (levels, records) =
            self.ledger.levels_with_orders(id, &orders).await?.ok_or(AppError::CollectionNotFound)?;
        let held: i64 = snap
            .unsettled
            .iter()
            .zip(&records)
            .map(|(e, r)| {
                let same = r.as_ref().is_none_or(|r| r.accepted_at_ms == e.accepted_at_ms);
                held_back(e.kind, e.quantity, r.as_ref().map(|r| r.status), same)
            })
            .sum();
        tracing::info!(collection = %id, unsettled = orders.len(), held_back = held, "rebuilding with unsettled entries held back");
        Ok(self.cache.rebuild_with_unsettled(id, snap, levels.saleable - held, levels.quantity).await?)
    }
}
