//! [`TimeIndex`]: reconciliation's side of Redis. The time index (slices listing the buckets
//! whose buyers logged an order in them) is scanned for orders due, re-logged, trimmed of
//! settled entries and pruned of empty slices, shard by shard; each collection's cache shards are
//! probed (mark and visit on shard 0) and its visits noted.

use std::collections::BTreeSet;

use futures::StreamExt;

use super::codec::{ident, read_id, records, slice_buckets, ulid_text, uuid_text};
use super::keys::{BUYERS_PER_BUCKET, Keys, SLICE_SECONDS, secs, slice_of, user_bucket};
use super::orders::by_shard;
use super::scripts::STOCK_BIAS;
use super::{Conn, RedisCache, err, replies};
use crate::domain::{CollectionId, OrderId, OrderKey, UnsettledKind, UserId};
use crate::ports::{CacheProbe, InfraResult, TimeIndex, Trimmed, UnsettledEntry};

/// What a scan of open time slices found.
#[derive(Default)]
pub(super) struct Scan {
    /// Pending or intent orders logged before the cutoff, oldest slice first.
    pub due: Vec<OrderKey>,
    /// Units of every pending order in the slices read.
    pub pending: i64,
    /// Slices read that still hold something unsettled.
    pub open: i64,
    /// Slices read that hold nothing unsettled: (number, length as read).
    pub drained: Vec<(i64, u64)>,
    /// Every unsettled entry in the slices read, each order once.
    pub unsettled: Vec<UnsettledEntry>,
    /// Unsettled entries whose buyer or order id could not be read back (none in practice).
    pub unreadable: u32,
}

/// A probe's reads: stock, registered slices, mark, last visit.
type ProbeRead = (Option<i64>, u64, Option<String>, Option<i64>);

impl RedisCache {
    /// Reads the open time slices starting before `before_ms` (all of them with `None`), finds
    /// the orders due (logged before `before_ms`), counts pending units, and drops the slices
    /// left with nothing unsettled.
    pub(super) async fn scan(
        &self,
        collection: &CollectionId,
        shard: u32,
        nb: u32,
        before_ms: Option<i64>,
        limit: usize,
    ) -> InfraResult<Scan> {
        let k = self.keys(collection, shard);
        let mut con = self.con.clone();
        let upto = before_ms.map_or("+inf".to_owned(), |ms| slice_of(ms).to_string());
        let slices: Vec<i64> = redis::cmd("ZRANGE")
            .arg(k.slices())
            .arg("-inf")
            .arg(upto)
            .arg("BYSCORE")
            .query_async(&mut con)
            .await
            .map_err(err("redis slices"))?;
        let mut out = Scan::default();
        let mut seen = BTreeSet::new();
        // Every due entry with when it was last logged: the `limit` logged longest ago are taken
        // (a slice lists buyer buckets, whose entries come in hash order, not by age).
        let mut due_logged: Vec<(i64, OrderKey)> = Vec::new();
        // Only reconciliation prunes (a scan with a cutoff), and only slices that ended a whole
        // slice before its cutoff: no writer logs there any more, so a slice cannot be dropped,
        // re-created at the same length by a Try and dropped again by a concurrent scanner that
        // read it before. Any other drained slice is listed, with its length as read.
        let prune_upto = before_ms.map(|ms| slice_of(ms) - 2);
        for slice in slices {
            let body: Vec<u8> =
                redis::cmd("GET").arg(k.slice(slice)).query_async(&mut con).await.map_err(err("redis slice"))?;
            let buckets: Vec<u32> = slice_buckets(&body).into_iter().filter(|b| *b < nb).collect();
            let mut p = redis::pipe();
            for b in &buckets {
                p.cmd("HGETALL").arg(k.bucket(*b));
            }
            let all: Vec<Vec<(Vec<u8>, Vec<u8>)>> = if buckets.is_empty() {
                Vec::new()
            } else {
                p.query_async(&mut con).await.map_err(err("redis buckets"))?
            };
            let mut busy = false;
            for (u, v) in all.into_iter().flatten() {
                let Some(user) = read_id(&u, uuid_text).and_then(|(s, _)| UserId::parse(&s).ok()) else {
                    out.unreadable += records(&v).iter().filter(|r| matches!(r.state, b'P' | b'I')).count() as u32;
                    continue;
                };
                for r in records(&v) {
                    if r.state != b'P' && r.state != b'I' {
                        continue;
                    }
                    if r.logged_s.div_euclid(SLICE_SECONDS) == slice {
                        busy = true;
                    }
                    if !seen.insert((u.clone(), r.order.clone())) {
                        continue;
                    }
                    if r.state == b'P' {
                        out.pending += i64::from(r.quantity);
                    }
                    let Some(order) = read_id(&r.order, ulid_text).and_then(|(s, _)| OrderId::parse(&s).ok()) else {
                        out.unreadable += 1;
                        continue;
                    };
                    let key = OrderKey::new(collection.clone(), user.clone(), order);
                    if before_ms.is_some_and(|ms| r.logged_s * 1000 < ms) {
                        due_logged.push((r.logged_s, key.clone()));
                    }
                    let kind = if r.state == b'P' { UnsettledKind::Deduction } else { UnsettledKind::Intent };
                    out.unsettled.push(UnsettledEntry {
                        order: key,
                        kind,
                        quantity: r.quantity,
                        accepted_at_ms: r.accepted_s * 1000,
                    });
                }
            }
            if busy {
                out.open += 1;
            } else if prune_upto.is_some_and(|upto| slice <= upto) {
                const S: &str = "redis prune.lua";
                let args = vec![slice.to_string().into_bytes(), body.len().to_string().into_bytes()];
                let reply = self.invoke(S, &self.scripts.prune, vec![k.slices(), k.slice(slice)], args).await?;
                replies::either(S, "PRUNED", "GREW", reply)?;
            } else {
                out.drained.push((slice, body.len() as u64));
            }
        }
        due_logged.sort_by_key(|(logged_s, _)| *logged_s);
        out.due = due_logged.into_iter().take(limit).map(|(_, order)| order).collect();
        Ok(out)
    }
}

