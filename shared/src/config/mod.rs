//! The one configuration struct, read once from the environment at start-up. Every variable name
//! is a constant here; a missing or malformed one is reported by name. The table of variables and
//! defaults in docs/CONFIGURATION.md is generated from it ([`docs`]).

use std::time::Duration;

use crate::domain::{Knob, Timing};

pub mod docs;

pub const REDIS_URL: &str = "FLASHSTOCK_REDIS_URL";
pub const KEY_PREFIX: &str = "FLASHSTOCK_KEY_PREFIX";
pub const TABLE: &str = "FLASHSTOCK_TABLE";
pub const RESERVATION_QUEUE_URL: &str = "FLASHSTOCK_RESERVATION_QUEUE_URL";
pub const TIMEOUT_QUEUE_URL: &str = "FLASHSTOCK_TIMEOUT_QUEUE_URL";
pub const ORDER_RETENTION_SECONDS: &str = "FLASHSTOCK_ORDER_RETENTION_SECONDS";
pub const SOLD_OUT_FLAG_MS: &str = "FLASHSTOCK_SOLD_OUT_FLAG_MS";
pub const RECONCILE_THRESHOLD_MS: &str = "FLASHSTOCK_RECONCILE_THRESHOLD_MS";
pub const FAULT_DROP_MESSAGE_PERCENT: &str = "FLASHSTOCK_FAULT_DROP_MESSAGE_PERCENT";
pub const EMIT_EMF: &str = "FLASHSTOCK_EMIT_EMF";
pub const REDIS_CLUSTER: &str = "FLASHSTOCK_REDIS_CLUSTER";
/// Secrets Manager secret holding the Redis credentials (deployed functions read it at init):
/// JSON `{"username", "password"}` for the endpoint in [`REDIS_ENDPOINT`], or `{"url"}`.
pub const REDIS_SECRET_ARN: &str = "FLASHSTOCK_REDIS_SECRET_ARN";
/// `host:port` of the Redis the secret's credentials are for (not a secret).
pub const REDIS_ENDPOINT: &str = "FLASHSTOCK_REDIS_ENDPOINT";
/// Local-only override: accept a plaintext `redis://` URL or a `#insecure` one (unverified TLS).
/// The local stack and the tests set it; a deployment never does (the template test checks).
pub const ALLOW_INSECURE_REDIS: &str = "FLASHSTOCK_ALLOW_INSECURE_REDIS";
pub const BUYER_BUDGET: &str = "FLASHSTOCK_BUYER_BUDGET";
pub const BUYER_BUDGET_WINDOW_SECONDS: &str = "FLASHSTOCK_BUYER_BUDGET_WINDOW_SECONDS";
pub const DEFAULT_PER_USER_LIMIT: &str = "FLASHSTOCK_DEFAULT_PER_USER_LIMIT";
pub const RECONCILE_BUDGET_MS: &str = "FLASHSTOCK_RECONCILE_BUDGET_MS";
pub const WRITE_TURNS: &str = "FLASHSTOCK_WRITE_TURNS";
/// The write turns' old name: refused at start-up, so a deployment that still sets it learns the
/// new name instead of silently running with the default.
pub const RENAMED_WRITE_TURNS: &str = "FLASHSTOCK_PERSIST_LEASE";
/// Age (since accepted) after which reconciliation gives an order with no durable record up.
pub const RECONCILE_GIVE_UP_MS: &str = "FLASHSTOCK_RECONCILE_GIVE_UP_MS";
// The deployment's queue, function and schedule settings, for the timing check only (the template
// sets each to its resource's value; the defaults are the template's).
pub const RESERVATION_VISIBILITY_SECONDS: &str = "FLASHSTOCK_RESERVATION_VISIBILITY_SECONDS";
pub const RESERVATION_MAX_RECEIVES: &str = "FLASHSTOCK_RESERVATION_MAX_RECEIVES";
pub const PERSIST_TIMEOUT_SECONDS: &str = "FLASHSTOCK_PERSIST_TIMEOUT_SECONDS";
pub const PERSIST_BATCH_WINDOW_SECONDS: &str = "FLASHSTOCK_PERSIST_BATCH_WINDOW_SECONDS";
pub const RECONCILE_INTERVAL_SECONDS: &str = "FLASHSTOCK_RECONCILE_INTERVAL_SECONDS";
pub const RECONCILE_TIMEOUT_SECONDS: &str = "FLASHSTOCK_RECONCILE_TIMEOUT_SECONDS";
pub const CANCEL_TIMEOUT_SECONDS: &str = "FLASHSTOCK_CANCEL_TIMEOUT_SECONDS";

