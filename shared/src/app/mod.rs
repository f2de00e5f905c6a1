//! The use cases, written against the ports: Try ([`reserve`]), Persist ([`persist`]), status
//! ([`status`]), admin ([`admin`]), the second phase: [`confirm`], [`cancel`] and [`timeouts`]
//! (timers and the expiry sweep), [`reconcile`] with its [`tally`] of confirmed units, and
//! [`shard_moves`] (units carried to a buyer's empty cache shard).
//! [`App`] holds the adapters built once per process plus per-instance caches.

pub mod admin;
pub mod cancel;
pub mod confirm;
pub mod persist;
pub mod raise;
mod rebuild;
pub mod reconcile;
pub mod reserve;
pub mod shard_moves;
pub mod sold_out;
pub mod status;
pub mod tally;
pub mod timeouts;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use self::sold_out::SoldOutFlags;
use crate::adapters::{DynamoLedger, RedisCache, SqsQueue, SystemClock};
use crate::config::{BuyerBudget, Config, RedisSource};
#[cfg(doc)]
use crate::domain::Timing;
use crate::domain::{CollectionId, CollectionSpec, IdentityViolation, PendingWindow, Refusal};
use crate::ports::{BuyerBudgets, Catalog, Clock, InfraError, WriteTurns};

/// Every failure a use case reports (the HTTP edge's own are `crate::http::ApiError`). Mapped to
/// its problem code in one place (`crate::http::problem`).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{field}: {detail}")]
    InvalidField { field: &'static str, detail: String },
    #[error("too many requests from this buyer; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("collection not found")]
    CollectionNotFound,
    #[error("reservation not found")]
    ReservationNotFound,
    #[error("sold out")]
    SoldOut,
    #[error("only {available} left")]
    InsufficientStock { available: i64 },
    #[error("per-user limit reached: {held} already held")]
    LimitExceeded { held: i64 },
    #[error("the order id was already used with a different body")]
    IdempotencyMismatch,
    #[error("a collection's quantity is fixed at creation")]
    QuantityImmutable,
    #[error("a collection's settings are fixed at creation (its cache shards can only be raised)")]
    SettingsImmutable,
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("stock cache not ready; retry after warm-up")]
    CacheNotReady,
    #[error(
        "the reservation may be held but could not be confirmed queued; retry with the same orderId to learn its outcome"
    )]
    Unconfirmed,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// Tunables of the use cases (from [`Config`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub sold_out_flag: Duration,
    pub reconcile_threshold_ms: i64,
    /// Reconciliation re-sends an order with no durable record until it is this old, then
    /// gives it up.
    pub reconcile_give_up_ms: i64,
    /// Reconciliation re-sends an order at most this often.
    pub resend_interval_ms: i64,
    /// The stretch before the give-up in which nothing is re-sent and no replay promised.
    pub reconcile_quiet_ms: i64,
    pub fault_drop_message_percent: u8,
    /// How long settled per-order entries stay in Redis for replays.
    pub order_retention_ms: i64,
    pub emit_emf: bool,
    /// Per-buyer budget of Tries and cancels (None = unlimited).
    pub buyer_budget: Option<BuyerBudget>,
    /// The per-user limit given to a collection created without one.
    pub default_per_user_limit: Option<u32>,
    /// A reconciliation run starts no collection after this long.
    pub reconcile_budget: Duration,
    /// Every writer of a stock bucket takes its write turn.
    pub write_turns: bool,
    /// How long one persist invocation waits for write turns in all ([`Timing::persist_turn_budget`]).
    pub persist_turn_budget: Duration,
    /// Unsettled entries a reconciliation run examines per collection, longest-logged first.
    pub entries_per_run: usize,
}

impl Settings {
    /// The fate over time of an order with no durable record (heal forward, quiet, give up).
    pub fn pending_window(&self) -> PendingWindow {
        PendingWindow { give_up_ms: self.reconcile_give_up_ms, quiet_ms: self.reconcile_quiet_ms }
    }
}

impl From<&Config> for Settings {
    fn from(c: &Config) -> Self {
        Self {
            sold_out_flag: c.sold_out_flag,
            reconcile_threshold_ms: c.reconcile_threshold_ms,
            reconcile_give_up_ms: c.reconcile_give_up_ms,
            resend_interval_ms: c.resend_interval_ms,
            reconcile_quiet_ms: c.reconcile_quiet_ms,
            fault_drop_message_percent: c.fault_drop_message_percent,
            order_retention_ms: (c.order_retention_seconds as i64).saturating_mul(1000),
            emit_emf: c.emit_emf,
            buyer_budget: c.buyer_budget,
            default_per_user_limit: c.default_per_user_limit,
            reconcile_budget: c.reconcile_budget,
            write_turns: c.write_turns,
            persist_turn_budget: c.persist_turn_budget,
            entries_per_run: crate::config::ENTRIES_PER_RUN,
        }
    }
}

