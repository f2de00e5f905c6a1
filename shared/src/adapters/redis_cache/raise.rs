//! [`CacheRaise`]: a raise of a collection's cache shards in Redis — each shard fenced
//! (`fence.lua`), each old shard's buyers whose home shard changed copied there (`adopt.lua`) a
//! batch of buckets at a time and then forgotten (`HDEL`), the fence lifted.

use std::collections::BTreeMap;

use super::codec::{read_id, relogged, uuid_text};
use super::keys::{bucket_of, buckets_for, secs, slice_of};
use super::{RedisCache, err, replies};
use crate::domain::buckets::home_shard;
use crate::domain::{CollectionId, UserId};
use crate::ports::{CacheRaise, InfraResult, Split};

/// Buyer buckets read (`HGETALL`, pipelined) per call of a split.
const BUCKETS_PER_CALL: u32 = 64;

/// One buyer on its way: where it is, who, and its value as it was read.
struct Moving {
    from_bucket: u32,
    buyer: Vec<u8>,
    value: Vec<u8>,
}

impl CacheRaise for RedisCache {
    async fn fence(&self, collection: &CollectionId, shard: u32, from: u32, to: u32) -> InfraResult<bool> {
        let k = self.keys(collection, shard);
        const S: &str = "redis fence.lua";
        let reply =
            self.invoke(S, &self.scripts.fence, vec![k.stock(from), k.meta()], vec![to.to_string().into()]).await?;
        replies::either(S, "FENCED", "DONE", reply)
    }

    async fn split(
        &self,
        collection: &CollectionId,
        shard: u32,
        to: u32,
        quantities: &[i64],
        from_bucket: u32,
        now_ms: i64,
    ) -> InfraResult<Split> {
        let mut out = Split::default();
        let Some(nb) = self.bucket_count(collection, shard).await? else { return Ok(out) };
        let k = self.keys(collection, shard);
        let mut con = self.con.clone();
        let buckets: Vec<u32> = (from_bucket..nb.min(from_bucket.saturating_add(BUCKETS_PER_CALL))).collect();
        out.next = buckets.last().map(|b| b + 1).filter(|&b| b < nb);
        if buckets.is_empty() {
            return Ok(out);
        }
        let mut p = redis::pipe();
        for b in &buckets {
            p.cmd("HGETALL").arg(k.bucket(*b));
        }
        let read: Vec<Vec<(Vec<u8>, Vec<u8>)>> = p.query_async(&mut con).await.map_err(err("redis raise read"))?;
        let mut by_dest: BTreeMap<u32, Vec<Moving>> = BTreeMap::new();
        for (b, all) in buckets.iter().zip(read) {
            for (buyer, value) in all {
                let Some(user) = read_id(&buyer, uuid_text).and_then(|(s, _)| UserId::parse(&s).ok()) else {
                    tracing::warn!(collection = %collection, shard, bucket = b, "unreadable buyer left in place by a raise");
                    out.unreadable += 1;
                    continue;
                };
                let dest = home_shard(&user, to);
                if dest != shard {
                    by_dest.entry(dest).or_default().push(Moving { from_bucket: *b, buyer, value });
                }
            }
        }
        for (dest, buyers) in &by_dest {
            let quantity = quantities.get(*dest as usize).copied().unwrap_or(0);
            if !self.adopt(collection, (*dest, to), quantity, buyers, now_ms).await? {
                return Ok(Split { ended_elsewhere: true, next: None, ..out });
            }
        }
        // Forgotten here only once every one of them is there.
        let moving: Vec<&Moving> = by_dest.values().flatten().collect();
        if !moving.is_empty() {
            let mut p = redis::pipe();
            for m in &moving {
                p.cmd("HDEL").arg(k.bucket(m.from_bucket)).arg(&m.buyer).ignore();
            }
            p.query_async::<()>(&mut con).await.map_err(err("redis raise forget"))?;
            out.buyers_moved = moving.len() as u32;
        }
        Ok(out)
    }

    async fn unfence(&self, collection: &CollectionId, shard: u32, to: u32) -> InfraResult<()> {
        let mut con = self.con.clone();
        let meta = self.keys(collection, shard).meta();
        // One transaction: never a moment with neither the fence nor the layout's count.
        redis::pipe()
            .atomic()
            .hset(&meta, "cs", to)
            .ignore()
            .hdel(&meta, "fence")
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_err(err("redis unfence"))
    }
}

impl RedisCache {
    /// `adopt.lua` on shard `dest` (of a layout of `to`) for these buyers, its buyer buckets
    /// sized first if they are not. False: the shard is no longer fenced for this raise.
    async fn adopt(
        &self,
        collection: &CollectionId,
        (dest, to): (u32, u32),
        quantity: i64,
        buyers: &[Moving],
        now_ms: i64,
    ) -> InfraResult<bool> {
        let mut con = self.con.clone();
        let k = self.keys(collection, dest);
        redis::cmd("HSETNX")
            .arg(k.meta())
            .arg("nb")
            .arg(buckets_for(quantity))
            .query_async::<()>(&mut con)
            .await
            .map_err(err("redis raise size"))?;
        let Some(nb) = self.bucket_count(collection, dest).await? else {
            return Err(crate::ports::InfraError::new("redis raise size", "bucket count not set"));
        };
        let slice = slice_of(now_ms);
        let mut keys = vec![k.meta(), k.slices(), k.slice(slice)];
        let mut index: BTreeMap<u32, usize> = BTreeMap::new();
        let mut args: Vec<Vec<u8>> = vec![slice.to_string().into_bytes(), to.to_string().into_bytes()];
        for m in buyers {
            let b = bucket_of(&m.buyer, nb);
            let at = *index.entry(b).or_insert_with(|| {
                keys.push(k.bucket(b));
                keys.len()
            });
            let (value, unsettled) = relogged(&m.value, secs(now_ms));
            args.push(at.to_string().into_bytes());
            args.push(m.buyer.clone());
            args.push(value);
            args.push(if unsettled { (b as u16).to_be_bytes().to_vec() } else { Vec::new() });
        }
        const S: &str = "redis adopt.lua";
        replies::adopt(self.invoke(S, &self.scripts.adopt, keys, args).await?).map(|n| n.is_some())
    }
}
