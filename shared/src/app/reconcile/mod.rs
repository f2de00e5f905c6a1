//! Reconciliation (every minute): heals what a lost message, a crash or a lost cache left behind,
//! race-free, and reports what it did.
//!
//! A run lists the collections, then reads a few figures of each, batched (the stock and the
//! registered time slices summed over its cache shards, the mark its last clean run left; DynamoDB's levels, 100 per
//! request): a collection whose figures are exactly the ones its mark records, with no time
//! slice registered and nothing reserved, is idle and skipped (nothing happened to it since,
//! see [`is_idle`]).
//! The others are reconciled a few at a time, longest unvisited first, started while the run is
//! inside its time budget; the rest wait for the next run, which takes them first.
//!
//! Per collection, each step on every one of its cache shards (docs/DESIGN.md#cache-shards):
//! 0. **Shard moves** a dead mover left open longer than the threshold: finished from DynamoDB's
//!    move item, or called off ([`super::shard_moves`]).
//! 1. **Unsettled entries** logged before the threshold (the time index lists only where
//!    deductions and cancels not yet known durable were logged, so the cost grows with those,
//!    not with history):
//!    DynamoDB has the reservation → settle; it is CANCELLED → return the Redis share once; it has
//!    nothing → **heal forward**: log the entry again and re-send its message (persist is
//!    idempotent), so a lost message still becomes a RESERVED order when stock allows, and a
//!    slow one is never cancelled; the entry's next look comes a visibility timeout later. Only
//!    an order older than the give-up deadline (which outlasts every redelivery SQS can make,
//!    see [`crate::domain::Timing`]) is given up: a tombstone (conditional), and only if that
//!    write wins the stock back (order CANCELLED, reason LOST). A message arriving later meets
//!    the tombstone. In the quiet stretch before the deadline
//!    ([`crate::domain::Timing::quiet_stretch`]) neither happens (the entry is re-logged to
//!    come due at its give-up): every redelivery of the last message re-sent ends before it,
//!    and two runs alive at once never decide one order both ways.
//! 2. **Drift and identities**: compare Redis with `saleable − pending`; rebuild a lost stock key,
//!    and repair drift only while nothing is unsettled, compare-and-set on the cache version read
//!    before DynamoDB was (so a concurrent Try, settle or cancel makes the repair step aside).
//!    Before that, the **tally** ([`super::tally`]): confirmed orders' units move from their
//!    buckets' `reserved` to `confirmed`.
//! 3. **Trim** per-order entries settled longer ago than the retention.
//! 4. **Mark** a clean collection (nothing unsettled, nothing tallied, no drift, a trim pass
//!    finished) with the figures both stores agreed on, and note every visit.
//!
//! The run's summary is logged as JSON, emitted as CloudWatch embedded-metric-format lines, and
//! returned as the handler's result.

use std::collections::{BTreeMap, HashMap};
use tokio::time::Instant;

use futures::StreamExt;
use serde::Serialize;

mod heal;

use super::{App, AppError};
use crate::domain::{CacheShard, CollectionId, IdentityViolation, StockLevels, drift};
use crate::ports::{CacheProbe, CacheSnapshot, CollectionRecord, Ledger, Queue, Rebuild, StockCache};

/// Confirmed orders tallied per collection per run.
const TALLY_PER_RUN: usize = 20_000;
/// Settled entries trimmed per collection per run.
const TRIM_PER_RUN: usize = 20_000;
/// Collections reconciled at once.
const COLLECTION_CONCURRENCY: usize = 8;
/// Trim calls a clean collection may take to finish a pass (a pass over the largest bucket
/// count takes 53).
const MAX_TRIM_CALLS: usize = 64;

/// The mark a clean run leaves on a collection: the figures both stores agreed on, and when.
pub fn reconcile_mark(stock: i64, levels: &StockLevels, now_ms: i64) -> String {
    format!("{}@{}", figures(stock, levels), now_ms.div_euclid(1000))
}

fn figures(stock: i64, l: &StockLevels) -> String {
    format!("{stock}/{}/{}/{}/{}", l.quantity, l.saleable, l.reserved, l.confirmed)
}