/// How long an instance trusts its cached collection settings: a raise of a collection's cache
/// shards reaches every function within this (a Try that finds no stock re-reads at once), and
/// until then a function routing by the layout left is refused or finds nothing
/// (docs/DESIGN.md#raising-cacheshards).
pub const SPEC_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// The least age at which a Try that found no stock reads the settings again.
pub const SPEC_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub struct App<C, L, Q> {
    pub cache: C,
    pub ledger: L,
    pub queue: Q,
    pub settings: Settings,
    /// Where every use case reads time.
    pub clock: Arc<dyn Clock>,
    /// Collection settings, cached per instance for [`SPEC_TTL`] (all are immutable but the cache
    /// shard count, which a raise changes).
    specs: RwLock<HashMap<CollectionId, (Arc<CollectionSpec>, tokio::time::Instant)>>,
    /// Per-instance sold-out flags: refuse without a Redis round trip while one is up.
    sold_out: SoldOutFlags,
}

/// The app on the real adapters, as every function runs it.
pub type LiveApp = App<RedisCache, DynamoLedger, SqsQueue>;

impl LiveApp {
    /// Builds the clients once (call from `main`). The AWS SDK reads region, credentials and
    /// `AWS_ENDPOINT_URL` from the environment.
    pub async fn from_config(cfg: &Config) -> Result<Self, InfraError> {
        let aws = crate::adapters::aws_sdk_config().await;
        let url = match &cfg.redis {
            RedisSource::Url(url) => url.clone(),
            RedisSource::SecretsManager { secret_arn, endpoint } => {
                let client = aws_sdk_secretsmanager::Client::new(&aws);
                crate::adapters::secrets::redis_url(&client, secret_arn, endpoint, cfg.allow_insecure_redis).await?
            }
        };
        let cache = RedisCache::connect(url.expose(), &cfg.key_prefix, cfg.redis_cluster).await?;
        let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&aws), &cfg.table);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &cfg.reservation_queue_url, &cfg.timeout_queue_url);
        Ok(App::new(cache, ledger, queue, Settings::from(cfg)))
    }
}

impl<C, L, Q> App<C, L, Q> {
    pub fn new(cache: C, ledger: L, queue: Q, settings: Settings) -> Self {
        let sold_out = SoldOutFlags::new(settings.sold_out_flag);
        Self { cache, ledger, queue, settings, clock: Arc::new(SystemClock), specs: RwLock::default(), sold_out }
    }

    /// The same app reading time from `clock` (tests drive it).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Drops the cached settings: the next call reads them again.
    pub(crate) fn forget_spec(&self, id: &CollectionId) {
        if let Ok(mut m) = self.specs.write() {
            m.remove(id);
        }
    }

    /// Passes a Redis call's result on; a refusal for now (a raise under way, or this instance
    /// routing by a layout raised since) makes the next call read the settings again.
    pub(crate) fn on_layout<T>(
        &self,
        id: &CollectionId,
        r: crate::ports::InfraResult<T>,
    ) -> crate::ports::InfraResult<T> {
        if let Err(e) = &r
            && e.busy
        {
            self.forget_spec(id);
        }
        r
    }

    /// Drops the cached settings if they were read more than [`SPEC_RECHECK`] ago (a Try that
    /// found no stock may be routing by a layout raised since; a crowd of them during a raise or
    /// a lost stock key reads the header once a second per instance, not once a Try).
    pub(crate) fn recheck_spec(&self, id: &CollectionId) {
        let now = self.clock.instant();
        if let Ok(mut m) = self.specs.write()
            && m.get(id).is_some_and(|(_, at)| now.duration_since(*at) >= SPEC_RECHECK)
        {
            m.remove(id);
        }
    }
}

impl<C, L: Catalog, Q> App<C, L, Q> {
    /// The collection's settings, from the instance cache (for up to [`SPEC_TTL`]) or DynamoDB's
    /// header item.
    pub async fn spec(&self, id: &CollectionId) -> Result<Arc<CollectionSpec>, AppError> {
        let now = self.clock.instant();
        if let Some((s, at)) = self.specs.read().ok().and_then(|m| m.get(id).cloned())
            && now.duration_since(at) < SPEC_TTL
        {
            return Ok(s);
        }
        let header = self.ledger.collection_header(id).await?.ok_or(AppError::CollectionNotFound)?;
        Ok(self.remember_spec(id, &header.spec))
    }

    /// Caches settings just read from DynamoDB.
    pub(crate) fn remember_spec(&self, id: &CollectionId, spec: &CollectionSpec) -> Arc<CollectionSpec> {
        let spec = Arc::new(spec.clone());
        if let Ok(mut m) = self.specs.write() {
            m.insert(id.clone(), (spec.clone(), self.clock.instant()));
        }
        spec
    }
}