/// The timing variables, each with the template's value (`tests/deploy` checks they agree).
pub const TIMING_DEFAULTS: [(&str, u64); 8] = [
    (RECONCILE_GIVE_UP_MS, 1_500_000),
    (RESERVATION_VISIBILITY_SECONDS, 180),
    (RESERVATION_MAX_RECEIVES, 5),
    (PERSIST_TIMEOUT_SECONDS, 30),
    (PERSIST_BATCH_WINDOW_SECONDS, 1),
    (RECONCILE_INTERVAL_SECONDS, 60),
    (RECONCILE_TIMEOUT_SECONDS, 55),
    (CANCEL_TIMEOUT_SECONDS, 30),
];

/// A reconciliation run's default time budget: it starts no collection after this long (the
/// function's timeout is 55 s; one collection's work is bounded by the per-run limits).
pub const RECONCILE_BUDGET_DEFAULT: Duration = Duration::from_secs(40);

/// Unsettled entries a reconciliation run examines per collection, longest-logged first.
pub const ENTRIES_PER_RUN: usize = 20_000;

/// The shortest order retention accepted. A replay of an order Redis has forgotten takes a unit
/// again, which persist (or reconciliation) gives back once it meets DynamoDB's record: correct,
/// but a unit held for nothing meanwhile, so forgetting must be rare.
pub const MIN_ORDER_RETENTION_SECONDS: u64 = 3_600;

/// Every variable a deployed function's config requires (the deployment test checks the template
/// gives them); Redis comes from [`REDIS_SECRET_ARN`] and [`REDIS_ENDPOINT`] there.
pub const REQUIRED: [&str; 3] = [TABLE, RESERVATION_QUEUE_URL, TIMEOUT_QUEUE_URL];

/// Where the Redis connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisSource {
    /// A URL from the environment (local stack, tests, benchmarks).
    Url(Secret),
    /// Credentials from Secrets Manager, fetched once at init ([`crate::adapters::secrets`]).
    SecretsManager { secret_arn: String, endpoint: String },
}

pub use crate::domain::BuyerBudget;

/// A value that must never reach a log: its `Debug` is redacted; [`Secret::expose`] is the one
/// way to read it (where the client is built).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The Redis to use: a URL (`rediss://`, credentials included when AUTH is on), or a secret
    /// to read it from at init.
    pub redis: RedisSource,
    /// Plaintext or unverified-TLS Redis URLs are accepted (local only, see [`ALLOW_INSECURE_REDIS`]).
    pub allow_insecure_redis: bool,
    /// The endpoint is a Redis Cluster (ElastiCache Serverless is): follow its slots.
    pub redis_cluster: bool,
    /// Prefix of every Redis key (isolates deployments and tests sharing one Redis).
    pub key_prefix: String,
    pub table: String,
    pub reservation_queue_url: String,
    pub timeout_queue_url: String,
    /// How long Redis remembers an order id for idempotent replays (default one day).
    pub order_retention_seconds: u64,
    /// How long one instance refuses a sold-out collection without asking Redis (default 500 ms,
    /// so the flag never outlives a cancel's return by more than that).
    pub sold_out_flag: Duration,
    /// Age at which reconciliation checks an unsettled Redis deduction against DynamoDB (default
    /// 45 s: with the one-minute schedule a lost deduction is healed within ~105 s, inside the 2-minute healing bound of docs/DESIGN.md#guarantees).
    pub reconcile_threshold_ms: i64,
    /// Age (since accepted) after which reconciliation stops re-sending an order DynamoDB has
    /// no record of and gives it up: tombstone, stock back, CANCELLED/LOST (default 25 min; the
    /// start-up check makes it outlast every redelivery of the message, see [`Timing`]).
    pub reconcile_give_up_ms: i64,
    /// Reconciliation re-sends an order at most this often (the reservation queue's
    /// visibility timeout: a message still being retried comes back no sooner).
    pub resend_interval_ms: i64,
    /// The stretch before the give-up in which reconciliation re-sends nothing and a replay is
    /// not promised ([`Timing::quiet_stretch`]).
    pub reconcile_quiet_ms: i64,
    /// Fault injection for tests and the demo: this share (0–100) of accepted Tries "lose" their
    /// message after the Redis deduction. Only settable from the environment, never from a request.
    pub fault_drop_message_percent: u8,
    /// Print CloudWatch embedded-metric-format lines on stdout (default on; Lambda ships stdout to
    /// CloudWatch Logs, which extracts the metrics).
    pub emit_emf: bool,
    /// Per-buyer request budget on Try and cancel (default 20 per 60 s; `FLASHSTOCK_BUYER_BUDGET=0`
    /// turns it off). Past it the buyer gets 429 with `Retry-After` until the window ends.
    pub buyer_budget: Option<BuyerBudget>,
    /// The per-user limit of a collection created without one (default 10; 0 = none).
    pub default_per_user_limit: Option<u32>,
    /// A reconciliation run starts no collection after this long (default 40 s, inside the
    /// reconcile function's 55 s timeout).
    pub reconcile_budget: Duration,
    /// Every writer of a stock bucket takes its write turn (default on; `off`
    /// lets them transact at once and retry DynamoDB's conflicts, as the benchmark compares).
    pub write_turns: bool,
    /// How long one persist invocation waits for write turns in all.
    pub persist_turn_budget: Duration,
    /// The timing knobs as deployed, checked against each other at start-up.
    pub timing: Timing,
}

