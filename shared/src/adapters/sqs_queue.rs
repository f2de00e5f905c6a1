//! [`Queue`] on SQS: reservation messages to the persist consumer, delayed timers to the cancel
//! function. Standard queues (at-least-once, unordered); consumers are idempotent.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::StreamExt;

use crate::ports::{InfraError, InfraResult, Queue, ReservationMessage, TimeoutMessage};

/// Batch requests in flight at once.
const SENDS_AT_ONCE: usize = 8;

/// SQS's longest delay.
pub const MAX_DELAY_SECONDS: i64 = 900;

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    reservations_url: String,
    timeouts_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, reservations_url: impl Into<String>, timeouts_url: impl Into<String>) -> Self {
        Self { client, reservations_url: reservations_url.into(), timeouts_url: timeouts_url.into() }
    }
}

/// Seconds to delay a timer due at `due_at` (epoch s), capped at SQS's 900 s.
pub fn timer_delay(due_at: i64, now_ms: i64) -> i32 {
    (due_at - now_ms / 1000).clamp(0, MAX_DELAY_SECONDS) as i32
}

impl Queue for SqsQueue {
    async fn send_reservation(&self, msg: &ReservationMessage) -> InfraResult<()> {
        let body = serde_json::to_string(msg).map_err(|e| InfraError::new("encode reservation message", e))?;
        self.client
            .send_message()
            .queue_url(&self.reservations_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| InfraError::new("sqs send reservation", aws_sdk_sqs::error::DisplayErrorContext(e)))
    }

    async fn resend_reservations(&self, msgs: &[ReservationMessage]) -> InfraResult<()> {
        let bodies = msgs
            .iter()
            .map(|m| serde_json::to_string(m).map(|b| (b, 0)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InfraError::new("encode reservation message", e))?;
        self.send_batches(&self.reservations_url, bodies, "sqs resend reservations").await
    }

    async fn schedule_timeouts(&self, timers: &[TimeoutMessage], now_ms: i64) -> InfraResult<()> {
        let bodies = timers
            .iter()
            .map(|t| serde_json::to_string(t).map(|b| (b, timer_delay(t.due_at, now_ms))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| InfraError::new("encode timeout message", e))?;
        self.send_batches(&self.timeouts_url, bodies, "sqs schedule timeouts").await
    }
}

impl SqsQueue {
    /// Sends (body, delay seconds) pairs, ten per request, a few requests at once (reconciliation
    /// may re-send thousands); any entry SQS refuses fails the call.
    async fn send_batches(&self, url: &str, bodies: Vec<(String, i32)>, op: &'static str) -> InfraResult<()> {
        let chunks: Vec<Vec<(String, i32)>> = bodies.chunks(10).map(<[_]>::to_vec).collect();
        let results: Vec<InfraResult<()>> = futures::stream::iter(chunks)
            .map(|chunk| self.send_batch(url, chunk, op))
            .buffer_unordered(SENDS_AT_ONCE)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// One SendMessageBatch of up to ten.
    async fn send_batch(&self, url: &str, chunk: Vec<(String, i32)>, op: &'static str) -> InfraResult<()> {
        let entries = chunk
            .into_iter()
            .enumerate()
            .map(|(i, (body, delay))| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()
                    .map_err(|e| InfraError::new(op, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| InfraError::new(op, aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        match out.failed().first() {
            Some(f) => Err(InfraError::new(op, format!("{}: {:?}", f.code(), f.message()))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_capped_and_never_negative() {
        assert_eq!(timer_delay(1_000, 1_000_000), 0);
        assert_eq!(timer_delay(1_010, 1_000_000), 10);
        assert_eq!(timer_delay(1_000 + 3_600, 1_000_000), 900);
        assert_eq!(timer_delay(900, 1_000_000), 0);
    }
}
