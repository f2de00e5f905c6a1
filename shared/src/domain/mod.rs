//! The domain: identifiers, the collection's stock model, the reservation life (docs/DESIGN.md#stock-identities and #reservation-life).
//! Everything here is pure and unit-tested without I/O.

pub mod batch;
pub mod buckets;
pub mod budget;
pub mod collection;
pub mod ids;
pub mod pending;
pub mod reservation;
pub mod settlement;
pub mod timing;

pub use buckets::{CacheShard, DEFAULT_BUCKETS, MAX_BUCKETS, home_bucket};
pub use budget::{BudgetWindow, BuyerBudget, DEFAULT_BUYER_BUDGET, MAX_BUDGET_REQUESTS};
pub use collection::{CollectionSpec, IdentityViolation, SpecError, StockLevels, bucket_violations, drift};
pub use ids::{CollectionId, IdError, OrderId, OrderKey, Quantity, UserId};
pub use pending::{PendingFate, PendingWindow};
pub use reservation::{CancelReason, Event, Refusal, Status, Transition, landing, payment_deadline, transition};
pub use settlement::{Settlement, UnsettledKind, held_back, settlement};
pub use timing::{CLOCK_SKEW, Knob, Timing};
