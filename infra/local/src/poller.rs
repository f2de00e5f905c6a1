//! A local SQS event source mapping: receives up to `batch_size` messages within a batching
//! window, invokes the handler with a real `SqsEvent`, deletes what succeeded, and leaves the
//! reported failures to come back after the visibility timeout (and, after the redrive policy's
//! maxReceiveCount, to move to the DLQ) — `ReportBatchItemFailures` semantics.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: usize,
    pub batching_window: Duration,
}

pub fn to_event_message(m: aws_sdk_sqs::types::Message, arn: &str) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = m.message_id;
    out.receipt_handle = m.receipt_handle;
    out.body = m.body;
    out.md5_of_body = m.md5_of_body;
    out.attributes = m
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect::<HashMap<_, _>>();
    out.event_source = Some("aws:sqs".to_owned());
    out.event_source_arn = Some(arn.to_owned());
    out.aws_region = Some("us-east-1".to_owned());
    out
}

/// Receives one batch (empty when the queue stayed empty for about a second).
pub async fn receive_batch(client: &aws_sdk_sqs::Client, cfg: &PollerConfig) -> Vec<aws_sdk_sqs::types::Message> {
    let mut msgs = Vec::new();
    let deadline = Instant::now() + cfg.batching_window;
    while msgs.len() < cfg.batch_size {
        let wait = if msgs.is_empty() { 1 } else { 0 };
        let res = client
            .receive_message()
            .queue_url(&cfg.queue_url)
            .max_number_of_messages((cfg.batch_size - msgs.len()).min(10) as i32)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        match res {
            Ok(out) => {
                let got = out.messages.unwrap_or_default();
                let empty = got.is_empty();
                msgs.extend(got);
                if msgs.is_empty() {
                    return msgs;
                }
                if empty && Instant::now() >= deadline {
                    break;
                }
                if empty {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    msgs
}

/// Deletes the messages whose ids are not in `failed`.
async fn delete_succeeded(
    client: &aws_sdk_sqs::Client,
    url: &str,
    handles: Vec<(String, String)>,
    failed: &HashSet<String>,
) {
    let done: Vec<_> = handles.into_iter().filter(|(id, _)| !failed.contains(id)).collect();
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (_, rh))| {
                DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(rh).build().ok()
            })
            .collect();
        if let Err(e) = client.delete_message_batch().queue_url(url).set_entries(Some(entries)).send().await {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "delete failed; messages will be redelivered");
        }
    }
}

/// Receives one batch and delivers it; returns how many messages it delivered.
pub async fn deliver_once<F, Fut>(client: &aws_sdk_sqs::Client, cfg: &PollerConfig, handler: &F) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let msgs = receive_batch(client, cfg).await;
    if msgs.is_empty() {
        return 0;
    }
    let n = msgs.len();
    let handles: Vec<(String, String)> = msgs
        .iter()
        .map(|m| (m.message_id.clone().unwrap_or_default(), m.receipt_handle.clone().unwrap_or_default()))
        .collect();
    let mut event = SqsEvent::default();
    event.records = msgs.into_iter().map(|m| to_event_message(m, &cfg.queue_arn)).collect();
    let resp = handler(event).await;
    let failed: HashSet<String> = resp.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
    delete_succeeded(client, &cfg.queue_url, handles, &failed).await;
    n
}

/// Runs forever (until its task is aborted).
pub async fn run<F, Fut>(client: aws_sdk_sqs::Client, cfg: PollerConfig, handler: F)
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    loop {
        deliver_once(&client, &cfg, &handler).await;
    }
}
