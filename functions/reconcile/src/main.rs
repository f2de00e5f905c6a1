//! The reconcile function: an EventBridge schedule (every minute) → one reconciliation run.
//! Wiring only: config, clients built once, the shared handler.
// The handlers' async state machines nest deeper than the default layout depth of 128.
#![recursion_limit = "256"]

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = flashstock::lambda::boot().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<EventBridgeEvent<Value>>| async move {
        Ok::<_, Error>(serde_json::to_value(flashstock::lambda::reconcile_event(app, app.clock.now_ms()).await?)?)
    }))
    .await
}
