//! [`Queue`] on SQS: reservation messages to the persist consumer, delayed timers to the cancel
//! function. Standard queues (at-least-once, unordered); consumers are idempotent.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::ports::{InfraError, InfraResult, Queue, ReservationMessage, TimeoutMessage};

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
    async fn publish_reservation(&self, msg: &ReservationMessage) -> InfraResult<()> {
        let body = serde_json::to_string(msg).map_err(|e| InfraError::new("encode reservation message", e))?;
        self.client
            .send_message()
            .queue_url(&self.reservations_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| InfraError::new("sqs publish reservation", aws_sdk_sqs::error::DisplayErrorContext(e)))
    }

    async fn schedule_timeouts(&self, timers: &[TimeoutMessage], now_ms: i64) -> InfraResult<()> {
        for chunk in timers.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, t) in chunk.iter().enumerate() {
                let body = serde_json::to_string(t).map_err(|e| InfraError::new("encode timeout message", e))?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(timer_delay(t.due_at, now_ms))
                        .build()
                        .map_err(|e| InfraError::new("sqs build timer", e))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.timeouts_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| InfraError::new("sqs schedule timeouts", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            if let Some(f) = out.failed().first() {
                return Err(InfraError::new("sqs schedule timeouts", format!("{}: {:?}", f.code(), f.message())));
            }
        }
        Ok(())
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
