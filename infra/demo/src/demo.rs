//! The demo flash sale: many buyers at once against one collection through the front door, then
//! the second phase (some cancel, some let their payment window lapse, the rest pay), then the
//! numbers of both stores. Its last line is the verdict: `accepted … durable … confirmed … retried … drift …`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub buyers: usize,
    pub units: u64,
    pub concurrency: usize,
    /// Share (0–100) of reserved orders the buyer cancels.
    pub cancel_percent: u8,
    /// Share (0–100) of reserved orders never paid, left to time out.
    pub abandon_percent: u8,
    pub payment_window_seconds: u32,
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            buyers: 2_000,
            units: 200,
            concurrency: 256,
            cancel_percent: 10,
            abandon_percent: 10,
            payment_window_seconds: 20,
            progress: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub accepted: u64,
    pub refused: u64,
    pub errors: u64,
    pub by_code: HashMap<String, u64>,
    pub durable: u64,
    pub failed: u64,
    /// Accepted, never persisted, given up by reconciliation (CANCELLED, reason LOST).
    pub lost: u64,
    /// Messages reconciliation re-sent (known on a local stack only).
    pub resent: Option<u64>,
    pub cancelled: u64,
    pub timed_out: u64,
    pub confirmed: u64,
    /// Payments that arrived after their reservation had timed out (answered 409).
    pub late_payments: u64,
    pub final_state: Value,
    pub drift: i64,
    pub try_seconds: f64,
    /// Answers marked `retryable` (503, 429) the buyers retried, as a storefront does.
    pub retried: u64,
}

impl DemoReport {
    pub fn verdict(&self) -> String {
        format!(
            "accepted {} · refused {} · durable {}{} · given up {} · cancelled {} · timed out {} · confirmed {} · retried {} · drift {}",
            self.accepted,
            self.refused,
            self.durable,
            self.resent.map_or_else(String::new, |n| format!(" (re-sent {n})")),
            self.lost,
            self.cancelled,
            self.timed_out,
            self.confirmed,
            self.retried,
            self.drift
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Cancel,
    Abandon,
    Pay,
}

enum Journey {
    Failed,
    /// Never persisted; reconciliation gave it up (LOST) and returned the stock.
    Lost,
    Cancelled,
    Confirmed,
    PaidTooLate,
    Abandoned(String, String),
}

/// One buyer after an accepted Try: poll until durable, then follow the plan.
async fn journey(client: &Client, collection: &str, user: &str, order: &str, plan: Plan) -> anyhow::Result<Journey> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let path = format!("/v1/collections/{collection}/reservations/{order}");
    loop {
        let (_, v) = client.call(reqwest::Method::GET, &path, user, &[], None).await?;
        match v.get("status").and_then(Value::as_str) {
            Some("RESERVED") => break,
            Some("CANCELLED") if v.get("reason").and_then(Value::as_str) == Some("LOST") => return Ok(Journey::Lost),
            Some("FAILED" | "CANCELLED") => return Ok(Journey::Failed),
            _ if Instant::now() > deadline => anyhow::bail!("{order} never became durable: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    match plan {
        Plan::Abandon => Ok(Journey::Abandoned(user.to_owned(), order.to_owned())),
        Plan::Cancel => {
            let (s, v) = client.call(reqwest::Method::POST, &format!("{path}/cancel"), user, &[], None).await?;
            anyhow::ensure!(s == 200, "cancel {order}: {s} {v}");
            Ok(Journey::Cancelled)
        }
        Plan::Pay => {
            let (s, v) = client
                .call(
                    reqwest::Method::POST,
                    &format!("{path}/confirm"),
                    "payments",
                    &[flashstock::http::auth::CONFIRM_SCOPE],
                    Some(json!({ "buyerId": user })),
                )
                .await?;
            match (s, v.get("code").and_then(Value::as_str)) {
                (200, _) => Ok(Journey::Confirmed),
                (409, Some("ALREADY_CANCELLED")) => Ok(Journey::PaidTooLate),
                _ => anyhow::bail!("confirm {order}: {s} {v}"),
            }
        }
    }
}

/// The route a path is on, without its ids (for counting answers by route).
fn route_of(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("cancel") => "cancel",
        Some("confirm") => "confirm",
        Some("reservations") => "try",
        Some("warmup") => "warm-up",
        _ if path.contains("/reservations/") => "status",
        _ => "admin",
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    secret: String,
    /// Answers marked `retryable` that were retried (each retry counted), by what was asked and
    /// the answer's code.
    retried: std::sync::Mutex<HashMap<String, u64>>,
}

/// Retries of one call answered `retryable` before its answer stands.
const RETRIES: u32 = 5;

impl Client {
    /// One request as a storefront sends it: an answer marked `retryable` (503, 429) is retried
    /// after a jittered backoff (0.1 s doubling to 1.6 s, or the answer's `Retry-After`), at most
    /// [`RETRIES`] times; each retry is counted.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        sub: &str,
        scopes: &[&str],
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let token = flashstock_local::jwt::mint(&self.secret, sub, scopes);
        let mut attempt = 0;
        loop {
            let mut req = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&token);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .map(Duration::from_secs);
            let v = resp.json::<Value>().await.unwrap_or(Value::Null);
            let retryable = v.get("retryable").and_then(Value::as_bool) == Some(true);
            if !retryable || attempt >= RETRIES {
                return Ok((status, v));
            }
            let what = format!(
                "{method} {} {status} {}",
                route_of(path),
                v.get("code").and_then(Value::as_str).unwrap_or("?")
            );
            if let Ok(mut r) = self.retried.lock() {
                *r.entry(what).or_default() += 1;
            }
            let backoff = Duration::from_millis(100 << attempt);
            let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
            tokio::time::sleep(retry_after.unwrap_or(backoff + jitter)).await;
            attempt += 1;
        }
    }
}

fn bar(len: u64, msg: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_owned());
    pb
}