impl<C: BuyerBudgets, L: Catalog, Q> App<C, L, Q> {
    /// Spends one request of a cancel's buyer budget on its collection (a Try spends its own in
    /// its deduction: [`Self::reserve`]).
    ///
    /// # Errors
    /// `RateLimited` with the seconds until the window ends once the budget is spent.
    pub async fn spend_budget(&self, order: &crate::domain::OrderKey, now_ms: i64) -> Result<(), AppError> {
        let Some(budget) = self.settings.buyer_budget else { return Ok(()) };
        let shards = self.spec(&order.collection).await?.cache_shards;
        match self.cache.spend_request(order, shards, budget, now_ms).await? {
            None => Ok(()),
            Some(wait) => Err(AppError::rate_limited(wait)),
        }
    }
}

impl AppError {
    /// `RateLimited`, waiting whole seconds (at least 1) until the budget's window ends.
    pub fn rate_limited(wait: Duration) -> Self {
        AppError::RateLimited { retry_after_s: wait.as_millis().div_ceil(1000).max(1) as u64 }
    }
}

/// Identities as a report entry (used by admin and reconciliation).
pub fn describe_violations(v: &[IdentityViolation]) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// A write turn's time: one transaction (with its retries) holds it, and a holder that stalls or
/// dies holds it no longer than this.
const TURN_TTL: Duration = Duration::from_secs(5);

impl<C: WriteTurns, L, Q> App<C, L, Q> {
    /// Waits for a stock bucket's write turn: every DynamoDB transaction on a bucket item
    /// (persist's chunks, moves, cancels, timer batches, tallies) takes it, so they queue instead of DynamoDB
    /// cancelling them for conflicts. Gives up after `wait`, or at once if Redis cannot be asked,
    /// and the caller transacts anyway: turns only spare conflicts, DynamoDB's conditions stay the
    /// guarantee. Returns the holder to give back ([`Self::end_turn`]), `None` when not held.
    pub(crate) async fn take_turn(&self, collection: &CollectionId, bucket: u32, wait: Duration) -> Option<String> {
        if !self.settings.write_turns {
            return None;
        }
        let holder = ulid::Ulid::new().to_string();
        let start = self.clock.instant();
        // Polls the collection's slot (the Try path's too), backing off (the retry policy's turn
        // polls), so a crowd of waiters stays a small load.
        let mut polls = crate::retry::turn_polls();
        loop {
            match self.cache.take_turn(collection, bucket, &holder, TURN_TTL).await {
                Ok(true) => return Some(holder),
                Ok(false) if self.clock.instant().duration_since(start) < wait => {
                    tokio::time::sleep(polls.next().unwrap_or(Duration::from_millis(12))).await;
                }
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!(%collection, bucket, error = %e, "write turn unavailable; transacting without");
                    return None;
                }
            }
        }
    }

    /// Gives the turn back (it expires anyway).
    pub(crate) async fn end_turn(&self, collection: &CollectionId, bucket: u32, holder: Option<String>) {
        if let Some(h) = holder
            && let Err(e) = self.cache.give_turn(collection, bucket, &h).await
        {
            tracing::warn!(%collection, bucket, error = %e, "write turn not given back; it expires");
        }
    }
}

/// How long a cancel, a timer batch or a tally waits for a stock bucket's write turn at a time.
pub(crate) const TURN_WAIT: Duration = Duration::from_secs(2);
/// A confirm or cancel backs off (and a cancel waits for turns) this long in all; past it, its
/// remaining rounds write at once, so it ends well inside the API function's 10 s timeout.
pub(crate) const SECOND_PHASE_BUDGET: Duration = Duration::from_secs(6);

impl<C, L, Q> App<C, L, Q> {
    /// How long a cancel started at `started` may still wait for its turn (zero once its budget is
    /// spent: it then transacts without one).
    pub(crate) fn turn_wait(&self, started: Instant) -> Duration {
        TURN_WAIT.min(SECOND_PHASE_BUDGET.saturating_sub(self.clock.instant().duration_since(started)))
    }

    /// Backs off before a confirm's or cancel's next round, while its budget lasts.
    pub(crate) async fn second_phase_backoff(&self, started: Instant, round: u32) {
        if self.clock.instant().duration_since(started) < SECOND_PHASE_BUDGET {
            backoff(round).await;
        }
    }
}

/// The 503 a second phase answers once its rounds are spent, naming what contended: the stock
/// bucket whose transactions DynamoDB kept cancelling, or else the order itself (other calls on
/// it kept changing it under this one).
pub(crate) fn contention(order: &crate::domain::OrderKey, bucket: Option<u32>) -> AppError {
    AppError::Unavailable(match bucket {
        Some(k) => format!("too much contention on stock bucket {k} of collection {}; retry", order.collection),
        None => format!("order {} kept changing under this call; retry", order.order),
    })
}

/// Re-reads after a lost conditional write before giving up (a storm of concurrent operations on
/// one order settles long before this).
pub(crate) const MAX_ROUNDS: u32 = 6;

pub(crate) use crate::retry::backoff;
