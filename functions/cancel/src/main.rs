//! The cancel function: the buyer's cancel route (API Gateway), payment-window timers (SQS) and
//! the expiry sweep (EventBridge schedule). Wiring only: the event's shape picks the handler.
// The handlers' async state machines nest deeper than the default layout depth of 128.
#![recursion_limit = "256"]

use flashstock::lambda::cancel_event;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = flashstock::lambda::boot().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move { cancel_event(app, ev.payload).await }))
        .await
}
