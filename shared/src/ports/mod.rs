//! Ports: what the use cases need from the outside world, shaped around how they use it.
//!
//! - [`StockCache`]: the fast filter (Redis): per-collection stock, the per-order entries that make
//!   Try idempotent, and the time-indexed log of deductions not yet known durable, each order's
//!   in its buyer's cache shard's slot, keyed by the buyer-scoped order.
//! - [`Ledger`]: the durable truth (DynamoDB): collections, reservations, tombstones.
//! - [`ShardMoves`] and [`MoveLog`]: units carried between a collection's cache shards, Redis's
//!   side and DynamoDB's; [`CacheRaise`]: Redis's side of a raise of their count.
//! - [`Queue`]: the buffers (SQS): reservation messages and payment-window timers.
//! - [`Clock`]: time, wall and monotonic.
//!
//! Each has exactly one real adapter in [`crate::adapters`]. Methods return `impl Future + Send`
//! (static dispatch, no `async_trait`). One file per port, plus [`messages`]: what travels on
//! the queues.

mod clock;
mod ledger;
mod messages;
mod queue;
mod raise;
mod shard_moves;
mod stock_cache;

pub use clock::*;
pub use ledger::*;
pub use messages::*;
pub use queue::*;
pub use raise::*;
pub use shard_moves::*;
pub use stock_cache::*;

/// An infrastructure failure (network, throttling past retries, unexpected reply). Business
/// outcomes are never reported through it.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct InfraError {
    pub op: &'static str,
    pub message: String,
    /// The store refused for now, changing nothing, and said why (a raise of the collection's
    /// cache shards under way, or the caller routing by a layout raised since): answered as
    /// `SERVICE_UNAVAILABLE` with that reason, not as a failed dependency.
    pub busy: bool,
}

impl InfraError {
    pub fn new(op: &'static str, e: impl std::fmt::Display) -> Self {
        Self { op, message: e.to_string(), busy: false }
    }

    /// A refusal for now (see [`InfraError::busy`]).
    pub fn busy(op: &'static str, why: impl std::fmt::Display) -> Self {
        Self { op, message: why.to_string(), busy: true }
    }
}

pub type InfraResult<T> = Result<T, InfraError>;

/// Every port trait, for code that calls the adapters directly (tests, tools): `use
/// flashstock::ports::prelude::*;`.
pub mod prelude {
    pub use super::{
        BuyerBudgets, CacheRaise, CacheWarmup, Catalog, Clock, Ledger, MoveLog, OrderBook, OrderCache, Queue, Settling,
        ShardMoves, StockCache, StockWrites, Tallies, TimeIndex, WriteTurns,
    };
}
