//! Each function's real bootstrap binary — `main.rs` wiring included — started against a minimal
//! Lambda Runtime API emulator and invoked with a real event of its trigger type, on the real
//! local stack. Also prints each debug binary's cold start; that figure is reported, never asserted
//! (benchmarks are not timed tests: `infra/bench.sh` measures the release builds).

use std::path::PathBuf;

use flashstock_e2e::{Options, TestApp};
use flashstock_local::runtime_api::{self, Function};
use serde_json::{Value, json};

/// Starts a debug bootstrap of this workspace against the test's own deployment.
async fn start(binary: &str, t: &TestApp) -> Function {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let path = target.join("debug").join(binary);
    assert!(path.exists(), "{path:?} missing: run `cargo build --workspace --bins` first (infra/test.sh does)");
    Function::start(&path, &runtime_api::function_env(&t.stack.config)).await.expect("bootstrap starts")
}

/// Invokes once; prints the cold start after the first answer (reported, never asserted).
async fn invoke(f: &mut Function, event: Value) -> Result<Value, Value> {
    let first = f.cold_start().is_none();
    let r = f.invoke(event).await.expect("the function answers");
    if first {
        eprintln!("{}: init {:?}, cold start {:?} (debug build)", f.name, f.init_time(), f.cold_start());
    }
    r
}

fn http_event(method: &str, path: &str, sub: &str, scopes: &[&str], body: Option<Value>) -> Value {
    runtime_api::http_event(method, path, sub, scopes, body).expect("event")
}

fn sqs_event(records: &[(&str, String)]) -> Value {
    runtime_api::sqs_event(records)
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
    let mut f = start("flashstock-api", &t).await;
    let r = invoke(
        &mut f,
        http_event(
            "PUT",
            "/v1/admin/collections/c1",
            "op",
            &[flashstock::http::auth::ADMIN_SCOPE],
            Some(json!({"quantity": 5})),
        ),
    )
    .await;
    let r = r.expect("no invocation error");
    assert_eq!(r["statusCode"], 201, "{r}");
    let r = invoke(
        &mut f,
        http_event("POST", "/v1/admin/collections/c1/warmup", "op", &[flashstock::http::auth::ADMIN_SCOPE], None),
    )
    .await
    .unwrap();
    assert_eq!(
        (r["statusCode"].as_i64(), r["body"].as_str().map(|b| b.contains("\"cached\":5"))),
        (Some(200), Some(true)),
        "{r}"
    );
    let ev = http_event(
        "POST",
        "/v1/collections/c1/reservations",
        "alice",
        &[],
        Some(json!({"orderId": "o1", "quantity": 2})),
    );
    let r = invoke(&mut f, ev).await.unwrap();
    assert_eq!(r["statusCode"], 202, "{r}");
    assert_eq!(t.queue_depth(&t.stack.queues.reservations).await, 1, "the Try sent its message");
    let ev = http_event("POST", "/v1/collections/c1/reservations", "alice", &[], Some(json!({"quantity": 2})));
    let r = invoke(&mut f, ev).await.unwrap();
    assert_eq!(r["statusCode"], 400, "{r}");
    assert_eq!(r["headers"]["content-type"], "application/problem+json");
}

#[tokio::test]
async fn persist_bootstrap_reports_only_the_poison_message() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    t.collection("c1", json!({ "quantity": 5 })).await;
    assert_eq!(t.reserve("alice", "c1", "o1", 2).await.status, 202);
    let body = t.take_reservation_message().await;
    let mut f = start("flashstock-persist", &t).await;
    let r =
        invoke(&mut f, sqs_event(&[("good", body), ("poison", "{oops".into())])).await.expect("no invocation error");
    assert_eq!(failures(&r), vec!["poison"], "{r}");
    assert_eq!(t.status("alice", "c1", "o1").await.str("status"), "RESERVED");
}

#[tokio::test]
async fn cancel_bootstrap_serves_http_timers_and_the_sweep() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    let mut f = start("flashstock-cancel", &t).await;
    t.collection("c1", json!({ "quantity": 5 })).await;
    let ev = http_event("POST", "/v1/collections/c1/reservations/ghost/cancel", "alice", &[], None);
    let r = invoke(&mut f, ev).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(r["body"].as_str().unwrap_or("").contains("EMPTY_ROLLBACK"), "{r}");
    let due = flashstock::now_ms() / 1000 - 1;
    let timers = sqs_event(&[
        ("t1", json!({"collectionId": "c1", "userId": "alice", "orderId": "ghost", "dueAt": due}).to_string()),
        ("bad", "x".into()),
    ]);
    let r = invoke(&mut f, timers).await.unwrap();
    assert_eq!(failures(&r), vec!["bad"], "{r}");
    let r = invoke(&mut f, scheduled_event()).await.unwrap();
    assert_eq!(r["errors"], 0, "{r}");
    let r = invoke(&mut f, json!({"unexpected": true})).await;
    assert!(r.is_err(), "an unknown event is an invocation error: {r:?}");
}

#[tokio::test]
async fn reconcile_bootstrap_runs_on_a_scheduled_event() {
    let t = TestApp::start_with(stack_opts(), |_| {}).await;
    t.collection("c1", json!({ "quantity": 5 })).await;
    let mut f = start("flashstock-reconcile", &t).await;
    let r = invoke(&mut f, scheduled_event()).await.expect("no invocation error");
    assert_eq!(r["collectionsChecked"], 1, "{r}");
    assert_eq!(r["collections"]["c1"]["drift"], 0, "{r}");
    assert_eq!(r["identityViolations"], 0, "{r}");
}
