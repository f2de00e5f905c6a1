//! A minimal Lambda Runtime API emulator: starts a function's real bootstrap binary against it,
//! hands it events, and reads back what it answered. The deploy tests invoke every bootstrap with
//! a real event of each of its triggers; the bench measures cold start and memory with it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use flashstock::config::{self, Config};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, oneshot};

/// The subset of the Runtime API a custom runtime uses.
#[derive(Default)]
struct Emulator {
    pending: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    first_poll: std::sync::Mutex<Option<Instant>>,
}

async fn next(State(e): State<Arc<Emulator>>) -> (HeaderMap, String) {
    if let Ok(mut first) = e.first_poll.lock() {
        first.get_or_insert_with(Instant::now);
    }
    loop {
        let notified = e.arrived.notified();
        if let Some((id, ev)) = e.pending.lock().await.pop_front() {
            let mut h = HeaderMap::new();
            let deadline = (flashstock::now_ms() + 30_000).to_string();
            let values = [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline),
                ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:fs".into()),
                ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".into()),
            ];
            for (k, v) in values {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            return (h, ev.to_string());
        }
        notified.await;
    }
}

async fn answer(e: &Emulator, id: &str, body: String, ok: bool) -> StatusCode {
    if let Some(tx) = e.waiting.lock().await.remove(id) {
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let _ = tx.send(if ok { Ok(v) } else { Err(v) });
    }
    StatusCode::ACCEPTED
}

async fn respond(State(e): State<Arc<Emulator>>, UrlPath(id): UrlPath<String>, body: String) -> StatusCode {
    answer(&e, &id, body, true).await
}

async fn error(State(e): State<Arc<Emulator>>, UrlPath(id): UrlPath<String>, body: String) -> StatusCode {
    answer(&e, &id, body, false).await
}

async fn init_error(body: String) -> StatusCode {
    tracing::error!(%body, "init error");
    StatusCode::ACCEPTED
}

/// The environment a function gets from the template, for a local deployment's config.
pub fn function_env(c: &Config) -> Vec<(&'static str, String)> {
    vec![
        (config::REDIS_URL, c.redis_url().map(|u| u.expose().to_owned()).unwrap_or_default()),
        (config::ALLOW_INSECURE_REDIS, "1".into()),
        (config::KEY_PREFIX, c.key_prefix.clone()),
        (config::TABLE, c.table.clone()),
        (config::RESERVATION_QUEUE_URL, c.reservation_queue_url.clone()),
        (config::TIMEOUT_QUEUE_URL, c.timeout_queue_url.clone()),
        (config::EMIT_EMF, "off".into()),
    ]
}

/// One running bootstrap process behind its own emulator.
pub struct Function {
    emulator: Arc<Emulator>,
    child: tokio::process::Child,
    started: Instant,
    first_answer: Option<Instant>,
    pub name: String,
}

impl Function {
    /// Starts `binary` (a bootstrap) with the Lambda variables and `env`; stdout is discarded.
    pub async fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        anyhow::ensure!(binary.exists(), "{} missing: build the function binaries first", binary.display());
        let emulator = Arc::new(Emulator::default());
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let started = Instant::now();
        let child = tokio::process::Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Function { emulator, child, started, first_answer: None, name })
    }

    /// Invokes the function once: `Ok` is its response, `Err` an invocation error it reported.
    pub async fn invoke(&mut self, event: Value) -> anyhow::Result<Result<Value, Value>> {
        let id = ulid::Ulid::new().to_string();
        let (tx, rx) = oneshot::channel();
        self.emulator.waiting.lock().await.insert(id.clone(), tx);
        self.emulator.pending.lock().await.push_back((id, event));
        self.emulator.arrived.notify_waiters();
        let r = tokio::time::timeout(Duration::from_secs(30), rx).await??;
        self.first_answer.get_or_insert_with(Instant::now);
        Ok(r)
    }

    /// Process start → its first request for work (init: config, clients, connections).
    pub fn init_time(&self) -> Option<Duration> {
        self.emulator.first_poll.lock().ok().and_then(|f| *f).map(|t| t - self.started)
    }

    /// Process start → the first invocation answered (the cold start a caller sees when the
    /// event is already waiting, as on Lambda).
    pub fn cold_start(&self) -> Option<Duration> {
        self.first_answer.map(|t| t - self.started)
    }

    /// Peak and current resident set size in bytes (`VmHWM`, `VmRSS` from /proc; Linux only).
    pub fn rss(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let kb = |key: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|k| k * 1024)
        };
        Some((kb("VmHWM:")?, kb("VmRSS:")?))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// An API Gateway HTTP API (v2) event as the front door builds it, with authorizer claims.
pub fn http_event(method: &str, path: &str, sub: &str, scopes: &[&str], body: Option<Value>) -> anyhow::Result<Value> {
    let req = http::Request::builder().method(method).uri(path).header("host", "api.example.com").body(())?;
    let (parts, ()) = req.into_parts();
    let body = body.map(|b| axum::body::Bytes::from(b.to_string())).unwrap_or_default();
    let mut claims = HashMap::new();
    claims.insert("sub".to_owned(), sub.to_owned());
    claims.insert("scope".to_owned(), scopes.join(" "));
    let route = flashstock::http::route(&parts.method, parts.uri.path()).ok();
    Ok(serde_json::to_value(crate::front_door::to_event(&parts, &body, claims, route.as_ref(), None))?)
}

/// An SQS event of `(messageId, body)` records, as the event source mapping sends it.
pub fn sqs_event(records: &[(impl AsRef<str>, impl AsRef<str>)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            let (id, body) = (id.as_ref(), body.as_ref());
            json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {},
                "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q", "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}
