//! One explorer worker's deployment (its own Redis key prefix, DynamoDB table and SQS queues on
//! the local redis-server and moto) and how one schedule runs on it: set-up, the operations under
//! the controller, quiescence (retries of what died, queued messages delivered, reconciliation
//! past its threshold, twice; then every payment window over and reconciled again) and the
//! invariant checks after each quiescence.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use flashstock::adapters::redis_cache::Conn;
use flashstock::adapters::{DynamoLedger, RedisCache, SqsQueue};
use flashstock::app::cancel::Canceller;
use flashstock::app::reserve::ReserveInput;
use flashstock::app::{App, AppError, Settings};
use flashstock::domain::{CacheShard, CollectionId, CollectionSpec, OrderId, OrderKey, Status, UserId};
use flashstock::lambda::{persist_event, sqs_event, timers_event};
use flashstock::ports::prelude::*;
use flashstock::ports::{CacheState, TimeoutMessage};
use flashstock_local::provision::{self, Queues};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::gate::{Fault, Gate};
use crate::ports::Gated;
use crate::sched::{self, Dir, Drive, Script, Strategy};

/// The app as one Lambda instance runs it, on gated real adapters.
pub type GatedApp = App<Gated<RedisCache>, Gated<DynamoLedger>, Gated<SqsQueue>>;

/// Reconciliation's age threshold in every schedule (the production default).
pub const THRESHOLD_MS: i64 = 45_000;
/// Reconciliation's give-up deadline (the production default).
pub const GIVE_UP_MS: i64 = 1_500_000;
/// How long Redis keeps settled orders (the production default).
pub const RETENTION_MS: i64 = 86_400_000;
/// The explorer's collections' payment window.
pub const WINDOW_S: u32 = 60;
/// Persist's function timeout (the template's): an invocation still running past it is ended.
pub const PERSIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One operation of a schedule, as its trigger runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// The buyer's Try for order `i` (HTTP; a client retries it when it gets no answer).
    Try(usize),
    /// A Try for order `i` with a fault on one of its calls.
    TryFault(usize, &'static str, Fault),
    /// One persist invocation on one message of the reservation queue (SQS redelivers what it
    /// did not finish); two of them are two consumers racing.
    Persist,
    /// One persist invocation on up to ten messages (a batch, chunked per stock bucket).
    PersistBatch,
    /// One persist invocation on up to this many messages (more than a chunk's 99).
    PersistMany(u32),
    /// The owner cancels order `i` (HTTP; retried when unanswered).
    Cancel(usize),
    /// The payment service confirms order `i` (HTTP; retried when unanswered).
    Confirm(usize),
    /// Order `i`'s payment-window timer fires (SQS; redelivered when it fails or dies).
    Timeout(usize),
    /// The expiry sweep (schedule), one payment window later.
    Sweep,
    /// Reconciliation of the schedule's collection (schedule; the next tick follows).
    Reconcile,
    /// A reconciliation run whose clock is this many seconds behind the others' (an invocation
    /// that started earlier and is still running, or a skewed clock).
    ReconcileBehind(u32),
    /// A reconciliation run whose clock is this many seconds ahead of the operations' (a skewed
    /// clock, or a run that starts while an earlier operation's invocation is still running).
    ReconcileAhead(u32),
    /// A reconciliation run at this many seconds after the set-up (its own clock, not the
    /// operations'): schedules that cross the re-send interval, the quiet stretch and the give-up.
    ReconcileAt(u32),
    /// [`OpKind::ReconcileAt`] with a fault on one of its calls.
    ReconcileAtFault(u32, &'static str, Fault),
    /// The admin's warm-up (HTTP; retried when unanswered).
    WarmUp,
    /// The admin raises the collection's cache shards to this count (HTTP; retried when
    /// unanswered). Every other operation's instance read the settings before it.
    Raise(u32),
}

impl OpKind {
    pub fn order(self) -> Option<usize> {
        match self {
            OpKind::Try(i) | OpKind::TryFault(i, ..) | OpKind::Cancel(i) | OpKind::Confirm(i) | OpKind::Timeout(i) => {
                Some(i)
            }
            _ => None,
        }
    }

    pub fn name(self) -> String {
        match self {
            OpKind::Try(i) => format!("try#{i}"),
            OpKind::TryFault(i, label, f) => format!("try#{i}[{label}:{f:?}]"),
            OpKind::Persist => "persist".into(),
            OpKind::PersistBatch => "persist-batch".into(),
            OpKind::PersistMany(n) => format!("persist-{n}"),
            OpKind::Cancel(i) => format!("cancel#{i}"),
            OpKind::Confirm(i) => format!("confirm#{i}"),
            OpKind::Timeout(i) => format!("timeout#{i}"),
            OpKind::Sweep => "sweep".into(),
            OpKind::Reconcile => "reconcile".into(),
            OpKind::ReconcileBehind(s) => format!("reconcile-{s}s-behind"),
            OpKind::ReconcileAhead(s) => format!("reconcile-{s}s-ahead"),
            OpKind::ReconcileAt(s) => format!("reconcile-at-{s}s"),
            OpKind::ReconcileAtFault(s, label, f) => format!("reconcile-at-{s}s[{label}:{f:?}]"),
            OpKind::WarmUp => "warm-up".into(),
            OpKind::Raise(n) => format!("raise-to-{n}"),
        }
    }

    /// Whether its trigger runs it again after it died (HTTP client retry, SQS redelivery).
    fn retried(self) -> bool {
        !matches!(
            self,
            OpKind::Persist
                | OpKind::PersistBatch
                | OpKind::PersistMany(_)
                | OpKind::Reconcile
                | OpKind::ReconcileBehind(_)
                | OpKind::ReconcileAhead(_)
                | OpKind::ReconcileAt(_)
                | OpKind::ReconcileAtFault(..)
                | OpKind::Sweep
        )
    }
}

/// A set-up step, run before the operations (ungated unless it dies on purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Op(OpKind),
    /// The operation runs until it reaches the call with this label and dies there.
    DiesAt(OpKind, &'static str),
    /// Redis loses the collection's stock key (a cache restart).
    LoseStock,
    /// The operation runs at this many seconds after the set-up began (a Try accepted later).
    OpAt(u32, OpKind),
    /// The reservation queue loses its messages.
    LoseMessages,
    /// Reconciliation runs once the retention has passed (it trims settled orders).
    Trim,
    /// Redis's stock is off by this many units (a failover lost acknowledged writes): drift that
    /// reconciliation must repair, race-free.
    SkewStock(i64),
    /// SQS delivers order `i`'s message again (at-least-once).
    Redeliver(usize),
}

/// When the operations run, relative to the set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Past reconciliation's threshold for what the set-up did: what it finds with no durable
    /// record it heals forward (re-sends).
    AfterThreshold,
    /// Past reconciliation's give-up deadline: a message still undelivered (or lost) by then is
    /// given up, and its order may end LOST.
    AfterGiveUp,
    /// Past the retention of settled orders (trim).
    AfterRetention,
}

