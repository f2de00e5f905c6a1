//! flashstock's domain crate: everything the Lambda functions share.
//!
//! # Layout
//! - [`domain`]: ids, quantities, the stock model and the reservation state machine. Pure, no I/O.
//! - [`ports`]: the traits the use cases need from the stock cache (Redis), the durable ledger
//!   (DynamoDB) and the queue (SQS).
//! - [`adapters`]: exactly one real adapter per port, and the Lua scripts behind the Redis one.
//! - [`app`]: the use cases (Try, Persist, status, admin, confirm, cancel, timeout) written against
//!   the ports.
//! - [`http`]: the API Gateway HTTP API front: routing, identity from the authorizer, and the one
//!   mapping from errors to `application/problem+json`.
//! - [`lambda`]: Lambda glue (boot, SQS batches, the cancel function's three triggers) and
//!   [`metrics`] (CloudWatch EMF): the only code that knows Lambda's event types.
//! - [`config`] and [`telemetry`]: environment configuration read once, JSON logs.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod lambda;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod telemetry;

/// Milliseconds since the Unix epoch, the one clock every component uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
