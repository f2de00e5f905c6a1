//! The local stack: flashstock's real handlers wired as AWS wires them, on this machine's own
//! redis-server and moto server.
//!
//! - [`provision`]: creates the table (with its indexes and TTL) and the queues (with DLQs and
//!   redrive policies), as `template.yaml` does in AWS.
//! - [`jwt`]: the dev HS256 tokens the front door accepts in place of the JWT authorizer.
//! - [`front_door`]: HTTP on loopback → API Gateway HTTP API (payload 2.0) events → the API and
//!   cancel handlers → their responses.
//! - [`poller`]: an SQS event source mapping: batches with a batching window, delivered to a
//!   handler, only the reported failures left for redelivery (and the DLQ after maxReceiveCount).
//! - [`schedule`]: an EventBridge schedule: scheduled events on an interval.
//! - [`stack`]: all of the above for one isolated deployment (prefix, table, queues).
//! - [`runtime_api`]: a Lambda Runtime API emulator that runs the real bootstrap binaries.
//!
//! The demo and the benchmarks that drive it are their own crate (`infra/demo`), so tests do not
//! compile them.

pub mod front_door;
pub mod jwt;
pub mod poller;
pub mod provision;
pub mod runtime_api;
pub mod schedule;
pub mod stack;

/// The local Redis the services script started (`FLASHSTOCK_REDIS_URL`), or a message saying how
/// to get it.
pub fn redis_url() -> anyhow::Result<String> {
    std::env::var(flashstock::config::REDIS_URL)
        .map_err(|_| anyhow::anyhow!("FLASHSTOCK_REDIS_URL is not set: run `source <(infra/services.sh env)` first"))
}