/// Why a Redis URL is refused outside local use, if it is.
pub fn insecure_redis_url(url: &str) -> Option<&'static str> {
    if !url.starts_with("rediss://") {
        Some("use rediss:// (TLS); plaintext redis:// is for the local stack only")
    } else if url.contains("#insecure") {
        Some("#insecure turns certificate checks off; it is for the local stack only")
    } else {
        None
    }
}

impl Config {
    /// The Redis URL when it comes from the environment (the local stack and tests), not a secret.
    pub fn redis_url(&self) -> Option<&Secret> {
        match &self.redis {
            RedisSource::Url(url) => Some(url),
            RedisSource::SecretsManager { .. } => None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let req = |name: &'static str| get(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        fn num<T: std::str::FromStr>(name: &'static str, v: Option<String>, default: T) -> Result<T, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => s.parse().map_err(|_| ConfigError::Invalid { name, why: format!("not a number: {s:?}") }),
            }
        }
        if get(RENAMED_WRITE_TURNS).is_some() {
            return Err(ConfigError::Invalid { name: RENAMED_WRITE_TURNS, why: format!("renamed {WRITE_TURNS}") });
        }
        let key_prefix = get(KEY_PREFIX).unwrap_or_else(|| "fs".to_owned());
        if key_prefix.is_empty()
            || !key_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
        {
            return Err(ConfigError::Invalid { name: KEY_PREFIX, why: "use [A-Za-z0-9_:-]+".into() });
        }
        let fault: u8 = num(FAULT_DROP_MESSAGE_PERCENT, get(FAULT_DROP_MESSAGE_PERCENT), 0)?;
        if fault > 100 {
            return Err(ConfigError::Invalid { name: FAULT_DROP_MESSAGE_PERCENT, why: "must be 0..=100".into() });
        }
        let order_retention_seconds = num(ORDER_RETENTION_SECONDS, get(ORDER_RETENTION_SECONDS), 86_400)?;
        if order_retention_seconds < MIN_ORDER_RETENTION_SECONDS {
            return Err(ConfigError::Invalid {
                name: ORDER_RETENTION_SECONDS,
                why: format!(
                    "at least {MIN_ORDER_RETENTION_SECONDS} s (a replay after it holds a unit until persist gives it back)"
                ),
            });
        }
        let allow_insecure_redis = matches!(get(ALLOW_INSECURE_REDIS).as_deref(), Some("1" | "true" | "on"));
        let redis = match get(REDIS_SECRET_ARN).filter(|v| !v.is_empty()) {
            // The endpoint may be left out when the secret holds a whole URL.
            Some(secret_arn) => {
                RedisSource::SecretsManager { secret_arn, endpoint: get(REDIS_ENDPOINT).unwrap_or_default() }
            }
            None => {
                let url = req(REDIS_URL)?;
                if let Some(why) = insecure_redis_url(&url).filter(|_| !allow_insecure_redis) {
                    return Err(ConfigError::Invalid { name: REDIS_URL, why: why.into() });
                }
                RedisSource::Url(Secret(url))
            }
        };
        let default_budget = crate::domain::DEFAULT_BUYER_BUDGET;
        let budget: u32 = num(BUYER_BUDGET, get(BUYER_BUDGET), default_budget.requests)?;
        if budget > crate::domain::MAX_BUDGET_REQUESTS {
            let why = format!("must be 0..={}", crate::domain::MAX_BUDGET_REQUESTS);
            return Err(ConfigError::Invalid { name: BUYER_BUDGET, why });
        }
        let window: u64 =
            num(BUYER_BUDGET_WINDOW_SECONDS, get(BUYER_BUDGET_WINDOW_SECONDS), default_budget.window.as_secs())?;
        if !(1..=3_600).contains(&window) {
            return Err(ConfigError::Invalid { name: BUYER_BUDGET_WINDOW_SECONDS, why: "must be 1..=3600".into() });
        }
        let default_limit: u32 = num(DEFAULT_PER_USER_LIMIT, get(DEFAULT_PER_USER_LIMIT), 10)?;
        let timing = timing(&get)?;
        if let Some(c) = timing.conflicts().into_iter().next() {
            let name = match c.knob {
                Knob::Threshold => RECONCILE_THRESHOLD_MS,
                Knob::GiveUp => RECONCILE_GIVE_UP_MS,
                Knob::VisibilityTimeout => RESERVATION_VISIBILITY_SECONDS,
                Knob::MaxReceiveCount => RESERVATION_MAX_RECEIVES,
                Knob::ReconcileBudget => RECONCILE_BUDGET_MS,
                Knob::ReconcileTimeout => RECONCILE_TIMEOUT_SECONDS,
            };
            return Err(ConfigError::Invalid { name, why: c.why });
        }
        Ok(Self {
            redis,
            allow_insecure_redis,
            redis_cluster: matches!(get(REDIS_CLUSTER).as_deref(), Some("1" | "true" | "on")),
            key_prefix,
            table: req(TABLE)?,
            reservation_queue_url: req(RESERVATION_QUEUE_URL)?,
            timeout_queue_url: req(TIMEOUT_QUEUE_URL)?,
            order_retention_seconds,
            sold_out_flag: Duration::from_millis(num(SOLD_OUT_FLAG_MS, get(SOLD_OUT_FLAG_MS), 500)?),
            reconcile_threshold_ms: timing.threshold.as_millis() as i64,
            reconcile_give_up_ms: timing.give_up.as_millis() as i64,
            resend_interval_ms: timing.visibility_timeout.as_millis() as i64,
            reconcile_quiet_ms: timing.quiet_stretch().as_millis() as i64,
            fault_drop_message_percent: fault,
            emit_emf: !matches!(get(EMIT_EMF).as_deref(), Some("0" | "false" | "off")),
            buyer_budget: (budget > 0).then(|| BuyerBudget { requests: budget, window: Duration::from_secs(window) }),
            default_per_user_limit: (default_limit > 0).then_some(default_limit),
            reconcile_budget: timing.reconcile_budget,
            write_turns: !matches!(get(WRITE_TURNS).as_deref(), Some("0" | "false" | "off")),
            persist_turn_budget: timing.persist_turn_budget(),
            timing,
        })
    }
}

