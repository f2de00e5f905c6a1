//! Raising a collection's cache shards on a live collection (docs/DESIGN.md#raising-cacheshards):
//! DynamoDB's header says the new count first (raising from the old one), every shard of the new
//! layout is fenced, the old layout's shard moves are finished, each old shard's buyers whose
//! home shard changed are copied to it, the fences are lifted, the header's raise is ended, and
//! the new layout's stock is rebuilt from DynamoDB. Every step can run again: a raiser that dies
//! is finished by the next call or by reconciliation.

use serde::Serialize;

use super::{App, AppError};
use crate::domain::buckets::is_cache_shard_raise;
use crate::domain::{CacheShard, CollectionId};
use crate::ports::{Ledger, StockCache};

/// What a raise did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Raised {
    pub collection_id: CollectionId,
    pub cache_shards: u32,
    /// The count raised from (`None`: it already was `cache_shards`, nothing done).
    pub raised_from: Option<u32>,
    /// Buyers copied to another home shard (by this call).
    pub buyers_moved: u32,
    /// The stock over every shard once rebuilt (`None`: not yet, reconciliation rebuilds it).
    pub cached: Option<i64>,
}

impl<C: StockCache, L: Ledger, Q> App<C, L, Q> {
    /// Raises the collection's cache shards to `to`: a larger multiple of the count it has that
    /// divides its buckets. The same count again answers what it has (and finishes a raise to
    /// it still under way).
    ///
    /// # Errors
    /// `CollectionNotFound`; `InvalidField(cacheShards)` for a count that is no such raise;
    /// `Unavailable` while a raise to another count is under way, or the settings changed
    /// meanwhile; `Infra`.
    pub async fn raise_cache_shards(&self, id: &CollectionId, to: i64, now_ms: i64) -> Result<Raised, AppError> {
        let header = self.ledger.collection_header(id).await?.ok_or(AppError::CollectionNotFound)?;
        let (current, buckets) = (header.spec.cache_shards, header.spec.buckets);
        if i64::from(current) == to {
            return self.finish_raise(id, now_ms).await;
        }
        if header.raising_from.is_some() {
            return Err(AppError::Unavailable(format!("a raise of the cache shards to {current} is under way; retry")));
        }
        let to = u32::try_from(to).ok().filter(|&to| is_cache_shard_raise(current, to, buckets)).ok_or_else(|| {
            AppError::InvalidField {
                field: "cacheShards",
                detail: format!(
                    "must be a multiple of {current} (the collection's cache shards now) that divides buckets \
                     ({buckets}): cache shards can only be raised"
                ),
            }
        })?;
        if !self.ledger.begin_raise(id, current, to).await? {
            return Err(AppError::Unavailable("the collection's settings changed meanwhile; retry".into()));
        }
        tracing::info!(collection = %id, from = current, to, "raising cache shards");
        self.finish_raise(id, now_ms).await
    }

    /// Finishes the raise DynamoDB's header says is under way, if any (the raiser's own steps,
    /// and reconciliation's for a raiser that died): each step is idempotent.
    pub(crate) async fn finish_raise(&self, id: &CollectionId, now_ms: i64) -> Result<Raised, AppError> {
        let header = self.ledger.collection_header(id).await?.ok_or(AppError::CollectionNotFound)?;
        let to = header.spec.cache_shards;
        let mut raised = Raised {
            collection_id: id.clone(),
            cache_shards: to,
            raised_from: header.raising_from,
            buyers_moved: 0,
            cached: None,
        };
        if let Some(from) = header.raising_from {
            self.forget_spec(id);
            // 1. Nothing changes a buyer's records, and nothing sells, while they move. A shard
            // where the raise ended already (another finisher got further) is left alone.
            let mut ended_elsewhere = false;
            for r in 0..to {
                if !self.cache.fence(id, r, from, to).await? {
                    ended_elsewhere = true;
                    break;
                }
            }
            if !ended_elsewhere {
                // 2. The old layout's moves, finished or called off (none can start: no stock).
                for r in CacheShard::all(from) {
                    self.finish_moves_from(id, r, i64::MAX, now_ms, &mut 0).await?;
                }
                // 3. Each old shard's buyers whose home changed, to their new shard, a batch of
                // buckets at a time (each logged in the time slice of its own moment).
                let quantities: Vec<i64> = (0..to).map(|r| header.spec.shard_quantity(r)).collect();
                'split: for r in 0..from {
                    let mut next = Some(0);
                    while let Some(bucket) = next {
                        let split = self.cache.split(id, r, to, &quantities, bucket, self.clock.now_ms()).await?;
                        raised.buyers_moved += split.buyers_moved;
                        if split.unreadable > 0 {
                            tracing::error!(collection = %id, shard = r, unreadable = split.unreadable, "buyers left in place");
                        }
                        if split.ended_elsewhere {
                            ended_elsewhere = true;
                            break 'split;
                        }
                        next = split.next;
                    }
                }
            }
            // 4. The fences lifted (every one: a finisher that found the raise ended on some
            // shard may have died before lifting the others), then the raise ended: until then
            // no stock is rebuilt.
            for r in 0..to {
                self.cache.unfence(id, r, to).await?;
            }
            self.ledger.end_raise(id, from, to).await?;
            self.forget_spec(id);
            self.sold_out.clear(id);
            tracing::info!(collection = %id, from, to, buyers_moved = raised.buyers_moved, ended_elsewhere, "cache shards raised");
        }
        // 5. The new layout's stock from DynamoDB (a shard with too much unsettled is left to
        // reconciliation).
        raised.cached = match self.warm_up(id).await {
            Ok(s) => Some(s),
            Err(AppError::Unavailable(why)) => {
                tracing::warn!(collection = %id, why, "stock not rebuilt yet after a raise");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(raised)
    }
}