/// A collection nothing has happened to since a clean run: no time slice registered (every Try,
/// and every cancel of a durable order, registers one, and only a reconciled run drops them,
/// once they ended a slice before its cutoff),
/// and Redis's stock and DynamoDB's levels exactly as the mark records them (a confirm, cancel,
/// timeout, repair, cache loss or stray write changes one of them), no drift last seen, and the
/// mark younger than `max_age_ms` (so an idle collection is still trimmed once that often). And
/// nothing reserved: a confirm changes neither store's figures (its units stay counted as reserved
/// until the tally), so a collection holding reserved units is visited until they are tallied,
/// given back or timed out.
pub fn is_idle(probe: &CacheProbe, rec: &CollectionRecord, now_ms: i64, max_age_ms: i64) -> bool {
    let (Some(stock), Some(mark)) = (probe.stock, probe.mark.as_deref()) else { return false };
    let Some((marked, at)) = mark.rsplit_once('@') else { return false };
    let fresh = at.parse::<i64>().is_ok_and(|at| now_ms.div_euclid(1000) - at < max_age_ms.div_euclid(1000));
    probe.slices == 0
        && rec.levels.reserved == 0
        && rec.last_drift == Some(0)
        && rec.violations().is_empty()
        && marked == figures(stock, &rec.levels)
        && fresh
}

