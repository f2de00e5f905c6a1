//! The persist function: SQS reservation batches → DynamoDB, partial batch failures reported.
//! Wiring only: config, clients built once, the shared handler.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use flashstock::{app::LiveApp, config::Config, now_ms, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let app = LiveApp::from_config(&config).await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(app.persist_batch(ev.payload, now_ms()).await)
    }))
    .await
}
