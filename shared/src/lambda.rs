//! Lambda glue: the only place that knows Lambda's event types. It boots a function, turns SQS
//! batches into typed messages for the use cases and their unresolved orders into partial batch
//! failures, tells the cancel function's three triggers apart by type, and emits the metrics. Use cases
//! take domain types and return reports.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::app::reconcile::ReconcileReport;
use crate::app::timeouts::TimeoutReport;
use crate::app::{App, AppError};
use crate::domain::OrderKey;
use crate::metrics;
use crate::ports::{Ledger, Queue, ReservationMessage, StockCache, TimeoutMessage};

/// What every function's `main` does first: JSON logs, the config from the environment, and the
/// clients built once.
pub async fn boot() -> Result<crate::app::LiveApp, lambda_runtime::Error> {
    crate::telemetry::init();
    let config = crate::config::Config::from_env()?;
    Ok(crate::app::LiveApp::from_config(&config).await?)
}

/// Orders cancelled per sweep run at most (the next run takes the rest).
pub const SWEEP_LIMIT: usize = 1_000;

/// The cancel function's three triggers, told apart by their types: an SQS batch of timers
/// (`Records`), an API Gateway HTTP API request (`requestContext`), or EventBridge's schedule of
/// the expiry sweep (`detail-type`, `source`, `detail`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CancelEvent {
    Timers(SqsEvent),
    Http(Box<ApiGatewayV2httpRequest>),
    Sweep(EventBridgeEvent<Value>),
}

/// An API Gateway HTTP API (payload 2.0) event as the `http::Request` the handlers take.
pub fn http_request(event: ApiGatewayV2httpRequest) -> lambda_http::Request {
    LambdaRequest::ApiGatewayV2(event).into()
}

/// The handler's response as API Gateway's payload 2.0 response.
pub fn http_response(resp: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Empty => None,
        Body::Text(t) => Some(EventBody::Text(t)),
        Body::Binary(b) => Some(EventBody::Binary(b)),
        _ => None,
    };
    out
}

/// An SQS batch for a use case: each body decoded as `T` (an unreadable one is poison: reported
/// failed, so the queue's redrive policy moves it to the DLQ); `run` answers which orders stay
/// unresolved, and every message that carried one of them is reported failed (SQS delivers it
/// again). An unreadable message is logged with its message id.
pub async fn sqs_batch<T, F, Fut>(event: SqsEvent, order_of: fn(&T) -> OrderKey, run: F) -> SqsBatchResponse
where
    T: DeserializeOwned,
    F: FnOnce(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<OrderKey>>,
{
    let mut failed: Vec<String> = Vec::new();
    let mut carried: Vec<(String, OrderKey)> = Vec::new();
    let mut msgs = Vec::new();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        match record.body.as_deref().map(serde_json::from_str::<T>) {
            Some(Ok(msg)) => {
                carried.push((id, order_of(&msg)));
                msgs.push(msg);
            }
            other => {
                tracing::error!(message_id = %id, error = ?other.map(|r| r.err()), "unreadable message: reported failed (DLQ after the redrive limit)");
                failed.push(id);
            }
        }
    }
    let unresolved = run(msgs).await;
    failed.extend(carried.into_iter().filter(|(_, o)| unresolved.contains(o)).map(|(id, _)| id));
    batch_failures(failed)
}

/// A partial batch response reporting these message ids as failed (SQS delivers them again).
pub fn batch_failures(ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut resp = SqsBatchResponse::default();
    resp.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    resp
}

/// The persist function's handler: reservation messages → DynamoDB, partial batch failures.
pub async fn persist_event<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    event: SqsEvent,
    now_ms: i64,
) -> SqsBatchResponse {
    let received = event.records.len();
    let resp = sqs_batch(event, ReservationMessage::key, |msgs| app.persist(msgs, now_ms)).await;
    if app.settings.emit_emf {
        metrics::emit(&[metrics::persist_line(now_ms, received, resp.batch_item_failures.len())]);
    }
    resp
}

/// Payment-window timers (the cancel function's SQS trigger).
pub async fn timers_event<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    event: SqsEvent,
    now_ms: i64,
) -> (SqsBatchResponse, TimeoutReport) {
    let mut report = TimeoutReport::default();
    let resp = sqs_batch(event, TimeoutMessage::key, |timers| async {
        let (failed, r) = app.fire_timers(timers, now_ms).await;
        report = r;
        failed
    })
    .await;
    // Unreadable timers count as errors too.
    report.errors = report.errors.max(resp.batch_item_failures.len() as u32);
    (resp, report)
}

/// An SQS batch of `(message id, body)` records, as the event source mapping hands one over
/// (tests, the explorer and the benchmarks build theirs with it).
pub fn sqs_event<I: AsRef<str>, B: AsRef<str>>(records: &[(I, B)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .map(|(id, body)| {
            let mut m = aws_lambda_events::sqs::SqsMessage::default();
            m.message_id = Some(id.as_ref().to_owned());
            m.body = Some(body.as_ref().to_owned());
            m
        })
        .collect();
    event
}

/// The reconcile function's handler: one run over every collection, its metrics emitted.
pub async fn reconcile_event<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    now_ms: i64,
) -> Result<ReconcileReport, AppError> {
    let report = app.reconcile(now_ms).await?;
    if app.settings.emit_emf {
        metrics::emit(&metrics::reconcile_lines(&report, now_ms));
    }
    Ok(report)
}

/// The cancel function's handler.
pub async fn cancel_event<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    event: Value,
) -> Result<Value, lambda_runtime::Error> {
    let now = app.clock.now_ms();
    let event: CancelEvent = serde_json::from_value(event).map_err(|e| {
        format!("unrecognised event: expected an HTTP API request, an SQS batch or a scheduled event ({e})")
    })?;
    match event {
        CancelEvent::Http(req) => {
            let resp = crate::http::handle(app, http_request(*req)).await;
            Ok(serde_json::to_value(http_response(resp))?)
        }
        CancelEvent::Timers(ev) => {
            let (resp, report) = timers_event(app, ev, now).await;
            tracing::info!(report = ?report, "timers handled");
            Ok(serde_json::to_value(resp)?)
        }
        CancelEvent::Sweep(_) => {
            let report = app.sweep_expired(now, SWEEP_LIMIT).await?;
            tracing::info!(report = ?report, "expiry sweep");
            Ok(serde_json::to_value(report)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_told_apart_by_type() {
        let kind = |v: Value| match serde_json::from_value::<CancelEvent>(v) {
            Ok(CancelEvent::Timers(_)) => "timers",
            Ok(CancelEvent::Http(_)) => "http",
            Ok(CancelEvent::Sweep(_)) => "sweep",
            Err(_) => "none",
        };
        assert_eq!(kind(json!({"Records": []})), "timers");
        assert_eq!(kind(json!({"version": "2.0", "requestContext": {"http": {"method": "GET"}}})), "http");
        let schedule = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert_eq!(kind(schedule), "sweep");
        assert_eq!(kind(json!({})), "none");
        assert_eq!(kind(json!({"detail-type": "Scheduled Event"})), "none", "an EventBridge event has a source");
    }
}
