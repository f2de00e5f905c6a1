//! Event plumbing for functions with more than one trigger. The cancel function receives API
//! Gateway HTTP API requests (buyer cancel), SQS batches (payment-window timers) and EventBridge
//! scheduled events (expiry sweep); the event's shape picks the handler.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::sqs::SqsEvent;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Response};
use serde_json::Value;

use crate::app::App;
use crate::ports::{Ledger, Queue, StockCache};

/// What every function's `main` does first: JSON logs, the config from the environment, and the
/// clients built once.
pub async fn boot() -> Result<crate::app::LiveApp, lambda_runtime::Error> {
    crate::telemetry::init();
    let config = crate::config::Config::from_env()?;
    Ok(crate::app::LiveApp::from_config(&config).await?)
}

/// Orders cancelled per sweep run at most (the next run takes the rest).
pub const SWEEP_LIMIT: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Http,
    Sqs,
    Schedule,
}

/// Which trigger sent this event.
pub fn classify(event: &Value) -> Option<EventKind> {
    if event.get("Records").is_some() {
        Some(EventKind::Sqs)
    } else if event.get("requestContext").is_some() {
        Some(EventKind::Http)
    } else if event.get("detail-type").is_some() {
        Some(EventKind::Schedule)
    } else {
        None
    }
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

/// The cancel function's handler.
pub async fn cancel_event<C: StockCache, L: Ledger, Q: Queue>(
    app: &App<C, L, Q>,
    event: Value,
) -> Result<Value, lambda_runtime::Error> {
    let now = crate::now_ms();
    match classify(&event) {
        Some(EventKind::Http) => {
            let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
            let resp = crate::http::handle(app, http_request(req)).await;
            Ok(serde_json::to_value(http_response(resp))?)
        }
        Some(EventKind::Sqs) => {
            let ev: SqsEvent = serde_json::from_value(event)?;
            let (resp, report) = app.handle_timers(ev, now).await;
            tracing::info!(report = ?report, "timers handled");
            Ok(serde_json::to_value(resp)?)
        }
        Some(EventKind::Schedule) => {
            let report = app.sweep_expired(now, SWEEP_LIMIT).await?;
            tracing::info!(report = ?report, "expiry sweep");
            Ok(serde_json::to_value(report)?)
        }
        None => Err("unrecognised event: expected an HTTP API request, an SQS batch or a scheduled event".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_told_apart_by_shape() {
        assert_eq!(classify(&json!({"Records": []})), Some(EventKind::Sqs));
        assert_eq!(classify(&json!({"version": "2.0", "requestContext": {}})), Some(EventKind::Http));
        assert_eq!(
            classify(&json!({"detail-type": "Scheduled Event", "source": "aws.events"})),
            Some(EventKind::Schedule)
        );
        assert_eq!(classify(&json!({})), None);
    }
}