/// A scenario: a collection, its orders, a set-up and the operations to interleave.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub quantity: u64,
    pub per_user_limit: Option<u32>,
    /// Stock buckets of the collection (1: no moves; more: buyers homed on a bucket that holds
    /// none make persist move units first).
    pub buckets: u32,
    /// Cache shards of the collection (dividing `buckets`): 1, or more to run each buyer's Redis
    /// state on the shard of their home bucket.
    pub shards: u32,
    /// Reconciliation's threshold in this scenario's operations ([`THRESHOLD_MS`] but for the
    /// schedules that check a timing rule at its floor).
    pub threshold_ms: i64,
    /// Reconciliation's give-up deadline in this scenario ([`GIVE_UP_MS`] but for the schedules
    /// that check a timing rule at its floor).
    pub give_up_ms: i64,
    /// Unsettled entries a reconciliation run examines (the production limit but for the
    /// schedules that check what the limit takes first).
    pub entries_per_run: usize,
    /// Orders that may end LOST although the scenario's time is not past the give-up (its
    /// `ReconcileAt` runs cross it): an order whose lost message no run re-sent in time.
    pub may_end_lost: Vec<usize>,
    /// Every stock bucket's write turn is held elsewhere throughout the operations: writers wait
    /// for it as long as their budgets allow (real time), then write without it.
    pub turns_held: bool,
    /// Order `i`: (buyer index, quantity).
    pub orders: Vec<(usize, u32)>,
    /// Every order uses one order id (each buyer's own reservation): every Try must end
    /// accepted, whatever the other buyers did with that id (buyer isolation, I7).
    pub shared_order_id: bool,
    /// Orders some Try must accept: the scenario holds a unit for each somewhere in the
    /// collection, whichever cache shard (I7).
    pub must_accept: Vec<usize>,
    pub setup: Vec<Setup>,
    pub ops: Vec<OpKind>,
    pub when: When,
}

/// What one operation answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub op: String,
    pub order: Option<usize>,
    /// HTTP status as the API would answer (200 for consumer and schedule runs).
    pub status: u16,
    pub code: String,
    pub body: Value,
    /// Schedule clock at its first step and at its answer.
    pub started: u64,
    pub ended: u64,
    /// The Try answered "nothing was taken".
    pub nothing_taken: bool,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// I1 … I9, or STUCK.
    pub invariant: &'static str,
    pub detail: String,
}

/// The result of one schedule.
#[derive(Debug, Clone)]
pub struct Run {
    pub drive: Drive,
    pub answers: Vec<Answer>,
    pub violations: Vec<Violation>,
}

/// Per-schedule state shared by its operations.
struct Sched {
    collection: CollectionId,
    orders: Vec<OrderKey>,
    quantities: Vec<u32>,
    t0: i64,
    /// The operations run past the give-up deadline: only then may an accepted order end LOST,
    /// and only if no Try answered 202 for it from the operations on (those promise it anew).
    gives_up: bool,
    /// Orders a schedule crossing the give-up may end LOST (their message lost, never re-sent).
    may_end_lost: Vec<usize>,
    /// When the operations run (their clock): an order none of the set-up made durable became
    /// durable at or after it.
    ops_at: i64,
    /// The orders durable once the set-up was done.
    durable_in_setup: Mutex<Vec<OrderKey>>,
    /// The logical clock when the operations started.
    ops_from: AtomicU64,
    /// The set-up skews Redis's stock on purpose (only then may reconciliation repair drift).
    skewed: bool,
    /// Every order uses one order id, each its own buyer's: every Try must end accepted.
    isolated: bool,
    /// Orders some Try must accept (a unit is held for each somewhere).
    must_accept: Vec<usize>,
    /// The collection has a per-user limit (what Redis holds per buyer matters only then).
    limited: bool,
    /// Its cache shards.
    shards: u32,
    clock: Arc<AtomicU64>,
    answers: Mutex<Vec<(Option<usize>, Answer)>>,
    /// Receipt handles of reservation messages received and not deleted.
    inflight: Mutex<Vec<String>>,
    /// Operations to run again (their trigger's retry).
    retry: Mutex<Vec<OpKind>>,
    /// The warm instance that runs set-up and quiescence (ungated).
    ungated: GatedApp,
    /// Reconciliation's threshold, give-up and examination limit, and whether turns are held, in
    /// this schedule's operations.
    limits: Limits,
}