impl TimeIndex for RedisCache {
    async fn unsettled_before(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
    ) -> InfraResult<Vec<OrderKey>> {
        let Some(nb) = self.bucket_count(collection, shard).await? else { return Ok(Vec::new()) };
        Ok(self.scan(collection, shard, nb, Some(before_ms), limit).await?.due)
    }

    async fn relog(
        &self,
        collection: &CollectionId,
        shards: u32,
        orders: &[OrderKey],
        logged_before_ms: i64,
        log_at_ms: i64,
    ) -> InfraResult<Vec<bool>> {
        let mut out = vec![false; orders.len()];
        // One call per cache shard the orders' buyers live in.
        for (shard, at) in by_shard(orders, shards) {
            let Some(nb) = self.bucket_count(collection, shard).await? else { continue };
            let k = self.keys(collection, shard);
            let slice = slice_of(log_at_ms);
            let mut keys = vec![k.slice(slice), k.slices()];
            // Logged (whole seconds) before the instant: what `unsettled_before` lists as due.
            let mut args = vec![
                secs(log_at_ms).to_string().into_bytes(),
                secs(logged_before_ms + 999).to_string().into_bytes(),
                slice.to_string().into_bytes(),
            ];
            for o in at.iter().map(|&i| &orders[i]) {
                let bucket = user_bucket(&o.user, nb);
                keys.push(k.bucket(bucket));
                let mut a = (bucket as u16).to_be_bytes().to_vec();
                a.extend(ident(o));
                args.push(a);
            }
            let reply = self.invoke("redis relog.lua", &self.scripts.relog, keys, args).await?;
            for (i, done) in at.iter().zip(replies::relog(reply, at.len())?) {
                out[*i] = done;
            }
        }
        Ok(out)
    }

