//! One isolated local deployment: its own Redis key prefix, table and queues on the shared local
//! redis-server and moto server, with the real handlers behind a front door, SQS pollers and a
//! schedule. The demo, `flashstock-local serve` and every end-to-end test start one of these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flashstock::adapters::redis_cache::Conn;
use flashstock::app::LiveApp;
use flashstock::config::{self, Config};
use flashstock::lambda::cancel_event;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::poller::{self, PollerConfig};
use crate::provision::{self, Queues};
use crate::{front_door, jwt, schedule};

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub http_addr: SocketAddr,
    /// Persist event source mapping: messages per batch and batching window.
    pub persist_batch_size: usize,
    pub batching_window: Duration,
    /// Concurrent persist consumers (Lambda environments).
    pub persist_consumers: usize,
    pub run_persist: bool,
    pub run_timers: bool,
    pub schedule_interval: Option<Duration>,
    pub visibility_seconds: u32,
    /// API Gateway stage name the front door serves under (`/<stage>/v1/...`); None = `$default`.
    pub stage: Option<String>,
    /// The clock the app reads (tests move it); None = the system's.
    pub clock: Option<Arc<flashstock::ports::ShiftedClock>>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            persist_batch_size: 100,
            batching_window: Duration::from_millis(200),
            persist_consumers: 2,
            run_persist: true,
            run_timers: true,
            schedule_interval: Some(Duration::from_secs(60)),
            visibility_seconds: 30,
            stage: None,
            clock: None,
        }
    }
}

impl StackOptions {
    /// The handlers behind the front door only: no consumers, no schedule (benchmarks and tests
    /// that drive the handlers themselves).
    pub fn handlers_only() -> Self {
        Self { run_persist: false, run_timers: false, schedule_interval: None, ..Self::default() }
    }
}

