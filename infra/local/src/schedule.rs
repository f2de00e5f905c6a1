//! A local EventBridge schedule: a scheduled event every `interval`, as the rule in
//! `template.yaml` sends one every minute.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;

/// The event EventBridge sends for a schedule rule.
pub fn scheduled_event() -> Value {
    let mut ev: EventBridgeEvent<Value> = EventBridgeEvent::default();
    ev.version = Some("0".to_owned());
    ev.id = Some(ulid::Ulid::new().to_string());
    ev.detail_type = "Scheduled Event".to_owned();
    ev.source = "aws.events".to_owned();
    ev.region = Some("us-east-1".to_owned());
    ev.detail = serde_json::json!({});
    serde_json::to_value(ev).unwrap_or_default()
}

/// Runs forever (until its task is aborted).
pub async fn run<F, Fut>(interval: Duration, handler: F)
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        handler(scheduled_event()).await;
    }
}