/// A scenario's own reconciliation settings.
#[derive(Debug, Clone, Copy)]
struct Limits {
    threshold_ms: i64,
    give_up_ms: i64,
    entries_per_run: usize,
    turns_held: bool,
}

impl Limits {
    fn of(sc: &Scenario) -> Self {
        Self {
            threshold_ms: sc.threshold_ms,
            give_up_ms: sc.give_up_ms,
            entries_per_run: sc.entries_per_run,
            turns_held: sc.turns_held,
        }
    }
}

impl Sched {
    fn op_time(&self, when: When) -> i64 {
        match when {
            When::AfterThreshold => self.t0 + THRESHOLD_MS + 1_000,
            When::AfterGiveUp => self.t0 + GIVE_UP_MS + THRESHOLD_MS + 1_000,
            When::AfterRetention => self.t0 + RETENTION_MS + THRESHOLD_MS + 1_000,
        }
    }
    /// The orders some operation (set-up included) asked about; the others never existed.
    fn touched(&self) -> Vec<usize> {
        let asked: Vec<Option<usize>> =
            self.answers.lock().map(|a| a.iter().map(|(_, a)| a.order).collect()).unwrap_or_default();
        (0..self.orders.len()).filter(|i| asked.contains(&Some(*i))).collect()
    }
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }
}

/// One worker's deployment.
pub struct World {
    pub name: String,
    redis: RedisCache,
    con: Conn,
    ledger: DynamoLedger,
    queue: SqsQueue,
    sqs: aws_sdk_sqs::Client,
    queues: Queues,
    settings: Settings,
    next: AtomicU64,
}

fn user_name(i: usize) -> String {
    format!("buyer-{i}")
}

impl World {
    /// Provisions `name`'s table and queues and connects to the local services named by
    /// `FLASHSTOCK_REDIS_URL` and the AWS endpoint variables (`infra/services.sh env`).
    pub async fn new(name: &str) -> anyhow::Result<Self> {
        Self::with_dynamodb(name, None).await
    }