pub struct Stack {
    pub name: String,
    pub app: Arc<LiveApp>,
    pub config: Config,
    pub queues: Queues,
    pub url: String,
    pub secret: String,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
    /// A plain connection to this stack's Redis, for reading its keys directly.
    pub redis: Conn,
    /// Messages the scheduled reconciliation runs re-sent (heal forward), summed.
    pub resent: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Stack {
    /// Provisions `name`'s table and queues, builds the app from a config pointing at them
    /// (`tweak` may change it, e.g. to inject a fault), and starts the front door and consumers.
    /// AWS endpoint, region and credentials come from the environment (`infra/services.sh`).
    pub async fn launch(
        name: &str,
        redis_url: &str,
        opts: StackOptions,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Stack> {
        let sdk = flashstock::adapters::aws_sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let table = format!("{name}-table");
        provision::table(&dynamo, &table).await?;
        let queues = provision::queues(&sqs, name, opts.visibility_seconds).await?;
        let mut config = Config::from_lookup(|k| match k {
            config::REDIS_URL => Some(redis_url.to_owned()),
            // This machine's own redis-servers: plaintext, or TLS with a self-signed certificate.
            config::ALLOW_INSECURE_REDIS => Some("1".to_owned()),
            config::KEY_PREFIX => Some(name.to_owned()),
            config::TABLE => Some(table.clone()),
            config::RESERVATION_QUEUE_URL => Some(queues.reservations.clone()),
            config::TIMEOUT_QUEUE_URL => Some(queues.timeouts.clone()),
            // Locally the report goes to the JSON log only, unless asked for.
            config::EMIT_EMF => Some(std::env::var(config::EMIT_EMF).unwrap_or_else(|_| "off".to_owned())),
            other => std::env::var(other).ok(),
        })?;
        tweak(&mut config);
        let app = LiveApp::from_config(&config).await?;
        let app = Arc::new(match &opts.clock {
            Some(clock) => app.with_clock(clock.clone()),
            None => app,
        });
        let url = config.redis_url().map(|u| u.expose().to_owned()).unwrap_or_else(|| redis_url.to_owned());
        let redis = flashstock::adapters::redis_cache::connect(&url, config.redis_cluster).await?;
        let secret = jwt::secret_from_env();
        let (addr, door) = front_door::serve(app.clone(), secret.clone(), opts.http_addr, opts.stage.clone()).await?;
        let mut tasks = vec![door];
        if opts.run_persist {
            let arn = provision::arn(&sqs, &queues.reservations).await?;
            for _ in 0..opts.persist_consumers {
                let cfg = PollerConfig {
                    queue_url: queues.reservations.clone(),
                    queue_arn: arn.clone(),
                    batch_size: opts.persist_batch_size,
                    batching_window: opts.batching_window,
                };
                let app = app.clone();
                tasks.push(tokio::spawn(poller::run(sqs.clone(), cfg, move |ev| {
                    let app = app.clone();
                    async move { flashstock::lambda::persist_event(&*app, ev, app.clock.now_ms()).await }
                })));
            }
        }
        if opts.run_timers {
            let cfg = PollerConfig {
                queue_url: queues.timeouts.clone(),
                queue_arn: provision::arn(&sqs, &queues.timeouts).await?,
                batch_size: 10,
                batching_window: Duration::from_millis(100),
            };
            let app = app.clone();
            tasks.push(tokio::spawn(poller::run(sqs.clone(), cfg, move |ev| {
                let app = app.clone();
                async move {
                    let ids: Vec<String> = ev.records.iter().filter_map(|r| r.message_id.clone()).collect();
                    // Through JSON, as the cancel function receives it.
                    let v = serde_json::to_value(ev).unwrap_or(Value::Null);
                    match cancel_event(&app, v).await.map(serde_json::from_value) {
                        Ok(Ok(resp)) => resp,
                        other => {
                            // A failed invocation: Lambda redelivers the whole batch.
                            tracing::error!(error = ?other.err().map(|e| e.to_string()), "timer invocation failed");
                            flashstock::lambda::batch_failures(ids)
                        }
                    }
                }
            })));
        }
        let resent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if let Some(interval) = opts.schedule_interval {
            let (app, sum) = (app.clone(), resent.clone());
            tasks.push(tokio::spawn(schedule::run(interval, move |ev| {
                let (app, sum) = (app.clone(), sum.clone());
                async move {
                    // Two rules in AWS: the cancel function's expiry sweep and the reconcile function.
                    if let Err(e) = cancel_event(&app, ev).await {
                        tracing::error!(error = %e, "scheduled sweep failed");
                    }
                    match flashstock::lambda::reconcile_event(&*app, app.clock.now_ms()).await {
                        Ok(r) => _ = sum.fetch_add(u64::from(r.resent), std::sync::atomic::Ordering::Relaxed),
                        Err(e) => tracing::error!(error = %e, "scheduled reconciliation failed"),
                    }
                }
            })));
        }
        Ok(Stack {
            name: name.to_owned(),
            app,
            config,
            queues,
            url: format!("http://{addr}{}", opts.stage.as_deref().map(|s| format!("/{s}")).unwrap_or_default()),
            secret,
            sqs,
            dynamo,
            redis,
            resent,
            tasks,
        })
    }

    /// One collection's figures read straight from both stores: a consistent table scan (no
    /// decoding by the ledger) for the stock buckets' summed counters and Σ quantity by status over
    /// its order records, and the collection's Redis keys. The tests, the flash-sale bench and the
    /// demo check the stock identities on this.
    pub async fn store_figures(&self, collection: &str) -> anyhow::Result<StoreFigures> {
        let mut out = StoreFigures::default();
        let mut pages =
            self.dynamo.scan().table_name(&self.config.table).consistent_read(true).into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item?;
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).map_or("", String::as_str);
            let num =
                |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).unwrap_or(0);
            let pk = text("pk");
            if pk == format!("COL#{collection}") {
                out.quantity = num("quantity");
            } else if pk.starts_with(&format!("COL#{collection}#B")) {
                // A stock bucket: the collection's counters are their sums.
                let (q, s, r, c) = (num("quantity"), num("saleable"), num("reserved"), num("confirmed"));
                if let Some(k) = pk.rsplit_once("#B").and_then(|(_, k)| k.parse::<usize>().ok()) {
                    if out.bucket_saleable.len() <= k {
                        out.bucket_saleable.resize(k + 1, 0);
                    }
                    out.bucket_saleable[k] = s;
                }
                out.buckets_quantity += q;
                out.saleable += s;
                out.reserved_counter += r;
                out.confirmed_counter += c;
                if s < 0 || r < 0 || c < 0 || q != s + r + c {
                    out.broken_buckets.push(format!("{pk}: quantity {q} saleable {s} reserved {r} confirmed {c}"));
                }
            } else if text("collectionId") == collection {
                *out.by_status.entry(text("status").to_owned()).or_default() += num("quantity");
                if !text("gsi3pk").is_empty() {
                    out.untallied += num("quantity");
                }
            }
        }
        let id = flashstock::domain::CollectionId::parse(collection)?;
        let shards = self.app.spec(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?.cache_shards;
        // The pending sum as production reads it (the snapshot counts it from the time index),
        // shard by shard.
        out.redis_stock = Some(0);
        for shard in 0..shards {
            let at = flashstock::domain::CacheShard::new(shard, shards);
            let snap = flashstock::ports::CacheWarmup::snapshot(&self.app.cache, &id, at).await?;
            out.redis_stock = out.redis_stock.zip(snap.stock).map(|(a, b)| a + b);
            out.redis_pending += snap.pending;
            out.redis_open_slices += snap.open_slices;
            out.redis_pending_entries += self.app.cache.pending_units_everywhere(&id, shard).await?;
            out.redis_shards.push((snap.stock, snap.pending));
        }
        Ok(out)
    }

