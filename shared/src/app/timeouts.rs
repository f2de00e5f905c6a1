//! Timeouts: payment-window timers (SQS, delayed) and the expiry sweep that backs them up; each
//! cancels a RESERVED order past its deadline as the system (reason TIMEOUT).

use serde::Serialize;

use super::cancel::Canceller;
use super::{App, AppError};
use crate::domain::{CancelReason, OrderKey};
use crate::ports::{Ledger, Queue, StockCache, TimeoutMessage};

/// What a sweep or a batch of timers did.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutReport {
    pub cancelled: u32,
    pub already_final: u32,
    pub redelayed: u32,
    pub errors: u32,
}

impl<C: StockCache, L: Ledger, Q: Queue> App<C, L, Q> {
    /// Fires (or re-delays) one payment-window timer.
    async fn fire_timer(&self, t: &TimeoutMessage, now_ms: i64, report: &mut TimeoutReport) -> Result<(), AppError> {
        if t.due_at > now_ms / 1000 {
            self.queue.schedule_timeouts(std::slice::from_ref(t), now_ms).await?;
            report.redelayed += 1;
            return Ok(());
        }
        match self.cancel(&t.key(), Canceller::System(CancelReason::Timeout), now_ms).await {
            Ok(c) if c.changed => report.cancelled += 1,
            Ok(_) | Err(AppError::Refused(_)) | Err(AppError::ReservationNotFound) => report.already_final += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Payment-window timers: each fires (or is re-delayed when not yet due). Returns the
    /// orders whose timer could not be handled (SQS delivers them again) and what was done.
    pub async fn fire_timers(&self, timers: Vec<TimeoutMessage>, now_ms: i64) -> (Vec<OrderKey>, TimeoutReport) {
        let mut report = TimeoutReport::default();
        let mut failed = Vec::new();
        for t in timers {
            if let Err(e) = self.fire_timer(&t, now_ms, &mut report).await {
                let key = t.key();
                tracing::error!(order = %key, error = %e, "timer not handled; SQS will redeliver");
                report.errors += 1;
                failed.push(key);
            }
        }
        (failed, report)
    }

    /// Backstop for lost timers: cancels every RESERVED order whose deadline has passed.
    pub async fn sweep_expired(&self, now_ms: i64, limit: usize) -> Result<TimeoutReport, AppError> {
        let mut report = TimeoutReport::default();
        for order in self.ledger.expired_reservations(now_ms / 1000, limit).await? {
            let t = TimeoutMessage::new(&order, now_ms / 1000);
            if let Err(e) = self.fire_timer(&t, now_ms, &mut report).await {
                tracing::error!(order = %order, error = %e, "sweep could not cancel");
                report.errors += 1;
            }
        }
        Ok(report)
    }
}
