//! Reconciliation's first step, per collection: the unsettled entries logged before the threshold
//! are settled from DynamoDB's record, their shares returned, healed forward (re-logged and their
//! messages re-sent) or, past the give-up, given up — each by the order's pending fate
//! ([`crate::domain::PendingWindow`]).

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;

use super::CollectionReport;
use crate::app::{App, AppError};
use crate::domain::{CancelReason, CollectionId, OrderKey, PendingFate, Settlement, settlement};
use crate::ports::{
    CacheEntry, CacheState, Ledger, OrderRecord, Queue, Released, ReservationMessage, SettleAs, StockCache, Tombstone,
};

/// Concurrent DynamoDB writes while healing.
const HEAL_CONCURRENCY: usize = 32;
/// Orders re-logged per script call (one call holds Redis for all of them).
const RELOG_PER_CALL: usize = 256;

enum Heal {
    Settled,
    Returned,
    Tombstoned,
    Nothing,
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    pub(super) async fn heal_entries(
        &self,
        (id, shards): (&CollectionId, u32),
        ids: &[OrderKey],
        now_ms: i64,
        cr: &mut CollectionReport,
    ) -> Result<(), AppError> {
        // Intents logged after this are a live cancel's, never cleared here.
        let cutoff = now_ms - self.settings.reconcile_threshold_ms;
        let records: HashMap<OrderKey, OrderRecord> =
            self.ledger.orders(ids).await?.into_iter().map(|r| (r.key(), r)).collect();
        let entries = self.cache.entries(id, shards, ids).await?;
        let mut settle: BTreeMap<SettleAs, Vec<OrderKey>> = BTreeMap::new();
        let mut to_release = Vec::new();
        let mut missing = Vec::new();
        for (order, entry) in ids.iter().zip(entries) {
            let rec = records.get(order);
            let pending = entry.filter(|e| e.state == CacheState::Pending);
            match settle_as(rec, pending.as_ref()) {
                Ok(as_) => settle.entry(as_).or_default().push(order.clone()),
                Err(Settlement::Missing) if pending.is_some() => missing.extend(pending.map(|e| (order.clone(), e))),
                // Cancelled in DynamoDB, or only a cancel intent is left: give back what is owed.
                Err(_) => to_release.push(order.clone()),
            }
        }
        for (as_, orders) in &settle {
            cr.settled += self.cache.settle(id, shards, orders, *as_, Some(cutoff), now_ms).await?;
        }
        // Give up what is past the give-up deadline; heal forward the rest, but for what is in the
        // quiet stretch before it (`resend` leaves that: its last message may still be
        // redelivered, and a run still re-sending it may be alive).
        let window = self.settings.pending_window();
        let (missing, forward): (Vec<_>, Vec<_>) =
            missing.into_iter().partition(|(_, e)| window.fate(e.accepted_at_ms, now_ms) == PendingFate::GiveUp);
        for chunk in forward.chunks(RELOG_PER_CALL) {
            if let Err(e) = self.resend((id, shards), chunk, cutoff, now_ms, cr).await {
                tracing::error!(collection = %id, error = %e, "re-sending failed; the next run tries again");
                cr.errors.push(e.to_string());
            }
        }
        let healed: Vec<Result<Heal, AppError>> = futures::stream::iter(
            to_release.into_iter().map(|o| (o, None)).chain(missing.into_iter().map(|(o, e)| (o, Some(e)))),
        )
        .map(|(order, entry)| async move {
            match entry {
                None => self.release_share(&order, shards, now_ms).await,
                Some(e) => {
                    let t = Tombstone {
                        key: &order,
                        quantity: e.quantity,
                        accepted_at_ms: e.accepted_at_ms,
                        reason: CancelReason::Lost,
                    };
                    if self.tombstone(&t, shards, now_ms).await? {
                        tracing::warn!(collection = %id, order = %order, "lost deduction: tombstone written, stock returned");
                        return Ok(Heal::Tombstoned);
                    }
                    // The message (or another run) got there first: decide from what is there.
                    let rec = self.ledger.order(&order).await?;
                    match settle_as(rec.as_ref(), Some(&e)) {
                        Ok(as_) => {
                            self.cache.settle(id, shards, std::slice::from_ref(&order), as_, Some(cutoff), now_ms).await?;
                            Ok(Heal::Settled)
                        }
                        Err(Settlement::Missing) => Ok(Heal::Nothing),
                        Err(_) => self.release_share(&order, shards, now_ms).await,
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

    /// Logs these pending orders again and re-sends their messages: each only if it is still
    /// outside the quiet stretch before its give-up, still pending, and no concurrent run or
    /// replay re-logged it meanwhile.
    async fn resend(
        &self,
        (id, shards): (&CollectionId, u32),
        orders: &[(OrderKey, CacheEntry)],
        cutoff: i64,
        now_ms: i64,
        cr: &mut CollectionReport,
    ) -> Result<(), AppError> {
        // On this call's clock, which may be up to a run's length past the run's: an order that
        // entered the quiet stretch meanwhile is not re-sent (its redeliveries could outlast the
        // give-up).
        let now_call = self.clock.now_ms().max(now_ms);
        let window = self.settings.pending_window();
        let (orders, quiet): (Vec<_>, Vec<_>) =
            orders.iter().partition(|(_, e)| window.fate(e.accepted_at_ms, now_call) == PendingFate::HealForward);
        // In the quiet stretch nothing is re-sent: such an order is logged again to come due at
        // its give-up, so that every run until then does not examine it again (thousands of them
        // would crowd orders still healed forward out of the run's examination limit).
        let mut to_give_up: BTreeMap<i64, Vec<OrderKey>> = BTreeMap::new();
        for (o, e) in quiet {
            let due_at = window.give_up_at(e.accepted_at_ms) - self.settings.reconcile_threshold_ms;
            to_give_up.entry(due_at.div_euclid(1000) * 1000).or_default().push(o.clone());
        }
        for (at, keys) in &to_give_up {
            self.cache.relog(id, shards, keys, cutoff, *at).await?;
        }
        let keys: Vec<OrderKey> = orders.iter().map(|(o, _)| o.clone()).collect();
        // Logged on the clock of this call (a run may reach it long after it started), and ahead
        // of it so that the next look comes a visibility timeout later: a message SQS is still
        // retrying comes back no sooner, and a backlog is not flooded with copies every run.
        let ahead = (self.settings.resend_interval_ms - self.settings.reconcile_threshold_ms).max(0);
        let relogged = self.cache.relog(id, shards, &keys, cutoff, now_call + ahead).await?;
        let msgs: Vec<ReservationMessage> = orders
            .iter()
            .zip(relogged)
            .filter(|(_, r)| *r)
            .map(|((o, e), _)| ReservationMessage {
                order_id: o.order.clone(),
                collection_id: o.collection.clone(),
                user_id: o.user.clone(),
                quantity: e.quantity,
                accepted_at_ms: e.accepted_at_ms,
            })
            .collect();
        if msgs.is_empty() {
            return Ok(());
        }
        self.queue.resend_reservations(&msgs).await?;
        cr.resent += msgs.len() as u32;
        tracing::warn!(collection = %id, count = msgs.len(), "no durable record past the threshold: messages re-sent");
        Ok(())
    }

    async fn release_share(&self, order: &OrderKey, shards: u32, now_ms: i64) -> Result<Heal, AppError> {
        Ok(match self.cache.release(order, shards, false, now_ms).await? {
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