    /// A bearer token for this stack's front door, with these OAuth scopes.
    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        jwt::mint(&self.secret, sub, scopes)
    }
}

/// See [`Stack::store_figures`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFigures {
    pub quantity: i64,
    /// Σ saleable over the stock buckets (so are the two counters below).
    pub saleable: i64,
    /// Σ quantity over the stock buckets (moves change a bucket's, never the sum).
    pub buckets_quantity: i64,
    /// Buckets whose own identity does not hold (`quantity = saleable + reserved + confirmed`,
    /// each ≥ 0).
    pub broken_buckets: Vec<String>,
    pub reserved_counter: i64,
    pub confirmed_counter: i64,
    /// Σ quantity of CONFIRMED orders not tallied yet (still counted as reserved in their bucket).
    pub untallied: i64,
    /// Σ quantity by status over the collection's order records.
    pub by_status: std::collections::BTreeMap<String, i64>,
    pub redis_stock: Option<i64>,
    /// Σ qty of the pending (P) entries the time index lists, as the snapshot counts it.
    pub redis_pending: i64,
    /// Σ qty of all Redis entries in state P, read from every bucket (each must be indexed).
    pub redis_pending_entries: i64,
    /// Time slices still holding something unsettled.
    pub redis_open_slices: i64,
    /// Each stock bucket's saleable, bucket 0 first.
    pub bucket_saleable: Vec<i64>,
    /// Each cache shard's (stock, pending), shard 0 first (the sums are above).
    pub redis_shards: Vec<(Option<i64>, i64)>,
}

impl StoreFigures {
    /// The stock identities (docs/DESIGN.md#stock-identities): `quantity = saleable + Σ RESERVED +
    /// Σ CONFIRMED` from the order records themselves, each bucket's own identity and their
    /// quantities summing to the collection's, the counters agree with the records,
    /// `0 ≤ saleable ≤ quantity`, Redis stock never negative, its pending sum covers every P entry,
    /// and (when `at_rest`) Redis stock = saleable − pending. Every failure, by name.
    pub fn identity_failures(&self, at_rest: bool) -> Vec<String> {
        let reserved = self.by_status.get("RESERVED").copied().unwrap_or(0);
        let confirmed = self.by_status.get("CONFIRMED").copied().unwrap_or(0);
        let mut out = Vec::new();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(what);
            }
        };
        check(
            0 <= self.saleable && self.saleable <= self.quantity,
            format!("saleable {} outside 0..={}", self.saleable, self.quantity),
        );
        check(
            self.quantity == self.saleable + reserved + confirmed,
            format!(
                "quantity {} ≠ saleable {} + reserved {reserved} + confirmed {confirmed}",
                self.quantity, self.saleable
            ),
        );
        check(
            self.buckets_quantity == self.quantity,
            format!("buckets hold {} of quantity {}", self.buckets_quantity, self.quantity),
        );
        check(self.broken_buckets.is_empty(), format!("broken buckets: {:?}", self.broken_buckets));
        // A confirmed order counts as reserved in its bucket until the tally.
        let (r, c) = (reserved + self.untallied, confirmed - self.untallied);
        check(
            (self.reserved_counter, self.confirmed_counter) == (r, c),
            format!(
                "counters {}/{} ≠ records {r}/{c} ({} confirmed units untallied)",
                self.reserved_counter, self.confirmed_counter, self.untallied
            ),
        );
        check(
            self.redis_pending == self.redis_pending_entries,
            format!("a P entry is missing from the log: {} ≠ {}", self.redis_pending, self.redis_pending_entries),
        );
        check(self.redis_stock.is_none_or(|s| s >= 0), format!("Redis stock {:?} negative", self.redis_stock));
        if at_rest {
            check(
                self.redis_stock == Some(self.saleable - self.redis_pending),
                format!("Redis {:?} ≠ saleable {} − pending {}", self.redis_stock, self.saleable, self.redis_pending),
            );
            // And each cache shard against its own stock buckets.
            let shards = self.redis_shards.len() as u32;
            for (r, (stock, pending)) in self.redis_shards.iter().enumerate() {
                let saleable = flashstock::domain::buckets::shard_sum(&self.bucket_saleable, r as u32, shards);
                check(
                    *stock == Some(saleable - pending),
                    format!("shard {r}: Redis {stock:?} ≠ saleable {saleable} − pending {pending}"),
                );
            }
        }
        out
    }
}
