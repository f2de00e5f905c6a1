//! The queue port (SQS): reservation messages to persist, payment-window timers to cancel.

use std::future::Future;

use super::{InfraResult, ReservationMessage, TimeoutMessage};

pub trait Queue: Send + Sync + 'static {
    fn send_reservation(&self, msg: &ReservationMessage) -> impl Future<Output = InfraResult<()>> + Send;
    /// Publishes several at once (reconciliation re-sending, ten per request).
    fn resend_reservations(&self, msgs: &[ReservationMessage]) -> impl Future<Output = InfraResult<()>> + Send;
    /// Sends each timer with a delay of `min(900, due_at - now)` seconds.
    fn schedule_timeouts(&self, timers: &[TimeoutMessage], now_ms: i64)
    -> impl Future<Output = InfraResult<()>> + Send;
}
