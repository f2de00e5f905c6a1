//! The persist function: SQS reservation batches → DynamoDB, partial batch failures reported.
//! Wiring only: config, clients built once, the shared handler.
// The handlers' async state machines nest deeper than the default layout depth of 128.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = flashstock::lambda::boot().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(flashstock::lambda::persist_event(app, ev.payload, app.clock.now_ms()).await)
    }))
    .await
}