/// The timing knobs from the environment (the template's values by default).
fn timing(get: &impl Fn(&str) -> Option<String>) -> Result<Timing, ConfigError> {
    let num = |name: &'static str| -> Result<u64, ConfigError> {
        let default = match name {
            RECONCILE_THRESHOLD_MS => 45_000,
            RECONCILE_BUDGET_MS => RECONCILE_BUDGET_DEFAULT.as_millis() as u64,
            _ => TIMING_DEFAULTS.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v),
        };
        let n: u64 = get(name).map_or(Ok(default), |s| {
            s.parse().map_err(|_| ConfigError::Invalid { name, why: format!("not a number: {s:?}") })
        })?;
        // A week (in ms or s) bounds every knob, so that no arithmetic on them can overflow.
        if n > 604_800_000 {
            return Err(ConfigError::Invalid { name, why: format!("{n} is out of range") });
        }
        Ok(n)
    };
    let (ms, s) = (Duration::from_millis, Duration::from_secs);
    Ok(Timing {
        threshold: ms(num(RECONCILE_THRESHOLD_MS)?),
        give_up: ms(num(RECONCILE_GIVE_UP_MS)?),
        visibility_timeout: s(num(RESERVATION_VISIBILITY_SECONDS)?),
        max_receive_count: u32::try_from(num(RESERVATION_MAX_RECEIVES)?)
            .map_err(|_| ConfigError::Invalid { name: RESERVATION_MAX_RECEIVES, why: "too large".into() })?,
        persist_timeout: s(num(PERSIST_TIMEOUT_SECONDS)?),
        batch_window: s(num(PERSIST_BATCH_WINDOW_SECONDS)?),
        reconcile_interval: s(num(RECONCILE_INTERVAL_SECONDS)?),
        reconcile_timeout: s(num(RECONCILE_TIMEOUT_SECONDS)?),
        reconcile_budget: ms(num(RECONCILE_BUDGET_MS)?),
        cancel_timeout: s(num(CANCEL_TIMEOUT_SECONDS)?),
    })
}

#[cfg(test)]
mod tests;
