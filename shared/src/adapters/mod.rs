//! The one real adapter of each port: Redis ([`redis_cache`]), DynamoDB ([`dynamo_ledger`]),
//! SQS ([`sqs_queue`]), the system clock ([`clock`]); and the Redis credentials from Secrets Manager ([`secrets`]). Each translates its SDK's errors and replies into the ports' business
//! outcomes, so use cases never see an SDK type.

pub mod clock;
pub mod dynamo_ledger;
pub mod redis_cache;
pub mod secrets;
pub mod sqs_queue;

pub use clock::SystemClock;
pub use dynamo_ledger::DynamoLedger;
pub use redis_cache::RedisCache;
pub use sqs_queue::SqsQueue;

/// The AWS SDK configuration every client is built from: region, credentials and
/// `AWS_ENDPOINT_URL*` from the environment, over one HTTPS client (rustls on ring — the same TLS
/// stack as Redis's, so the binaries carry one crypto library).
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).load().await
}
