//! Reconciliation (every minute): heals what a lost message, a crash or a lost cache left behind,
//! race-free, and reports what it did.
//!
//! Per collection:
//! 1. **Unsettled entries** logged before the threshold (the time index lists only where
//!    deductions and cancels not yet known durable were logged, so the cost grows with those,
//!    not with history):
//!    DynamoDB has the reservation → settle; it is CANCELLED → return the Redis share once; it has
//!    nothing → write a tombstone (conditional), and only if that write wins give the stock back
//!    (order CANCELLED, reason LOST). A message arriving later meets the tombstone.
//! 2. **Drift and identities**: compare Redis with `saleable − pending`; rebuild a lost stock key,
//!    and repair drift only while nothing is in flight, compare-and-set on the cache version read
//!    before DynamoDB was (so a concurrent Try, settle or cancel makes the repair step aside).
//! 3. **Trim** per-order entries settled longer ago than the retention.
//!
//! The run's summary is logged as JSON, emitted as CloudWatch embedded-metric-format lines, and
//! returned as the handler's result.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde::Serialize;

use super::{App, AppError};
use crate::domain::{CancelReason, CollectionId, IdentityViolation, OrderKey, Settlement, drift, settlement};
use crate::ports::{
    CacheEntry, CacheState, Ledger, OrderRecord, Queue, Rebuild, Released, SettleAs, StockCache, Tombstone,
};

/// Unsettled entries examined per collection per run.
pub const ENTRIES_PER_RUN: usize = 20_000;
/// Concurrent DynamoDB writes while healing.
const HEAL_CONCURRENCY: usize = 32;
/// Settled entries trimmed per collection per run.
const TRIM_PER_RUN: usize = 20_000;

/// One collection's part of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CollectionReport {
    pub unsettled_examined: u32,
    pub settled: u32,
    pub returned: u32,
    pub tombstones_written: u32,
    /// `cached − (saleable − pending)` seen this run (`None`: no stock key).
    pub drift: Option<i64>,
    pub rebuilt: bool,
    pub repaired_drift: Option<i64>,
    pub trimmed: u32,
    pub identity_violations: Vec<IdentityViolation>,
    pub errors: Vec<String>,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub collections_checked: u32,
    pub entries_healed: u32,
    pub tombstones_written: u32,
    pub identity_violations: u32,
    pub max_abs_drift: i64,
    pub errors: u32,
    pub duration_ms: i64,
    pub collections: BTreeMap<String, CollectionReport>,
}

enum Heal {
    Settled,
    Returned,
    Tombstoned,
    Nothing,
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    /// One reconciliation run over every collection. Safe to overlap with another run and with
    /// live traffic; idempotent.
    pub async fn reconcile(&self, now_ms: i64) -> Result<ReconcileReport, AppError> {
        let ids = self.ledger.collections().await?;
        Ok(self.reconcile_collections(&ids, now_ms).await)
    }

