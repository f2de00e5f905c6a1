//! Each function's real bootstrap binary — `main.rs` wiring included — started against a minimal
//! Lambda Runtime API emulator and invoked with a real event of its trigger type, on the real
//! local stack. Also prints each binary's cold start (process start → first invocation request);
//! that figure is reported, never asserted (benchmarks are not timed tests).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use flashstock_e2e::{Options, TestApp};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify, oneshot};

/// The subset of the Lambda Runtime API a custom runtime uses.
#[derive(Default)]
struct Emulator {
    pending: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    first_poll: Mutex<Option<Instant>>,
    polled: std::sync::atomic::AtomicBool,
}

async fn next(State(e): State<Arc<Emulator>>) -> (HeaderMap, String) {
    if !e.polled.swap(true, std::sync::atomic::Ordering::SeqCst) {
        *e.first_poll.lock().await = Some(Instant::now());
    }
    loop {
        let notified = e.arrived.notified();
        if let Some((id, ev)) = e.pending.lock().await.pop_front() {
            let mut h = HeaderMap::new();
            let deadline = (flashstock::now_ms() + 30_000).to_string();
            h.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
            h.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline).unwrap());
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:flashstock-test"),
            );
            h.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
            return (h, ev.to_string());
        }
        notified.await;
    }
}

async fn respond(State(e): State<Arc<Emulator>>, Path(id): Path<String>, body: String) -> StatusCode {
    if let Some(tx) = e.waiting.lock().await.remove(&id) {
        let _ = tx.send(Ok(serde_json::from_str(&body).unwrap_or(Value::String(body))));
    }
    StatusCode::ACCEPTED
}

async fn error(State(e): State<Arc<Emulator>>, Path(id): Path<String>, body: String) -> StatusCode {
    if let Some(tx) = e.waiting.lock().await.remove(&id) {
        let _ = tx.send(Err(serde_json::from_str(&body).unwrap_or(Value::String(body))));
    }
    StatusCode::ACCEPTED
}

async fn init_error(body: String) -> StatusCode {
    eprintln!("init error: {body}");
    StatusCode::ACCEPTED
}

struct Function {
    emulator: Arc<Emulator>,
    child: tokio::process::Child,
    started: Instant,
    name: String,
}

impl Function {
    async fn start(binary: &str, t: &TestApp) -> Self {
        let emulator = Arc::new(Emulator::default());
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
        let path = target.join("debug").join(binary);
        assert!(path.exists(), "{path:?} missing: run `cargo build --workspace --bins` first (infra/test.sh does)");
        let c = &t.stack.config;
        let started = Instant::now();
        let child = tokio::process::Command::new(&path)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", binary)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env(flashstock::config::REDIS_URL, &c.redis_url)
            .env(flashstock::config::KEY_PREFIX, &c.key_prefix)
            .env(flashstock::config::TABLE, &c.table)
            .env(flashstock::config::RESERVATION_QUEUE_URL, &c.reservation_queue_url)
            .env(flashstock::config::TIMEOUT_QUEUE_URL, &c.timeout_queue_url)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bootstrap starts");
        Function { emulator, child, started, name: binary.to_owned() }
    }