    async fn trim_settled(
        &self,
        collection: &CollectionId,
        shard: u32,
        before_ms: i64,
        limit: usize,
        keep_durable: bool,
    ) -> InfraResult<Trimmed> {
        let Some(nb) = self.bucket_count(collection, shard).await? else {
            return Ok(Trimmed { removed: 0, pass_done: true });
        };
        let k = self.keys(collection, shard);
        let per_run = (limit as u32 / BUYERS_PER_BUCKET as u32).clamp(1, nb);
        let mut con = self.con.clone();
        let cursor: i64 = redis::cmd("HINCRBY")
            .arg(k.meta())
            .arg("trim")
            .arg(per_run)
            .query_async(&mut con)
            .await
            .map_err(err("redis trim cursor"))?;
        let keys =
            (0..per_run).map(|i| k.bucket(((cursor - i64::from(i) - 1).rem_euclid(i64::from(nb))) as u32)).collect();
        let args = vec![secs(before_ms).to_string().into_bytes(), if keep_durable { b"1".to_vec() } else { vec![] }];
        const S: &str = "redis trim.lua";
        let removed = replies::count(S, "TRIMMED", self.invoke(S, &self.scripts.trim, keys, args).await?)?;
        // A pass ends each time the cursor crosses a multiple of the bucket count.
        let nb = i64::from(nb);
        let pass_done = per_run as i64 >= nb || cursor.div_euclid(nb) != (cursor - i64::from(per_run)).div_euclid(nb);
        Ok(Trimmed { removed, pass_done })
    }

    async fn probe(&self, ids: &[(CollectionId, u32)]) -> InfraResult<Vec<CacheProbe>> {
        // One pipeline per cache shard (its keys share a slot), many in flight at once.
        let jobs: Vec<(usize, Keys, u32, Conn)> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, (id, shards))| (0..*shards).map(move |r| (i, id, r, *shards)))
            .map(|(i, id, r, shards)| (i, self.keys(id, r), shards, self.con.clone()))
            .collect();
        let reads: Vec<(usize, Option<ProbeRead>)> = futures::stream::iter(jobs)
            .map(|(i, k, shards, mut con)| async move {
                let read: redis::RedisResult<ProbeRead> = redis::pipe()
                    .get(k.stock(shards))
                    .zcard(k.slices())
                    .hget(k.meta(), "rc")
                    .hget(k.meta(), "rv")
                    .query_async(&mut con)
                    .await;
                (
                    i,
                    read.inspect_err(
                        |e| tracing::warn!(keys = %k.meta(), error = %e, "probe failed: reconciled as active"),
                    )
                    .ok(),
                )
            })
            .buffered(64)
            .collect()
            .await;
        // Shard 0 first per collection: its read carries the mark and the visit.
        let mut out: Vec<Option<CacheProbe>> = vec![None; ids.len()];
        let mut failed = vec![false; ids.len()];
        for (i, read) in reads {
            let Some((stock, slices, mark, visited_s)) = read else {
                failed[i] = true;
                continue;
            };
            let stock = stock.map(|s| s - STOCK_BIAS);
            match &mut out[i] {
                None => out[i] = Some(CacheProbe { stock, slices, mark, visited_s }),
                Some(p) => {
                    p.stock = p.stock.zip(stock).map(|(a, b)| a + b);
                    p.slices += slices;
                }
            }
        }
        Ok(out
            .into_iter()
            .zip(failed)
            .map(|(p, failed)| if failed { CacheProbe::default() } else { p.unwrap_or_default() })
            .collect())
    }

    async fn note_reconciled(&self, id: &CollectionId, now_ms: i64, mark: Option<&str>) -> InfraResult<()> {
        let mut con = self.con.clone();
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys(id, 0).meta()).arg("rv").arg(secs(now_ms));
        if let Some(mark) = mark {
            cmd.arg("rc").arg(mark);
        }
        cmd.query_async::<()>(&mut con).await.map_err(err("redis note reconciled"))
    }
}