    /// As [`World::new`], with DynamoDB at `endpoint` (a moto server of this worker's own: moto
    /// serves one DynamoDB request at a time, so workers sharing one wait on each other).
    pub async fn with_dynamodb(name: &str, endpoint: Option<&str>) -> anyhow::Result<Self> {
        let redis_url = std::env::var("FLASHSTOCK_REDIS_URL").map_err(|_| {
            anyhow::anyhow!("FLASHSTOCK_REDIS_URL unset: run through infra/explore.sh or infra/test.sh")
        })?;
        let sdk = flashstock::adapters::aws_sdk_config().await;
        let dynamo = match endpoint {
            Some(url) => aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(url).build(),
            ),
            None => aws_sdk_dynamodb::Client::new(&sdk),
        };
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let table = format!("{name}-table");
        provision::table(&dynamo, &table).await?;
        // A long visibility timeout: a message comes back only when the explorer says so.
        let queues = provision::queues(&sqs, name, 600).await?;
        let redis = RedisCache::connect(&redis_url, name, false).await?;
        let con = flashstock::adapters::redis_cache::connect(&redis_url, false).await?;
        Ok(Self {
            name: name.to_owned(),
            redis,
            con,
            ledger: DynamoLedger::new(dynamo, table),
            queue: SqsQueue::new(sqs.clone(), &queues.reservations, &queues.timeouts),
            sqs,
            queues,
            settings: Settings {
                sold_out_flag: std::time::Duration::from_millis(500),
                reconcile_threshold_ms: THRESHOLD_MS,
                reconcile_give_up_ms: GIVE_UP_MS,
                resend_interval_ms: 180_000,
                reconcile_quiet_ms: 906_000,
                fault_drop_message_percent: 0,
                order_retention_ms: RETENTION_MS,
                emit_emf: false,
                buyer_budget: None,
                default_per_user_limit: None,
                reconcile_budget: flashstock::config::RECONCILE_BUDGET_DEFAULT,
                write_turns: true,
                persist_turn_budget: std::time::Duration::from_secs(12),
                entries_per_run: flashstock::config::ENTRIES_PER_RUN,
            },
            next: AtomicU64::new(0),
        })
    }

    fn app(&self, gate: Option<Gate>, sc: &Limits) -> GatedApp {
        let mut cache = Gated::new(self.redis.clone(), gate.clone());
        cache.turns_held = sc.turns_held && gate.is_some();
        let settings = Settings {
            reconcile_threshold_ms: sc.threshold_ms,
            reconcile_give_up_ms: sc.give_up_ms,
            entries_per_run: sc.entries_per_run,
            ..self.settings.clone()
        };
        App::new(cache, Gated::new(self.ledger.clone(), gate.clone()), Gated::new(self.queue.clone(), gate), settings)
    }

    /// Runs one schedule of `sc` under `strategy` and checks every invariant after it.
    pub async fn run(self: &Arc<Self>, sc: &Scenario, strategy: &mut dyn Strategy) -> anyhow::Result<Run> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let collection = CollectionId::parse(&format!("c{n}"))?;
        let mut s = Sched {
            orders: sc
                .orders
                .iter()
                .enumerate()
                .map(|(i, (u, _))| -> anyhow::Result<OrderKey> {
                    let order = if sc.shared_order_id { format!("o{n}") } else { format!("o{n}x{i}") };
                    Ok(OrderKey::new(collection.clone(), UserId::parse(&user_name(*u))?, OrderId::parse(&order)?))
                })
                .collect::<anyhow::Result<_>>()?,
            quantities: sc.orders.iter().map(|(_, q)| *q).collect(),
            collection,
            t0: flashstock::now_ms(),
            gives_up: sc.when == When::AfterGiveUp,
            may_end_lost: sc.may_end_lost.clone(),
            ops_at: 0,
            durable_in_setup: Mutex::new(Vec::new()),
            ops_from: AtomicU64::new(u64::MAX),
            skewed: sc.setup.iter().any(|s| matches!(s, Setup::SkewStock(_))),
            isolated: sc.shared_order_id,
            must_accept: sc.must_accept.clone(),
            limited: sc.per_user_limit.is_some(),
            shards: sc.shards,
            clock: Arc::new(AtomicU64::new(1)),
            answers: Mutex::new(Vec::new()),
            inflight: Mutex::new(Vec::new()),
            retry: Mutex::new(Vec::new()),
            ungated: self.app(None, &Limits::of(sc)),
            limits: Limits::of(sc),
        };
        s.ops_at = s.op_time(sc.when);
        let s = Arc::new(s);
        self.discard_reservations().await?;
        let spec = CollectionSpec::parse(
            Some(sc.quantity as i64),
            sc.per_user_limit.map(i64::from),
            Some(i64::from(WINDOW_S)),
            Some(i64::from(sc.buckets)),
            Some(i64::from(sc.shards)),
        )?;
        s.ungated.create_collection(&s.collection, &spec, s.t0).await?;
        s.ungated.warm_up(&s.collection).await?;

        for step in &sc.setup {
            self.setup(&s, *step).await?;
        }
        let durable: Vec<OrderKey> =
            self.ledger.orders(&s.orders).await?.into_iter().filter(|r| r.took_stock).map(|r| r.key()).collect();
        if let Ok(mut d) = s.durable_in_setup.lock() {
            *d = durable;
        }
        let now = s.ops_at;
        s.ops_from.store(s.clock.load(Ordering::SeqCst), Ordering::SeqCst);
        let drive = self.drive(&s, &sc.ops, now, strategy).await;
        let mut violations = Vec::new();
        if let Some(why) = &drive.stuck {
            violations.push(Violation { invariant: "STUCK", detail: why.clone() });
        } else {
            violations.extend(self.quiesce(&s, now).await?);
        }
        let answers = s.answers.lock().map(|a| a.iter().map(|(_, a)| a.clone()).collect()).unwrap_or_default();
        violations.sort();
        violations.dedup();
        Ok(Run { drive, answers, violations })
    }

    async fn setup(self: &Arc<Self>, s: &Arc<Sched>, step: Setup) -> anyhow::Result<()> {
        // A set-up that loses or skews stock does it on shard 0.
        let stock = self.redis.keys(&s.collection, 0).stock(s.shards);
        let mut con = self.con.clone();
        match step {
            Setup::Op(OpKind::Persist | OpKind::PersistBatch) => self.drain(s, s.t0).await?,
            Setup::Op(kind) => self.op(&s.ungated, s, kind, s.t0, None, None).await,
            Setup::OpAt(at, kind) => self.op(&s.ungated, s, kind, s.t0 + i64::from(at) * 1000, None, None).await,
            Setup::DiesAt(kind, label) => {
                let mut script = Script::new(&[Dir::Until(0, label), Dir::Kill(0)]);
                self.drive(s, &[kind], s.t0, &mut script).await;
                // A dead consumer's messages come back after the visibility timeout.
                self.release_inflight(s).await;
            }
            Setup::LoseStock => redis::cmd("DEL").arg(&stock).query_async::<()>(&mut con).await?,
            Setup::SkewStock(by) => redis::cmd("INCRBY").arg(&stock).arg(by).query_async::<()>(&mut con).await?,
            Setup::LoseMessages => self.discard_reservations().await?,
            Setup::Trim => {
                let at = s.op_time(When::AfterRetention) - 500;
                s.ungated.reconcile_collections(std::slice::from_ref(&s.collection), at).await;
            }
            Setup::Redeliver(i) => {
                let rec = self.ledger.order(&s.orders[i]).await?;
                // As the set-up's Try published it (Redis keeps whole seconds).
                let accepted_at_ms = rec.map_or(s.t0.div_euclid(1000) * 1000, |r| r.accepted_at_ms);
                let msg = flashstock::ports::ReservationMessage::new(&s.orders[i], s.quantities[i], accepted_at_ms);
                flashstock::ports::Queue::send_reservation(&self.queue, &msg).await?;
            }
        }
        Ok(())
    }

    /// Runs `ops` concurrently under `strategy`, one step at a time.
    async fn drive(self: &Arc<Self>, s: &Arc<Sched>, ops: &[OpKind], now: i64, strategy: &mut dyn Strategy) -> Drive {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for (i, kind) in ops.iter().copied().enumerate() {
            let faults: Vec<(&'static str, Fault)> = match kind {
                OpKind::TryFault(_, label, f) | OpKind::ReconcileAtFault(_, label, f) => vec![(label, f)],
                _ => Vec::new(),
            };
            let gate = Gate::new(i, tx.clone(), &faults, s.clock.clone());
            let app = self.app(Some(gate.clone()), &s.limits);
            // A warm instance: it knows the collection's settings before the operation starts.
            let _ = app.spec(&s.collection).await;
            gate.arm();
            let (me, sched) = (self.clone(), s.clone());
            handles.push(tokio::spawn(async move {
                me.op(&app, &sched, kind, now, Some(i), Some(&gate)).await;
                gate.done();
            }));
        }
        drop(tx);
        let may_die: Vec<bool> = ops.iter().map(|_| true).collect();
        let names: Vec<String> = ops.iter().enumerate().map(|(i, k)| format!("{}.{}", i, k.name())).collect();
        let drive = sched::drive(rx, &names, handles, strategy, &may_die, 1).await;
        // What died loses its answer; its trigger runs it again later.
        if let Ok(mut answers) = s.answers.lock() {
            answers.retain(|(op, _)| !op.is_some_and(|o| drive.killed.contains(&o)));
        }
        if let Ok(mut retry) = s.retry.lock() {
            retry.extend(drive.killed.iter().map(|&k| ops[k]).filter(|k| k.retried()));
        }
        drive
    }

    /// Runs one operation and records its answer.
    async fn op(&self, app: &GatedApp, s: &Sched, kind: OpKind, now: i64, index: Option<usize>, gate: Option<&Gate>) {
        let started_ungated = s.tick();
        let (status, code, body, nothing_taken) = match kind {
            OpKind::Try(i) | OpKind::TryFault(i, ..) => {
                let input = ReserveInput {
                    collection: s.collection.clone(),
                    order: s.orders[i].order.clone(),
                    user: s.orders[i].user.clone(),
                    quantity: i64::from(s.quantities[i]),
                };
                match app.reserve(input, now).await {
                    Ok(a) => (202, "ACCEPTED".to_owned(), json!(a), false),
                    Err(e) => {
                        // The answer the code gave before RESERVATION_UNCONFIRMED existed.
                        // The answer the code gave before RESERVATION_UNCONFIRMED existed.
                        let nothing = matches!(e, AppError::Unavailable(_));
                        let (st, c, b) = problem(&e);
                        (st, c, b, nothing)
                    }
                }
            }
            OpKind::Persist | OpKind::PersistBatch | OpKind::PersistMany(_) => {
                let started = std::time::Instant::now();
                match self.persist_once(app, s, now, gate, batch(kind)).await {
                    // Lambda would have ended the invocation: nothing after its timeout happens.
                    Ok(v) if started.elapsed() > PERSIST_TIMEOUT => (
                        500,
                        "PERSIST_TIMED_OUT".to_owned(),
                        json!({ "ran_s": started.elapsed().as_secs_f64(), "batch": v }),
                        false,
                    ),
                    Ok(v) => (200, "BATCH".to_owned(), v, false),
                    Err(e) => (500, "PERSIST_ERROR".to_owned(), json!(e.to_string()), false),
                }
            }
            OpKind::Cancel(i) => match app.cancel(&s.orders[i], Canceller::Buyer, now).await {
                Ok(c) => (200, c.view.status.as_str().to_owned(), json!(c.view), false),
                Err(e) => with_false(problem(&e)),
            },
            OpKind::Confirm(i) => match app.confirm(&s.orders[i], now).await {
                Ok(v) => (200, v.status.as_str().to_owned(), json!(v), false),
                Err(e) => with_false(problem(&e)),
            },
            OpKind::Timeout(i) => {
                let t = TimeoutMessage::new(&s.orders[i], now / 1000);
                let (resp, report) = timers_event(app, sqs_event(&[("t".to_owned(), json!(t).to_string())]), now).await;
                if !resp.batch_item_failures.is_empty()
                    && let Ok(mut r) = s.retry.lock()
                {
                    r.push(kind); // SQS redelivers a failed timer
                }
                (200, "TIMERS".to_owned(), json!(report), false)
            }
            OpKind::Sweep => match app.sweep_expired(now + i64::from(WINDOW_S) * 1000 + 1_000, 1_000).await {
                Ok(r) => (200, "SWEPT".to_owned(), json!(r), false),
                Err(e) => with_false(problem(&e)),
            },
            OpKind::Reconcile | OpKind::ReconcileBehind(_) | OpKind::ReconcileAhead(_) => {
                let behind = match kind {
                    OpKind::ReconcileBehind(b) => i64::from(b) * 1000,
                    OpKind::ReconcileAhead(a) => -i64::from(a) * 1000,
                    _ => 0,
                };
                let r = app.reconcile_collections(std::slice::from_ref(&s.collection), now - behind).await;
                (200, "RECONCILED".to_owned(), json!(r.collections), false)
            }
            OpKind::ReconcileAt(at) | OpKind::ReconcileAtFault(at, ..) => {
                let r =
                    app.reconcile_collections(std::slice::from_ref(&s.collection), s.t0 + i64::from(at) * 1000).await;
                (200, "RECONCILED".to_owned(), json!(r.collections), false)
            }
            OpKind::WarmUp => match app.warm_up(&s.collection).await {
                Ok(c) => (200, "WARM".to_owned(), json!({ "cached": c }), false),
                Err(e) => with_false(problem(&e)),
            },
            OpKind::Raise(n) => match app.raise_cache_shards(&s.collection, i64::from(n), now).await {
                Ok(r) => (200, "RAISED".to_owned(), json!(r), false),
                Err(e) => with_false(problem(&e)),
            },
        };
        let started = gate.map(Gate::first_step).filter(|f| *f != u64::MAX).unwrap_or(started_ungated);
        let answer = Answer {
            op: kind.name(),
            order: kind.order(),
            status,
            code,
            body,
            started,
            ended: s.tick(),
            nothing_taken,
        };
        if let Ok(mut a) = s.answers.lock() {
            a.push((index, answer));
        }
    }

    /// One persist invocation: receive what is visible, run the handler, delete what it resolved.
    async fn persist_once(
        &self,
        app: &GatedApp,
        s: &Sched,
        now: i64,
        gate: Option<&Gate>,
        max: i32,
    ) -> anyhow::Result<Value> {
        if let Some(g) = gate {
            g.enter("sqs receive reservations").await;
        }
        let msgs = self.receive(max).await;
        if let Some(g) = gate {
            g.leave();
        }
        let msgs = msgs?;
        if msgs.is_empty() {
            return Ok(json!({ "received": 0 }));
        }
        let mut records = Vec::new();
        let mut receipts = HashMap::new();
        for m in &msgs {
            let id = m.message_id.clone().unwrap_or_default();
            let rh = m.receipt_handle.clone().unwrap_or_default();
            if let Ok(mut inflight) = s.inflight.lock() {
                inflight.push(rh.clone());
            }
            receipts.insert(id.clone(), rh);
            records.push((id, m.body.clone().unwrap_or_default()));
        }
        let resp = persist_event(app, sqs_event(&records), now).await;
        let failed: Vec<String> = resp.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        let done: Vec<&String> = receipts.iter().filter(|(id, _)| !failed.contains(id)).map(|(_, rh)| rh).collect();
        if !done.is_empty() {
            if let Some(g) = gate {
                g.enter("sqs delete reservations").await;
            }
            let res = self.delete(&done.iter().map(|rh| rh.as_str()).collect::<Vec<_>>()).await;
            if let Some(g) = gate {
                g.leave();
            }
            res?;
            if let Ok(mut inflight) = s.inflight.lock() {
                inflight.retain(|rh| !done.contains(&rh));
            }
        }
        Ok(json!({ "received": msgs.len(), "failed": failed.len() }))
    }

    /// Receives up to `max` visible reservation messages (no long poll), ten per request (SQS's
    /// limit), until `max` or none is left.
    async fn receive(&self, max: i32) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
        let mut all = Vec::new();
        while (all.len() as i32) < max {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.reservations)
                .max_number_of_messages((max - all.len() as i32).min(10))
                .wait_time_seconds(0)
                .send()
                .await?;
            let got = out.messages.unwrap_or_default();
            if got.is_empty() {
                break;
            }
            all.extend(got);
        }
        Ok(all)
    }

    /// Deletes reservation messages by receipt handle.
    async fn delete(&self, receipts: &[&str]) -> anyhow::Result<()> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, rh)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(*rh).build())
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queues.reservations)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok(())
    }

    /// Deletes whatever the reservation queue holds (moto allows one purge a minute).
    async fn discard_reservations(&self) -> anyhow::Result<()> {
        loop {
            let msgs = self.receive(10).await?;
            if msgs.is_empty() {
                return Ok(());
            }
            let receipts: Vec<&str> = msgs.iter().filter_map(|m| m.receipt_handle.as_deref()).collect();
            self.delete(&receipts).await?;
        }
    }

    /// The visibility timeout of every received, undeleted message elapses.
    async fn release_inflight(&self, s: &Sched) {
        let receipts: Vec<String> = s.inflight.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        for rh in receipts {
            let _ = self
                .sqs
                .change_message_visibility()
                .queue_url(&self.queues.reservations)
                .receipt_handle(rh)
                .visibility_timeout(0)
                .send()
                .await;
        }
    }

    /// Delivers the reservation queue to persist until it is empty (failed messages come back).
    async fn drain(&self, s: &Sched, now: i64) -> anyhow::Result<()> {
        for _ in 0..20 {
            let v = self.persist_once(&s.ungated, s, now, None, 10).await?;
            self.release_inflight(s).await;
            if v["received"] == 0 {
                return Ok(());
            }
        }
        anyhow::bail!("the reservation queue did not drain")
    }

    /// Lets the system come to rest and checks the invariants, twice: after retries, deliveries and
    /// two reconciliations; then after every payment window ran out and reconciliation ran again.
    async fn quiesce(&self, s: &Sched, now: i64) -> anyhow::Result<Vec<Violation>> {
        let mut v = Vec::new();
        let app = &s.ungated;
        let retries: Vec<OpKind> = s.retry.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        for kind in retries {
            match kind {
                OpKind::TryFault(i, ..) => self.op(app, s, OpKind::Try(i), now + 1_000, None, None).await,
                k => self.op(app, s, k, now + 1_000, None, None).await,
            }
        }
        self.release_inflight(s).await;
        let q1 = now + THRESHOLD_MS + 5_000;
        self.drain(s, q1).await?;
        // Reconciliation re-sends what has no durable record (or gives it up): deliver what it
        // sent, then reconcile again.
        // As scheduled runs do: an idle collection is skipped (a skip taken wrongly leaves
        // something unhealed or untallied, and the checks below see it).
        for k in 0..2 {
            let r = app.reconcile_scheduled(std::slice::from_ref(&s.collection), q1 + k, app.clock.instant()).await;
            v.extend(reconcile_violations(&r, s.skewed));
            self.drain(s, q1 + k).await?;
        }
        v.extend(self.check(s, "after delivery and reconciliation").await?);

        let qt = q1 + THRESHOLD_MS + i64::from(WINDOW_S) * 1000 + 5_000;
        for i in s.touched() {
            let t = TimeoutMessage::new(&s.orders[i], qt / 1000);
            let (resp, _) = timers_event(app, sqs_event(&[(format!("t{i}"), json!(t).to_string())]), qt).await;
            if !resp.batch_item_failures.is_empty() {
                v.push(Violation { invariant: "I4", detail: format!("order {i}'s timer fails at quiescence") });
            }
        }
        let qr = qt + THRESHOLD_MS + 5_000;
        let r = app.reconcile_scheduled(std::slice::from_ref(&s.collection), qr, app.clock.instant()).await;
        v.extend(reconcile_violations(&r, s.skewed));
        v.extend(self.check(s, "after every payment window").await?);
        // Every confirm is tallied by now (a run that skipped the collection as idle while a
        // confirm waited would leave it untallied).
        let buckets = self.ledger.collection(&s.collection).await?.map_or(0, |c| c.buckets.len() as u32);
        for b in 0..buckets {
            let left = self.ledger.untallied(&s.collection, b, 1).await?;
            if !left.is_empty() {
                v.push(Violation { invariant: "I1", detail: format!("bucket {b} holds confirms never tallied") });
            }
        }
        Ok(v)
    }

    /// Checks I1–I9 on both stores and on every answer.
    async fn check(&self, s: &Sched, when: &str) -> anyhow::Result<Vec<Violation>> {
        let mut v = Vec::new();
        let mut bad = |inv: &'static str, detail: String| {
            v.push(Violation { invariant: inv, detail: format!("{when}: {detail}") });
        };
        let col = self.ledger.collection(&s.collection).await?.ok_or_else(|| anyhow::anyhow!("collection gone"))?;
        let l = col.levels;
        let records: HashMap<OrderKey, flashstock::ports::OrderRecord> =
            self.ledger.orders(&s.orders).await?.into_iter().map(|r| (r.key(), r)).collect();
        let held = |st: Status, untallied: bool| -> i64 {
            records.values().filter(|r| r.status == st && r.untallied == untallied).map(|r| i64::from(r.quantity)).sum()
        };
        // A confirm writes its order alone: its units count as reserved in the bucket until the
        // tally moves them.
        let (reserved, confirmed) =
            (held(Status::Reserved, false) + held(Status::Confirmed, true), held(Status::Confirmed, false));
        // I1
        if !(0 <= l.saleable && l.saleable <= l.quantity) || l.quantity != l.saleable + reserved + confirmed {
            bad(
                "I1",
                format!(
                    "quantity {} saleable {} Σreserved {reserved} Σconfirmed {confirmed} (counters {} / {})",
                    l.quantity, l.saleable, l.reserved, l.confirmed
                ),
            );
        }
        if (l.reserved, l.confirmed) != (reserved, confirmed) {
            bad("I1", format!("counters {} / {} but records {reserved} / {confirmed}", l.reserved, l.confirmed));
        }
        // I9: no persist invocation ran past its function's timeout (Lambda would have ended it).
        let timed_out: Vec<Value> = s
            .answers
            .lock()
            .map(|a| a.iter().filter(|(_, a)| a.code == "PERSIST_TIMED_OUT").map(|(_, a)| a.body.clone()).collect())
            .unwrap_or_default();
        for b in timed_out {
            bad("I9", format!("a persist invocation ran past its {} s timeout: {b}", PERSIST_TIMEOUT.as_secs()));
        }
        // I8: every order that became durable had a whole payment window from then on (a healed-
        // forward order too); the operations' clock bounds when one not durable after set-up did.
        let early = s.durable_in_setup.lock().map(|d| d.clone()).unwrap_or_default();
        for r in records.values().filter(|r| r.took_stock && !early.contains(&r.key())) {
            let least = (s.ops_at / 1000) + i64::from(WINDOW_S);
            if r.expires_at.is_some_and(|e| e < least) {
                bad(
                    "I8",
                    format!(
                        "{} must be paid by {:?}, less than a window after it became durable ({least})",
                        r.key(),
                        r.expires_at
                    ),
                );
            }
        }
        // I2, on every cache shard against its stock buckets.
        // (By DynamoDB's layout: a scenario may raise the cache shards.)
        let shards = col.spec.cache_shards;
        for shard in 0..shards {
            let snap = self.redis.snapshot(&s.collection, CacheShard::new(shard, shards)).await?;
            let saleable = col.shard_levels(shard).saleable;
            if snap.stock != Some(saleable) || snap.pending != 0 || snap.open_slices != 0 {
                bad(
                    "I2",
                    format!(
                        "shard {shard}: redis stock {:?} (pending {}, open time slices {}) but DynamoDB saleable {}",
                        snap.stock, snap.pending, snap.open_slices, saleable
                    ),
                );
            }
        }
        // I3
        // What each buyer holds by Redis's records (the per-user limit counts these).
        let mut counters: HashMap<String, i64> = HashMap::new();
        let entries = OrderCache::entries(&self.redis, &s.collection, col.spec.cache_shards, &s.orders).await?;
        for (o, e) in s.orders.iter().zip(entries) {
            if let Some(e) = e.filter(|e| matches!(e.state, CacheState::Pending | CacheState::Durable)) {
                *counters.entry(o.user.to_string()).or_default() += i64::from(e.quantity);
            }
        }
        let mut live: BTreeMap<String, i64> = BTreeMap::new();
        for r in records.values().filter(|r| r.status.holds_durable_stock()) {
            *live.entry(r.user.to_string()).or_default() += i64::from(r.quantity);
        }
        let mut users: Vec<&String> = counters.keys().chain(live.keys()).collect();
        users.sort();
        users.dedup();
        for u in users.into_iter().filter(|_| s.limited) {
            let (c, want) = (counters.get(u).copied().unwrap_or(0), live.get(u).copied().unwrap_or(0));
            if c != want {
                bad("I3", format!("{u} holds {c} by Redis's records, its live orders hold {want}"));
            }
        }
        // I4 – I6, per order
        let answers: Vec<Answer> =
            s.answers.lock().map(|a| a.iter().map(|(_, a)| a.clone()).collect()).unwrap_or_default();
        // I10: a lost stock key is rebuilt with the few unsettled orders of a scenario (their
        // units held back): warm-up answers the stock, never 503 for what is unsettled.
        for a in answers.iter().filter(|a| a.op == "warm-up" && a.status != 200) {
            bad("I10", format!("warm-up answered {} {}: {}", a.status, a.code, a.body));
        }
        let app = &s.ungated;
        for i in s.touched() {
            let order = &s.orders[i];
            let mine: Vec<&Answer> = answers.iter().filter(|a| a.order == Some(i)).collect();
            let accepted: Vec<&Answer> = mine.iter().copied().filter(|a| a.status == 202).collect();
            let status = app.status(order).await;
            let final_status = status.as_ref().ok().map(|v| v.status);
            if s.isolated && accepted.is_empty() && mine.iter().any(|a| a.op.starts_with("try")) {
                let got: Vec<&str> = mine.iter().map(|a| a.code.as_str()).collect();
                bad("I7", format!("buyer {}'s Try of a shared order id was never accepted: {got:?}", order.user));
            }
            if s.must_accept.contains(&i) && accepted.is_empty() {
                let got: Vec<&str> = mine.iter().map(|a| a.code.as_str()).collect();
                bad(
                    "I7",
                    format!("buyer {}'s Try was never accepted though a unit was left for it: {got:?}", order.user),
                );
            }
            let ops_from = s.ops_from.load(Ordering::SeqCst);
            let promised_again = accepted.iter().any(|a| a.op.starts_with("try") && a.started >= ops_from);
            if !accepted.is_empty() {
                match &status {
                    Err(e) => bad("I4", format!("order {i} was accepted, its owner now gets {}", e.code())),
                    Ok(view) => match view.status {
                        Status::Pending => bad("I4", format!("order {i} was accepted and is still PENDING")),
                        Status::Cancelled | Status::Failed if view.reason.is_none() => {
                            bad("I4", format!("order {i} ended {} with no reason", view.status.as_str()))
                        }
                        Status::Cancelled
                            if view.reason.as_deref() == Some("LOST")
                                && !s.gives_up
                                && !s.may_end_lost.contains(&i) =>
                        {
                            bad("I4", format!("order {i} was accepted and ended LOST before the give-up deadline"))
                        }
                        Status::Cancelled if view.reason.as_deref() == Some("LOST") && promised_again => {
                            bad("I4", format!("order {i} ended LOST after a Try past the give-up answered 202"))
                        }
                        _ => {}
                    },
                }
                if accepted.iter().any(|a| a.body != accepted[0].body) {
                    bad("I6", format!("order {i}'s accepted answers differ"));
                }
            }
            for c in mine.iter().filter(|a| a.op.starts_with("cancel") && a.status == 200) {
                if final_status != Some(Status::Cancelled) {
                    bad("I6", format!("order {i}'s cancel answered CANCELLED, it ended {final_status:?}"));
                }
                for t in accepted.iter().filter(|t| t.op.starts_with("try") && t.started > c.ended) {
                    bad("I5", format!("order {i}: a Try starting after its cancel answered was accepted ({})", t.op));
                }
            }
            if mine.iter().any(|a| a.op.starts_with("confirm") && a.status == 200)
                && final_status != Some(Status::Confirmed)
            {
                bad("I6", format!("order {i}'s confirm answered CONFIRMED, it ended {final_status:?}"));
            }
            if accepted.is_empty()
                && mine.iter().any(|a| a.nothing_taken)
                && final_status.is_some_and(Status::holds_durable_stock)
            {
                bad(
                    "I6",
                    format!("order {i} was answered \"nothing was taken\", yet it holds stock ({final_status:?})"),
                );
            }
        }
        Ok(v)
    }
}

fn batch(kind: OpKind) -> i32 {
    match kind {
        OpKind::PersistBatch => 10,
        OpKind::PersistMany(n) => n as i32,
        _ => 1,
    }
}

fn with_false((a, b, c): (u16, String, Value)) -> (u16, String, Value, bool) {
    (a, b, c, false)
}

fn problem(e: &AppError) -> (u16, String, Value) {
    (e.status().as_u16(), e.code().as_str().to_owned(), json!(e.to_string()))
}

fn reconcile_violations(r: &flashstock::app::reconcile::ReconcileReport, skewed: bool) -> Vec<Violation> {
    let mut v = Vec::new();
    for c in r.collections.values() {
        if let Some(d) = c.repaired_drift.filter(|_| !skewed) {
            v.push(Violation { invariant: "I2", detail: format!("reconciliation had to repair a drift of {d}") });
        }
        for e in &c.errors {
            v.push(Violation { invariant: "I2", detail: format!("reconciliation failed: {e}") });
        }
    }
    v
}
