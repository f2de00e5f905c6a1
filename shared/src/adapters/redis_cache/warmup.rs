//! [`CacheWarmup`]: a cache shard sized the first time, its counters read atomically, and its
//! stock set from DynamoDB (compare-and-set on the snapshot's version).

use super::keys::buckets_for;
use super::{RedisCache, err, replies};
use crate::domain::{CacheShard, CollectionId};
use crate::ports::{CacheSnapshot, CacheWarmup, InfraResult, Rebuild};

impl CacheWarmup for RedisCache {
    async fn prepare(&self, collection: &CollectionId, shard: u32, quantity: i64) -> InfraResult<()> {
        if self.buckets.read().is_ok_and(|m| m.contains_key(&(collection.clone(), shard))) {
            return Ok(());
        }
        let mut con = self.con.clone();
        redis::cmd("HSETNX")
            .arg(self.keys(collection, shard).meta())
            .arg("nb")
            .arg(buckets_for(quantity))
            .query_async::<()>(&mut con)
            .await
            .map_err(err("redis prepare"))
    }

    async fn snapshot(&self, collection: &CollectionId, at: CacheShard) -> InfraResult<CacheSnapshot> {
        let shard = at.index;
        let k = self.keys(collection, shard);
        const S: &str = "redis snapshot.lua";
        let keys = vec![k.stock(at.count), k.meta(), k.slices()];
        let reply = self.invoke(S, &self.scripts.snapshot, keys, vec![]).await?;
        let (stock, version, open, nb) = replies::snapshot(reply)?;
        // The slices with nothing left unsettled are listed, so that a rebuild after this
        // snapshot is not refused for slices only waiting to be dropped.
        let scan = if open > 0 && nb > 0 {
            self.scan(collection, shard, nb, None, 0).await?
        } else {
            super::time_index::Scan { open, ..Default::default() }
        };
        Ok(CacheSnapshot {
            stock,
            pending: scan.pending,
            version,
            open_slices: scan.open,
            drained_slices: scan.drained,
            unsettled: scan.unsettled,
            unreadable_unsettled: scan.unreadable,
        })
    }

    async fn rebuild(
        &self,
        collection: &CollectionId,
        shard: CacheShard,
        snapshot: &CacheSnapshot,
        saleable: i64,
        only_if_missing: bool,
        quantity: i64,
    ) -> InfraResult<Rebuild> {
        let mode = if only_if_missing { "missing" } else { "force" };
        self.set_stock((collection, shard), snapshot, saleable - snapshot.pending, mode, quantity).await
    }

    async fn rebuild_with_unsettled(
        &self,
        collection: &CollectionId,
        shard: CacheShard,
        snapshot: &CacheSnapshot,
        stock: i64,
        quantity: i64,
    ) -> InfraResult<Rebuild> {
        self.set_stock((collection, shard), snapshot, stock, "unsettled", quantity).await
    }
}

impl RedisCache {
    /// `rebuild.lua` in `mode`, guarded by the snapshot's version and (but for "unsettled") its
    /// drained slices.
    async fn set_stock(
        &self,
        (collection, at): (&CollectionId, CacheShard),
        snapshot: &CacheSnapshot,
        stock: i64,
        mode: &str,
        quantity: i64,
    ) -> InfraResult<Rebuild> {
        let shard = at.index;
        let k = self.keys(collection, shard);
        let nb = buckets_for(quantity);
        let mut keys = vec![k.stock(at.count), k.meta(), k.slices(), k.moves()];
        let mut args = vec![snapshot.version.to_string(), stock.to_string(), mode.to_owned(), nb.to_string()];
        // The drained slices the snapshot read: unchanged, they are all that may be registered.
        for (n, len) in &snapshot.drained_slices {
            keys.push(k.slice(*n));
            args.push(format!("{n}:{len}"));
        }
        let args = args.into_iter().map(String::into_bytes).collect();
        let reply = self.invoke("redis rebuild.lua", &self.scripts.rebuild, keys, args).await;
        // The count stored is the first one ever set (HSETNX); read it back rather than assume.
        self.forget_bucket_count(collection, shard);
        replies::rebuild(reply?)
    }
}