    /// One reconciliation run over these collections (a collection's failure is reported in its
    /// part of the report, not raised).
    pub async fn reconcile_collections(&self, ids: &[CollectionId], now_ms: i64) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        for id in ids {
            let mut cr = CollectionReport::default();
            if let Err(e) = self.reconcile_collection(id, now_ms, &mut cr).await {
                tracing::error!(collection = %id, error = %e, "reconciliation of a collection failed");
                cr.errors.push(e.to_string());
            }
            report.collections_checked += 1;
            report.entries_healed += cr.settled + cr.returned;
            report.tombstones_written += cr.tombstones_written;
            report.identity_violations += cr.identity_violations.len() as u32;
            report.max_abs_drift = report.max_abs_drift.max(cr.drift.unwrap_or(0).abs());
            report.errors += cr.errors.len() as u32;
            report.collections.insert(id.to_string(), cr);
        }
        report.duration_ms = crate::now_ms() - now_ms;
        tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "reconciliation run");
        report
    }

    async fn reconcile_collection(
        &self,
        id: &CollectionId,
        now_ms: i64,
        cr: &mut CollectionReport,
    ) -> Result<(), AppError> {
        // 1. Unsettled deductions and cancels.
        let ids =
            self.cache.unsettled_before(id, now_ms - self.settings.reconcile_threshold_ms, ENTRIES_PER_RUN).await?;
        cr.unsettled_examined = ids.len() as u32;
        if !ids.is_empty() {
            self.heal_entries(id, &ids, now_ms, cr).await?;
        }
        // 2. Drift and identities (snapshot before DynamoDB: the version guards the repair).
        let snap = self.cache.snapshot(id).await?;
        let rec = self.ledger.collection(id).await?.ok_or(AppError::CollectionNotFound)?;
        cr.identity_violations = rec.levels.violations();
        for v in &cr.identity_violations {
            tracing::error!(collection = %id, violation = ?v, "identity violated");
        }
        let saleable = rec.levels.saleable;
        match snap.stock {
            None => {
                if let Rebuild::Set(s) = self.cache.rebuild(id, &snap, saleable, true, rec.levels.quantity).await? {
                    tracing::warn!(collection = %id, stock = s, "Redis stock was missing; rebuilt from DynamoDB");
                    cr.rebuilt = true;
                    self.sold_out.clear(id);
                }
            }
            Some(cached) => {
                let d = drift(cached, saleable, snap.pending);
                cr.drift = Some(d);
                if d != 0 && snap.pending == 0 && snap.unsettled == 0 {
                    match self.cache.rebuild(id, &snap, saleable, false, rec.levels.quantity).await? {
                        Rebuild::Set(s) => {
                            tracing::warn!(collection = %id, drift = d, stock = s, "drift repaired from DynamoDB");
                            cr.repaired_drift = Some(d);
                        }
                        other => {
                            tracing::info!(collection = %id, drift = d, outcome = ?other, "drift repair stepped aside")
                        }
                    }
                }
                if rec.last_drift != Some(d) {
                    self.ledger.record_drift(id, d).await?;
                }
            }
        }
        // 3. Bound Redis memory.
        // With a per-user limit, durable orders stay: their units count toward the buyer's limit.
        let keep = rec.spec.per_user_limit.is_some();
        cr.trimmed = self.cache.trim_settled(id, now_ms - self.settings.order_retention_ms, TRIM_PER_RUN, keep).await?;
        Ok(())
    }

    async fn heal_entries(
        &self,
        id: &CollectionId,
        ids: &[OrderKey],
        now_ms: i64,
        cr: &mut CollectionReport,
    ) -> Result<(), AppError> {
        // Intents logged after this are a live cancel's, never cleared here.
        let cutoff = now_ms - self.settings.reconcile_threshold_ms;
        let records: HashMap<OrderKey, OrderRecord> =
            self.ledger.orders(ids).await?.into_iter().map(|r| (r.key(), r)).collect();
        let entries = self.cache.entries(id, ids).await?;
        let mut settle: BTreeMap<SettleAs, Vec<OrderKey>> = BTreeMap::new();
        let mut to_release = Vec::new();
        let mut missing = Vec::new();
        for (order, entry) in ids.iter().zip(entries) {
            let rec = records.get(order);
            let pending = entry.filter(|e| e.state == CacheState::Pending);
            match settle_as(rec, pending.as_ref()) {
                Ok(as_) => settle.entry(as_).or_default().push(order.clone()),
                Err(Settlement::Lost) if pending.is_some() => missing.extend(pending.map(|e| (order.clone(), e))),
                // Cancelled in DynamoDB, or only a cancel intent is left: give back what is owed.
                Err(_) => to_release.push(order.clone()),
            }
        }
        for (as_, orders) in &settle {
            cr.settled += self.cache.settle(id, orders, *as_, Some(cutoff), now_ms).await?;
        }
        let healed: Vec<Result<Heal, AppError>> = futures::stream::iter(
            to_release.into_iter().map(|o| (o, None)).chain(missing.into_iter().map(|(o, e)| (o, Some(e)))),
        )
        .map(|(order, entry)| async move {
            match entry {
                None => self.release_share(&order, now_ms).await,
                Some(e) => {
                    let t = Tombstone {
                        key: &order,
                        quantity: e.quantity,
                        accepted_at_ms: e.accepted_at_ms,
                        reason: CancelReason::Lost,
                    };
                    if self.ledger.put_tombstone(&t, now_ms).await? {
                        self.cache.release(&order, true, now_ms).await?;
                        tracing::warn!(collection = %id, order = %order, "lost deduction: tombstone written, stock returned");
                        return Ok(Heal::Tombstoned);
                    }
                    // The message (or another run) got there first: decide from what is there.
                    let rec = self.ledger.order(&order).await?;
                    match settle_as(rec.as_ref(), Some(&e)) {
                        Ok(as_) => {
                            self.cache.settle(id, std::slice::from_ref(&order), as_, Some(cutoff), now_ms).await?;
                            Ok(Heal::Settled)
                        }
                        Err(Settlement::Lost) => Ok(Heal::Nothing),
                        Err(_) => self.release_share(&order, now_ms).await,
                    }
                }
            }
        })
        .buffer_unordered(HEAL_CONCURRENCY)
        .collect()
        .await;
        for h in healed {
            match h {
                Ok(Heal::Settled) => cr.settled += 1,
                Ok(Heal::Returned) => cr.returned += 1,
                Ok(Heal::Tombstoned) => {
                    cr.tombstones_written += 1;
                    cr.returned += 1;
                }
                Ok(Heal::Nothing) => {}
                Err(e) => cr.errors.push(e.to_string()),
            }
        }
        if cr.returned > 0 {
            self.sold_out.clear(id);
        }
        Ok(())
    }

    async fn release_share(&self, order: &OrderKey, now_ms: i64) -> Result<Heal, AppError> {
        Ok(match self.cache.release(order, false, now_ms).await? {
            Released::Returned(_) => Heal::Returned,
            _ => Heal::Nothing,
        })
    }
}

/// How a deduction older than the threshold settles, given DynamoDB's record and the Redis entry
/// when it is still pending (`Err`: it does not settle, it is released or lost).
fn settle_as(rec: Option<&OrderRecord>, pending: Option<&CacheEntry>) -> Result<SettleAs, Settlement> {
    let same = match (rec, pending) {
        (Some(r), Some(e)) => r.accepted_at_ms == e.accepted_at_ms,
        _ => true,
    };
    let s = settlement(rec.map(|r| r.status), same);
    SettleAs::of(s).ok_or(s)
}