    async fn invoke(&self, event: Value) -> Result<Value, Value> {
        let id = ulid::Ulid::new().to_string();
        let (tx, rx) = oneshot::channel();
        self.emulator.waiting.lock().await.insert(id.clone(), tx);
        self.emulator.pending.lock().await.push_back((id, event));
        self.emulator.arrived.notify_waiters();
        let r = tokio::time::timeout(Duration::from_secs(30), rx).await.expect("the function answers").expect("answer");
        if let Some(first) = self.emulator.first_poll.lock().await.take() {
            // Reported once (taken), never asserted.
            eprintln!("{}: cold start (process start → first /next) {:?}", self.name, first - self.started);
        }
        r
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn http_event(method: &str, path: &str, sub: &str, roles: &[&str], body: Option<Value>) -> Value {
    let req = http::Request::builder().method(method).uri(path).header("host", "api.example.com").body(()).unwrap();
    let (parts, ()) = req.into_parts();
    let body = body.map(|b| axum::body::Bytes::from(b.to_string())).unwrap_or_default();
    let mut claims = HashMap::new();
    claims.insert("sub".to_owned(), sub.to_owned());
    claims.insert("roles".to_owned(), format!("[{}]", roles.join(" ")));
    serde_json::to_value(flashstock_local::front_door::to_event(&parts, &body, claims)).unwrap()
}

fn sqs_event(records: &[(&str, String)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
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

fn scheduled_event() -> Value {
    flashstock_local::schedule::scheduled_event()
}

fn stack_opts() -> Options {
    Options { run_persist: false, run_timers: false, schedule_interval: None, ..TestApp::fast_options() }
}

fn failures(v: &Value) -> Vec<String> {
    v["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn api_bootstrap_serves_http_api_events() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    let f = Function::start("flashstock-api", &t).await;
    let r =
        f.invoke(http_event("PUT", "/v1/admin/collections/c1", "op", &["admin"], Some(json!({"quantity": 5})))).await;
    let r = r.expect("no invocation error");
    assert_eq!(r["statusCode"], 201, "{r}");
    let r = f.invoke(http_event("POST", "/v1/admin/collections/c1/warmup", "op", &["admin"], None)).await.unwrap();
    assert_eq!(
        (r["statusCode"].as_i64(), r["body"].as_str().map(|b| b.contains("\"cached\":5"))),
        (Some(200), Some(true)),
        "{r}"
    );
    let r = f
        .invoke(http_event(
            "POST",
            "/v1/collections/c1/reservations",
            "alice",
            &[],
            Some(json!({"orderId": "o1", "quantity": 2})),
        ))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 202, "{r}");
    assert_eq!(t.queue_depth(&t.stack.queues.reservations).await, 1, "the Try published its message");
    let r = f
        .invoke(http_event("POST", "/v1/collections/c1/reservations", "alice", &[], Some(json!({"quantity": 2}))))
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 400, "{r}");
    assert_eq!(r["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn persist_bootstrap_reports_only_the_poison_message() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    t.collection("c1", json!({ "quantity": 5 })).await;
    assert_eq!(t.reserve("alice", "c1", "o1", 2).await.status, 202);
    let body = t.take_reservation_message().await;
    let f = Function::start("flashstock-persist", &t).await;
    let r = f.invoke(sqs_event(&[("good", body), ("poison", "{oops".into())])).await.expect("no invocation error");
    assert_eq!(failures(&r), vec!["poison"], "{r}");
    assert_eq!(t.status("alice", "o1").await.str("status"), "RESERVED");
}

#[tokio::test]
async fn cancel_bootstrap_serves_http_timers_and_the_sweep() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    let f = Function::start("flashstock-cancel", &t).await;
    let r = f.invoke(http_event("POST", "/v1/reservations/ghost/cancel", "alice", &[], None)).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(r["body"].as_str().unwrap_or("").contains("EMPTY_ROLLBACK"), "{r}");
    let due = flashstock::now_ms() / 1000 - 1;
    let r = f
        .invoke(sqs_event(&[("t1", json!({"orderId": "ghost", "dueAt": due}).to_string()), ("bad", "x".into())]))
        .await
        .unwrap();
    assert_eq!(failures(&r), vec!["bad"], "{r}");
    let r = f.invoke(scheduled_event()).await.unwrap();
    assert_eq!(r["errors"], 0, "{r}");
    let r = f.invoke(json!({"unexpected": true})).await;
    assert!(r.is_err(), "an unknown event is an invocation error: {r:?}");
}

#[tokio::test]
async fn reconcile_bootstrap_runs_on_a_scheduled_event() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    t.collection("c1", json!({ "quantity": 5 })).await;
    let f = Function::start("flashstock-reconcile", &t).await;
    let r = f.invoke(scheduled_event()).await.expect("no invocation error");
    assert_eq!(r["collectionsChecked"], 1, "{r}");
    assert_eq!(r["collections"]["c1"]["drift"], 0, "{r}");
    assert_eq!(r["identityViolations"], 0, "{r}");
}
