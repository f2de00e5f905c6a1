//! The one real adapter of each port: Redis ([`redis_cache`]), DynamoDB ([`dynamo_ledger`]),
//! SQS ([`sqs_queue`]). Each translates its SDK's errors and replies into the ports' business
//! outcomes, so use cases never see an SDK type.

pub mod dynamo_ledger;
pub mod redis_cache;
pub mod sqs_queue;

pub use dynamo_ledger::DynamoLedger;
pub use redis_cache::RedisCache;
pub use sqs_queue::SqsQueue;