/// Runs the flash sale against the front door at `base`.
pub async fn run(base: &str, secret: &str, opts: &DemoOptions) -> anyhow::Result<DemoReport> {
    let client = Arc::new(Client {
        http: reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?,
        base: base.trim_end_matches('/').to_owned(),
        secret: secret.to_owned(),
        retried: std::sync::Mutex::new(HashMap::new()),
    });
    let collection = format!("demo-{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = [flashstock::http::auth::ADMIN_SCOPE];
    let (s, v) = client
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/collections/{collection}"),
            "operator",
            &admin,
            Some(json!({ "quantity": opts.units, "paymentWindowSeconds": opts.payment_window_seconds })),
        )
        .await?;
    anyhow::ensure!(s == 201, "create collection: {s} {v}");
    let (s, v) = client
        .call(reqwest::Method::POST, &format!("/v1/admin/collections/{collection}/warmup"), "operator", &admin, None)
        .await?;
    anyhow::ensure!(s == 200, "warm-up: {s} {v}");
    println!("collection {collection}: {} units, {} buyers", opts.units, opts.buyers);

    // Phase one: every buyer tries at once.
    let pb = bar(opts.buyers as u64, "try", opts.progress);
    let start = Instant::now();
    let results: Vec<(String, String, u16, Value)> = futures::stream::iter(0..opts.buyers)
        .map(|i| {
            let client = client.clone();
            let collection = collection.clone();
            let pb = pb.clone();
            async move {
                let user = format!("buyer-{i}");
                let order = format!("{collection}-o{i}");
                let body = json!({ "orderId": order, "quantity": 1 });
                let r = client
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/collections/{collection}/reservations"),
                        &user,
                        &[],
                        Some(body),
                    )
                    .await;
                pb.inc(1);
                match r {
                    Ok((s, v)) => (user, order, s, v),
                    Err(e) => (user, order, 0, json!({ "code": e.to_string() })),
                }
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    pb.finish();
    let mut report = DemoReport { try_seconds: start.elapsed().as_secs_f64(), ..Default::default() };
    let mut accepted: Vec<(String, String)> = Vec::new();
    for (user, order, s, v) in results {
        match s {
            202 => {
                report.accepted += 1;
                accepted.push((user, order));
            }
            409 => report.refused += 1,
            _ => report.errors += 1,
        }
        let code = v.get("code").and_then(Value::as_str).unwrap_or(if s == 202 { "ACCEPTED" } else { "?" });
        *report.by_code.entry(code.to_owned()).or_default() += 1;
    }
    println!(
        "tries: {} accepted, {} refused, {} errors in {:.2}s ({:.0}/s) {:?}",
        report.accepted,
        report.refused,
        report.errors,
        report.try_seconds,
        opts.buyers as f64 / report.try_seconds.max(1e-9),
        report.by_code
    );

    // Each accepted buyer polls until the order is durable, then at once cancels, abandons (lets
    // the payment window lapse) or pays — all buyers concurrently, as a storefront would.
    let n = accepted.len();
    let n_cancel = n * usize::from(opts.cancel_percent) / 100;
    let n_abandon = n * usize::from(opts.abandon_percent) / 100;
    let pb = bar(n as u64, "2nd phase", opts.progress);
    let outcomes: Vec<anyhow::Result<Journey>> = futures::stream::iter(accepted.into_iter().enumerate())
        .map(|(i, (user, order))| {
            let client = client.clone();
            let pb = pb.clone();
            let collection = collection.clone();
            let plan = if i < n_cancel {
                Plan::Cancel
            } else if i < n_cancel + n_abandon {
                Plan::Abandon
            } else {
                Plan::Pay
            };
            async move {
                let r = journey(&client, &collection, &user, &order, plan).await;
                pb.inc(1);
                r
            }
        })
        .buffer_unordered(opts.concurrency.min(64))
        .collect()
        .await;
    pb.finish();
    let mut abandoned = Vec::new();
    for o in outcomes {
        match o? {
            Journey::Failed => report.failed += 1,
            Journey::Lost => report.lost += 1,
            Journey::Cancelled => {
                report.durable += 1;
                report.cancelled += 1
            }
            Journey::Confirmed => {
                report.durable += 1;
                report.confirmed += 1
            }
            Journey::PaidTooLate => {
                report.durable += 1;
                report.timed_out += 1;
                report.late_payments += 1
            }
            Journey::Abandoned(user, order) => {
                report.durable += 1;
                abandoned.push((user, order))
            }
        }
    }
    if !abandoned.is_empty() {
        println!(
            "waiting for {} unpaid reservations to time out ({} s window)…",
            abandoned.len(),
            opts.payment_window_seconds
        );
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(opts.payment_window_seconds) + 120);
    while !abandoned.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (user, order) in abandoned {
            let path = format!("/v1/collections/{collection}/reservations/{order}");
            let (_, v) = client.call(reqwest::Method::GET, &path, &user, &[], None).await?;
            if v.get("status").and_then(Value::as_str) == Some("CANCELLED") {
                report.timed_out += 1;
            } else {
                still.push((user, order));
            }
        }
        abandoned = still;
        if !abandoned.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    anyhow::ensure!(abandoned.is_empty(), "{} reservations did not time out", abandoned.len());

    // Let the stores settle, then read both.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = client
            .call(reqwest::Method::GET, &format!("/v1/admin/collections/{collection}"), "operator", &admin, None)
            .await?;
        report.drift = v.get("drift").and_then(Value::as_i64).unwrap_or(i64::MAX);
        let settled = v.get("pending").and_then(Value::as_i64) == Some(0);
        report.final_state = v;
        if (settled && report.drift == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("final state: {}", report.final_state);
    let retried = client.retried.lock().map(|r| r.clone()).unwrap_or_default();
    report.retried = retried.values().sum();
    if !retried.is_empty() {
        println!("retried: {retried:?}");
    }
    Ok(report)
}