/// One collection's part of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CollectionReport {
    pub unsettled_examined: u32,
    pub settled: u32,
    pub returned: u32,
    /// Orders with no durable record past the threshold whose message was re-sent.
    pub resent: u32,
    pub tombstones_written: u32,
    /// `cached − (saleable − pending)` seen this run (`None`: no stock key).
    pub drift: Option<i64>,
    pub rebuilt: bool,
    pub repaired_drift: Option<i64>,
    pub trimmed: u32,
    /// Confirmed orders whose units were tallied into their buckets' confirmed counts.
    pub tallied: u32,
    /// Shard moves a dead mover left open, finished (or called off) from DynamoDB's item.
    pub moves_finished: u32,
    /// A raise of the cache shards found under way was finished (the collection is reconciled
    /// at the next run).
    pub raise_finished: bool,
    pub identity_violations: Vec<IdentityViolation>,
    pub errors: Vec<String>,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// Collections reconciled this run.
    pub collections_checked: u32,
    /// Collections found idle and skipped.
    pub collections_idle: u32,
    /// Active collections left for the next run (the time budget ran out).
    pub collections_deferred: u32,
    pub entries_healed: u32,
    /// Messages re-sent for orders with no durable record past the threshold.
    pub resent: u32,
    pub tombstones_written: u32,
    /// Confirmed orders tallied into their buckets.
    pub tallied: u32,
    pub identity_violations: u32,
    pub max_abs_drift: i64,
    pub errors: u32,
    pub duration_ms: i64,
    pub collections: BTreeMap<String, CollectionReport>,
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    /// One reconciliation run over every collection. Safe to overlap with another run and with
    /// live traffic; idempotent.
    pub async fn reconcile(&self, now_ms: i64) -> Result<ReconcileReport, AppError> {
        let started = self.clock.instant();
        let ids = self.ledger.collections().await?;
        let report = self.reconcile_scheduled(&ids, now_ms, started).await;
        tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "reconciliation run");
        Ok(report)
    }

    /// A scheduled run's work over these collections: the idle ones skipped, the rest reconciled
    /// longest unvisited first while the run's budget (counted from `started`) lasts. (The
    /// explorer's quiescence runs it on its collection, so a skip taken wrongly breaks its
    /// invariants.)
    pub async fn reconcile_scheduled(&self, ids: &[CollectionId], now_ms: i64, started: Instant) -> ReconcileReport {
        // What cannot be read is not idle: it is reconciled, and reports its own failure.
        let records = self.ledger.collection_records(ids).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "collection records unread: every collection reconciled");
            Vec::new()
        });
        let records: HashMap<&CollectionId, &CollectionRecord> = records.iter().map(|r| (&r.id, r)).collect();
        // Each collection's cache shards are probed (one, shard 0, where its record is unread).
        let shards: Vec<(CollectionId, u32)> =
            ids.iter().map(|id| (id.clone(), records.get(id).map_or(1, |r| r.spec.cache_shards))).collect();
        let probes = self.cache.probe(&shards).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "probe failed: every collection reconciled");
            vec![CacheProbe::default(); ids.len()]
        });
        let retention = self.settings.order_retention_ms;
        let mut active: Vec<(Option<i64>, CollectionId)> = ids
            .iter()
            .zip(&probes)
            .filter(|(id, probe)| !records.get(id).is_some_and(|rec| is_idle(probe, rec, now_ms, retention)))
            .map(|(id, probe)| (probe.visited_s, id.clone()))
            .collect();
        // The longest unvisited first (never visited before all): when the budget runs out, the
        // next run starts where this one stopped, so no collection starves another.
        active.sort();
        let active: Vec<CollectionId> = active.into_iter().map(|(_, id)| id).collect();
        let mut report = self.reconcile_some(&active, now_ms, Some(started + self.settings.reconcile_budget)).await;
        report.collections_idle = (ids.len() - active.len()) as u32;
        report.collections_deferred = (active.len() as u32).saturating_sub(report.collections_checked);
        report
    }

    /// Reconciles these collections, idle or not (tests and the explorer run it on theirs).
    pub async fn reconcile_collections(&self, ids: &[CollectionId], now_ms: i64) -> ReconcileReport {
        self.reconcile_some(ids, now_ms, None).await
    }

    /// Reconciles `ids` a few at a time, starting none after `deadline` (a collection's failure
    /// is reported in its part of the report, not raised).
    async fn reconcile_some(&self, ids: &[CollectionId], now_ms: i64, deadline: Option<Instant>) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let clock = &self.clock;
        let open = move || deadline.is_none_or(|d| clock.instant() < d);
        // The first always starts: every run makes progress.
        let done: Vec<(CollectionId, CollectionReport)> = futures::stream::iter(ids.iter().cloned().enumerate())
            .take_while(move |(i, _)| std::future::ready(*i == 0 || open()))
            .map(|(_, id)| async move {
                let mut cr = CollectionReport::default();
                if let Err(e) = self.reconcile_collection(&id, now_ms, &mut cr).await {
                    tracing::error!(collection = %id, error = %e, "reconciliation of a collection failed");
                    cr.errors.push(e.to_string());
                    // Visited all the same (best effort), so it does not go first every run.
                    let _ = self.cache.note_reconciled(&id, now_ms, None).await;
                }
                (id, cr)
            })
            .buffer_unordered(COLLECTION_CONCURRENCY)
            .collect()
            .await;
        for (id, cr) in done {
            report.collections_checked += 1;
            report.entries_healed += cr.settled + cr.returned;
            report.resent += cr.resent;
            report.tombstones_written += cr.tombstones_written;
            report.tallied += cr.tallied;
            report.identity_violations += cr.identity_violations.len() as u32;
            report.max_abs_drift = report.max_abs_drift.max(cr.drift.unwrap_or(0).abs());
            report.errors += cr.errors.len() as u32;
            report.collections.insert(id.to_string(), cr);
        }
        report.duration_ms = self.clock.now_ms() - now_ms;
        report
    }

    async fn reconcile_collection(
        &self,
        id: &CollectionId,
        now_ms: i64,
        cr: &mut CollectionReport,
    ) -> Result<(), AppError> {
        // The settings as DynamoDB has them now (a raise of the cache shards changes them): a
        // raise under way is finished first (its raiser may have died), and the collection is
        // reconciled at the next run.
        let header = self.ledger.collection_header(id).await?.ok_or(AppError::CollectionNotFound)?;
        self.remember_spec(id, &header.spec);
        if header.raising_from.is_some() {
            self.finish_raise(id, now_ms).await?;
            cr.raise_finished = true;
            return Ok(());
        }
        let shards = header.spec.cache_shards;
        // 0. Shard moves whose mover died (open longer than any mover lives). A failure here is
        // reported and the run goes on: the rest heals regardless, and rebuilds wait for the move.
        for shard in CacheShard::all(shards).filter(|_| shards > 1) {
            let before = now_ms - self.settings.reconcile_threshold_ms;
            if let Err(e) = self.finish_moves_from(id, shard, before, now_ms, &mut cr.moves_finished).await {
                tracing::error!(collection = %id, shard = shard.index, error = %e, "open shard moves not finished; the next run tries again");
                cr.errors.push(e.to_string());
            }
        }
        // 1. Unsettled deductions and cancels, shard by shard.
        let before = now_ms - self.settings.reconcile_threshold_ms;
        for shard in 0..shards {
            let ids = self.cache.unsettled_before(id, shard, before, self.settings.entries_per_run).await?;
            cr.unsettled_examined += ids.len() as u32;
            if !ids.is_empty() {
                self.heal_entries((id, shards), &ids, now_ms, cr).await?;
            }
        }
        // 2. Drift and identities (snapshots before DynamoDB: each version guards its repair).
        let snaps =
            futures::future::try_join_all(CacheShard::all(shards).map(|at| self.cache.snapshot(id, at))).await?;
        let rec = self.ledger.collection(id).await?.ok_or(AppError::CollectionNotFound)?;
        if rec.spec.cache_shards != shards || rec.raising_from.is_some() {
            // Raised since the snapshots: they are of the layout left; the next run reconciles.
            self.forget_spec(id);
            return Ok(());
        }
        cr.identity_violations = rec.violations();
        for v in &cr.identity_violations {
            tracing::error!(collection = %id, violation = ?v, "identity violated");
        }
        // Confirmed units into their buckets' counts (a failure waits for the next run).
        let mut tally_ok = true;
        let reserved: Vec<i64> = rec.buckets.iter().map(|b| b.reserved).collect();
        match self.tally(id, &reserved, TALLY_PER_RUN).await {
            Ok(n) => cr.tallied = n,
            Err(e) => {
                tally_ok = false;
                tracing::warn!(collection = %id, error = %e, "tally failed; the next run tries again");
                cr.errors.push(e.to_string());
            }
        }
        // Each shard against its stock buckets; the collection's drift is their sum, and it is
        // clean only when every shard's is 0.
        let mut drifts = Vec::with_capacity(snaps.len());
        for (shard, snap) in (0..shards).zip(&snaps) {
            drifts.push(self.shard_drift(id, CacheShard::new(shard, shards), snap, &rec, cr).await?);
        }
        cr.drift = drifts.iter().copied().sum::<Option<i64>>();
        if let Some(d) = cr.drift
            && rec.last_drift != Some(d)
        {
            self.ledger.record_drift(id, d).await?;
        }
        // 3. Bound Redis memory.
        // With a per-user limit, durable orders stay: their units count toward the buyer's limit.
        let keep = rec.spec.per_user_limit.is_some();
        let before = now_ms - self.settings.order_retention_ms;
        let mut trims = Vec::with_capacity(snaps.len());
        for shard in 0..shards {
            let trim = self.cache.trim_settled(id, shard, before, TRIM_PER_RUN, keep).await?;
            cr.trimmed += trim.removed;
            trims.push(trim);
        }
        // 4. Clean and nothing registered: finish the trim pass over every bucket (a quiet
        // collection is skipped until its mark is a retention old), then leave the mark later
        // runs skip it by. Every visit is noted: the longest unvisited go first.
        let clean = cr.unsettled_examined == 0
            && tally_ok
            && cr.tallied == 0
            && drifts.iter().all(|d| *d == Some(0))
            && cr.identity_violations.is_empty()
            && snaps.iter().all(|s| s.open_slices == 0 && s.drained_slices.is_empty());
        let mut mark = None;
        if let (true, Some(stock)) = (clean, snaps.iter().map(|s| s.stock).sum::<Option<i64>>()) {
            let mut passes_done = true;
            for (shard, mut trim) in (0..shards).zip(trims) {
                for _ in 0..MAX_TRIM_CALLS {
                    if trim.pass_done {
                        break;
                    }
                    trim = self.cache.trim_settled(id, shard, before, TRIM_PER_RUN, keep).await?;
                    cr.trimmed += trim.removed;
                }
                passes_done &= trim.pass_done;
            }
            mark = passes_done.then(|| reconcile_mark(stock, &rec.levels, now_ms));
        }
        self.cache.note_reconciled(id, now_ms, mark.as_deref()).await?;
        Ok(())
    }

    /// One cache shard against its stock buckets: a missing stock key rebuilt, drift repaired
    /// while nothing is unsettled there. Returns the shard's drift (`None`: no stock key).
    async fn shard_drift(
        &self,
        id: &CollectionId,
        at: CacheShard,
        snap: &CacheSnapshot,
        rec: &CollectionRecord,
        cr: &mut CollectionReport,
    ) -> Result<Option<i64>, AppError> {
        let shard = at.index;
        let levels = rec.shard_levels(shard);
        let Some(cached) = snap.stock else {
            if let Rebuild::Set(s) = self.rebuild_missing(id, at, snap, rec).await? {
                tracing::warn!(collection = %id, shard, stock = s, "Redis stock was missing; rebuilt from DynamoDB");
                cr.rebuilt = true;
                self.sold_out.clear(id);
            }
            return Ok(None);
        };
        let d = drift(cached, levels.saleable, snap.pending);
        // (A move into this shard open elsewhere: DynamoDB may have units the shard is still to add.)
        if d != 0
            && snap.pending == 0
            && snap.open_slices == 0
            && !self.moves_into(id, rec.spec.cache_shards, shard).await?
        {
            match self.cache.rebuild(id, at, snap, levels.saleable, false, levels.quantity).await? {
                Rebuild::Set(s) => {
                    tracing::warn!(collection = %id, shard, drift = d, stock = s, "drift repaired from DynamoDB");
                    cr.repaired_drift = Some(cr.repaired_drift.unwrap_or(0) + d);
                }
                other => {
                    tracing::info!(collection = %id, shard, drift = d, outcome = ?other, "drift repair stepped aside")
                }
            }
        }
        Ok(Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CollectionSpec;

    const MIN: i64 = 60_000;
    const DAY: i64 = 1_440 * MIN;

    fn rec(saleable: i64, reserved: i64, last_drift: Option<i64>) -> CollectionRecord {
        let spec = CollectionSpec::parse(Some(10), None, None, Some(1), None).unwrap();
        let levels = StockLevels { quantity: 10, saleable, reserved, confirmed: 10 - saleable - reserved };
        CollectionRecord {
            id: CollectionId::parse("c").unwrap(),
            spec,
            levels,
            buckets: vec![levels],
            last_drift,
            raising_from: None,
        }
    }

    fn probe(stock: Option<i64>, slices: u64, mark: Option<String>) -> CacheProbe {
        CacheProbe { stock, slices, mark, visited_s: None }
    }

    #[test]
    fn idle_only_when_both_stores_are_as_the_mark_left_them() {
        let now = 1_700_000_000_000;
        let r = rec(6, 0, Some(0));
        let mark = reconcile_mark(6, &r.levels, now - MIN);
        // Reserved units (some perhaps confirmed, untallied) keep it visited, mark or not.
        let held = rec(6, 2, Some(0));
        assert!(!is_idle(&probe(Some(6), 0, Some(reconcile_mark(6, &held.levels, now - MIN))), &held, now, DAY));
        assert!(is_idle(&probe(Some(6), 0, Some(mark.clone())), &r, now, DAY));
        // Anything since: a Try (a slice, and the stock), a cancel or confirm (DynamoDB's levels),
        // a lost or overwritten stock key, drift last seen, no mark, an old mark.
        assert!(!is_idle(&probe(Some(6), 1, Some(mark.clone())), &r, now, DAY));
        assert!(!is_idle(&probe(Some(5), 0, Some(mark.clone())), &r, now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, Some(mark.clone())), &rec(6, 1, Some(0)), now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, Some(mark.clone())), &rec(7, 1, Some(0)), now, DAY));
        assert!(!is_idle(&probe(None, 0, Some(mark.clone())), &r, now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, Some(mark.clone())), &rec(6, 2, Some(1)), now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, Some(mark.clone())), &rec(6, 2, None), now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, None), &r, now, DAY));
        assert!(!is_idle(&probe(Some(6), 0, Some(mark)), &r, now + DAY, DAY), "trimmed once a retention");
        assert!(!is_idle(&probe(Some(6), 0, Some("garbage".into())), &r, now, DAY));
    }
}
