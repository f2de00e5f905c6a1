//! Reconciliation: lost messages healed and late ones refused, overlap with live traffic and with
//! itself, cache loss mid-sale, half-done cancels, drift repair.

use std::time::{Duration, Instant};

use flashstock::app::cancel::Canceller;
use flashstock::domain::{CancelReason, CollectionId, OrderId, OrderKey, UserId};
use flashstock::ports::ReservationMessage;
use flashstock::ports::prelude::*;
use flashstock_e2e::{Options, TestApp};
use futures::StreamExt;
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

/// Lost messages: every accepted Try drops its message; reconcile on a fast schedule; orders
/// given up after `give_up_ms`.
async fn lossy(threshold_ms: i64, give_up_ms: i64, schedule: Option<Duration>) -> TestApp {
    let opts = Options { schedule_interval: schedule, ..TestApp::fast_options() };
    TestApp::start_with(opts, |c| {
        c.fault_drop_message_percent = 100;
        c.reconcile_threshold_ms = threshold_ms;
        c.reconcile_give_up_ms = give_up_ms;
    })
    .await
}

#[tokio::test]
async fn an_order_healed_forward_after_its_window_still_gets_the_whole_window_to_pay() {
    // A 1 s payment window, healed forward 2 s or more after acceptance: counted from acceptance,
    // the order was already past its deadline when it became RESERVED (its timer due at once).
    let t = lossy(2_000, 1_200_000, Some(Duration::from_millis(500))).await;
    t.collection("late", json!({ "quantity": 10, "paymentWindowSeconds": 1 })).await;
    assert_eq!(t.reserve("u", "late", "o1", 1).await.status, 202);
    let r = t.wait_status("u", "late", "o1", "RESERVED", 10 * SECOND).await;
    let seen_s = flashstock::now_ms() / 1000;
    assert!(
        r.int("expiresAt") >= seen_s,
        "a whole window from durability: expiresAt {} at {seen_s}",
        r.int("expiresAt")
    );
}

#[tokio::test]
async fn a_lost_message_is_healed_forward_into_a_reservation() {
    let t = lossy(1_000, 1_200_000, Some(Duration::from_millis(500))).await;
    t.collection("lost", json!({ "quantity": 10 })).await;
    let accepted = Instant::now();
    assert_eq!(t.reserve("u", "lost", "o1", 3).await.status, 202);
    assert_eq!(t.status("u", "lost", "o1").await.str("status"), "PENDING");
    let r = t.wait_status("u", "lost", "o1", "RESERVED", 10 * SECOND).await;
    let heal = accepted.elapsed();
    eprintln!("lost message healed forward after {heal:?} (threshold 1 s, interval 0.5 s)");
    assert!(
        heal <= Duration::from_millis(1_000 + 2 * 500 + 4_000),
        "healed within threshold + 2 intervals (+ slack): {heal:?}"
    );
    assert_eq!(r.int("quantity"), 3, "{r:?}");
    let s = t.assert_settled("lost").await;
    assert_eq!((s.saleable, s.redis_stock), (7, Some(7)), "taken once, in both stores: {s:?}");
    // The original message turns up after all: persist is idempotent, nothing is taken twice.
    let key =
        OrderKey::new(CollectionId::parse("lost").unwrap(), UserId::parse("u").unwrap(), OrderId::parse("o1").unwrap());
    let rec = t.stack.app.ledger.order(&key).await.unwrap().expect("a durable record");
    let late = ReservationMessage::new(&key, 3, rec.accepted_at_ms);
    t.send_reservation(&late).await;
    t.wait_queue_empty(10 * SECOND).await;
    assert_eq!(t.status("u", "lost", "o1").await.str("status"), "RESERVED");
    let s = t.assert_settled("lost").await;
    assert_eq!((s.saleable, s.redis_stock), (7, Some(7)), "{s:?}");
}

#[tokio::test]
async fn past_the_give_up_a_lost_order_is_cancelled_and_its_late_message_refused() {
    let t = lossy(1_000, 0, Some(Duration::from_millis(500))).await;
    t.collection("gone", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "gone", "o1", 3).await.status, 202);
    let c = t.wait_status("u", "gone", "o1", "CANCELLED", 10 * SECOND).await;
    assert_eq!(c.str("reason"), "LOST");
    let s = t.assert_settled("gone").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(10)), "stock back in Redis, never taken in DynamoDB: {s:?}");
    // The message arrives after all: the tombstone refuses it; stock is not taken (or given) twice.
    let late = ReservationMessage {
        order_id: OrderId::parse("o1").unwrap(),
        collection_id: CollectionId::parse("gone").unwrap(),
        user_id: UserId::parse("u").unwrap(),
        quantity: 3,
        accepted_at_ms: flashstock::now_ms() - 5_000,
    };
    t.send_reservation(&late).await;
    t.wait_queue_empty(10 * SECOND).await;
    assert_eq!(t.status("u", "gone", "o1").await.str("status"), "CANCELLED");
    let s = t.assert_settled("gone").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(10)), "{s:?}");
    t.reserve("u", "gone", "o1", 3).await.assert_problem(409, "ORDER_CANCELLED");
    let admin = t.inspect("gone").await;
    assert_eq!(admin.body["lastReconciledDrift"], json!(0), "admin shows the last drift figure: {admin:?}");
}

#[tokio::test]
async fn a_quarter_of_the_messages_lost_every_order_ends_reserved() {
    // The fault switch drops 25 % of reservation messages; with stock for every order, each
    // dropped one is healed forward (RESERVED, none LOST) within threshold + 2 schedule intervals.
    let (threshold, interval) = (Duration::from_secs(2), Duration::from_secs(1));
    let opts = Options { schedule_interval: Some(interval), ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| {
        c.fault_drop_message_percent = 25;
        c.reconcile_threshold_ms = threshold.as_millis() as i64;
    })
    .await;
    t.collection("q25", json!({ "quantity": 400, "perUserLimit": 5 })).await;
    let n = 200;
    let started = Instant::now();
    let answers: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let t = &t;
            async move { t.reserve(&format!("b{i}"), "q25", &format!("o{i}"), 1).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let accepted_within = started.elapsed();
    assert!(answers.iter().all(|a| a.status == 202), "stock for all: {answers:?}");
    // Every order durable (DynamoDB's reserved counter) within the bound.
    let bound = threshold + 2 * interval + accepted_within + Duration::from_secs(3);
    let col = CollectionId::parse("q25").unwrap();
    loop {
        let reserved = t.stack.app.ledger.collection(&col).await.unwrap().map_or(0, |c| c.levels.reserved);
        if reserved == n as i64 {
            break;
        }
        assert!(started.elapsed() < bound, "{reserved} of {n} durable after {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healed = started.elapsed();
    eprintln!("{n} orders, 25 % of messages dropped: all durable after {healed:?} (bound {bound:?})");
    for i in 0..n {
        let st = t.status(&format!("b{i}"), "q25", &format!("o{i}")).await;
        assert_eq!(st.str("status"), "RESERVED", "o{i}: {st:?}");
    }
    let s = t.assert_settled("q25").await;
    assert_eq!((s.saleable, s.redis_stock), (200, Some(200)), "{s:?}");
    assert_eq!(s.by_status.get("RESERVED").copied(), Some(n as i64), "{s:?}");
    assert_eq!(s.by_status.get("CANCELLED"), None, "none LOST: {s:?}");
}

#[tokio::test]
async fn two_overlapping_runs_resend_each_entry_once() {
    let opts = Options { run_persist: false, schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| {
        c.fault_drop_message_percent = 100;
        c.reconcile_threshold_ms = 1_000;
    })
    .await;
    t.collection("ovf", json!({ "quantity": 100 })).await;
    for i in 0..30 {
        assert_eq!(t.reserve(&format!("u{i}"), "ovf", &format!("o{i}"), 2).await.status, 202);
    }
    let now = flashstock::now_ms() + 5_000;
    let (a, b) = tokio::join!(t.stack.app.reconcile(now), t.stack.app.reconcile(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.resent + b.resent, 30, "each entry re-logged and re-sent by one run");
    assert_eq!(a.tombstones_written + b.tombstones_written, 0);
    // Re-logged a visibility timeout ahead: the next run leaves them alone.
    let again = t.stack.app.reconcile(now).await.unwrap();
    assert_eq!(again.resent, 0, "{again:?}");
    assert_eq!(t.deliver_reservations(100).await, 30);
    let s = t.assert_settled("ovf").await;
    assert_eq!((s.saleable, s.redis_stock), (40, Some(40)), "taken once each: {s:?}");
    assert_eq!(s.by_status.get("RESERVED").copied(), Some(60), "30 orders of 2 units: {s:?}");
}

#[tokio::test]
async fn two_overlapping_runs_give_each_entry_up_once() {
    let t = lossy(0, 0, None).await;
    t.collection("ov", json!({ "quantity": 100 })).await;
    for i in 0..30 {
        assert_eq!(t.reserve(&format!("u{i}"), "ov", &format!("o{i}"), 2).await.status, 202);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let now = flashstock::now_ms();
    let (a, b) = tokio::join!(t.stack.app.reconcile(now), t.stack.app.reconcile(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.tombstones_written + b.tombstones_written, 30, "each lost entry tombstoned by exactly one run");
    let s = t.assert_settled("ov").await;
    assert_eq!((s.saleable, s.redis_stock), (100, Some(100)), "each share returned once: {s:?}");
    let again = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!((again.tombstones_written, again.entries_healed), (0, 0), "idempotent");
}

#[tokio::test]
async fn reconcile_during_live_traffic_keeps_the_identities() {
    // A threshold of 0 makes every pending entry a candidate at once: the hardest overlap.
    let opts = Options { schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_threshold_ms = 0).await;
    t.collection("live", json!({ "quantity": 120 })).await;
    let app = t.stack.app.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = stop.clone();
    let runs = tokio::spawn(async move {
        let mut n = 0;
        while !stopper.load(std::sync::atomic::Ordering::Relaxed) {
            app.reconcile(flashstock::now_ms()).await.unwrap();
            n += 1;
        }
        n
    });
    let answers: Vec<_> = futures::stream::iter(0..200)
        .map(|i| {
            let t = &t;
            async move { (i, t.reserve(&format!("b{i}"), "live", &format!("o{i}"), 1).await) }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    // Every accepted order ends RESERVED: reconciliation re-sends what it finds with no
    // durable record, it never gives up an order this young.
    let mut ended = std::collections::HashMap::new();
    for (i, a) in &answers {
        if a.status != 202 {
            a.assert_problem(409, "SOLD_OUT");
            continue;
        }
        let deadline = Instant::now() + 30 * SECOND;
        loop {
            let st = t.status(&format!("b{i}"), "live", &format!("o{i}")).await;
            let s = st.str("status").to_owned();
            assert_ne!(s, "CANCELLED", "o{i}: {st:?}");
            if s == "RESERVED" {
                *ended.entry(s).or_insert(0) += 1;
                break;
            }
            assert!(Instant::now() < deadline, "o{i} stuck: {st:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = runs.await.unwrap();
    assert!(n >= 2, "reconciliation really overlapped ({n} runs)");
    let s = t.assert_settled("live").await;
    assert_eq!(s.by_status.get("RESERVED").copied().unwrap_or(0), ended.get("RESERVED").copied().unwrap_or(0));
    assert!(s.saleable >= 0);
}

#[tokio::test]
async fn redis_lost_mid_sale_refuses_until_rebuilt_then_no_oversell() {
    let opts = Options { schedule_interval: Some(Duration::from_millis(500)), ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_threshold_ms = 1_000).await;
    t.collection("flush", json!({ "quantity": 50 })).await;
    for i in 0..20 {
        assert_eq!(t.reserve(&format!("a{i}"), "flush", &format!("a{i}"), 1).await.status, 202);
    }
    // Redis loses this deployment's keys (restart without persistence / failover to an empty replica).
    let mut con = t.redis.clone();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{}:*", t.stack.config.key_prefix)).query_async(&mut con).await.unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut con).await.unwrap();
    t.reserve("x", "flush", "x0", 1).await.assert_problem(503, "CACHE_NOT_READY");
    // The schedule rebuilds from DynamoDB (never raising Redis above what DynamoDB can honour).
    // Each attempt is another buyer's: one buyer retrying every 200 ms would spend its budget
    // (20 a minute) before a slow rebuild and be answered 429, which is not what this checks.
    let deadline = Instant::now() + 15 * SECOND;
    let mut i = 0;
    loop {
        let a = t.reserve(&format!("x{i}"), "flush", &format!("x{i}"), 1).await;
        if a.status == 202 {
            break;
        }
        a.assert_problem(503, "CACHE_NOT_READY");
        assert!(Instant::now() < deadline, "never rebuilt");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Sell out the rest with many buyers; DynamoDB must never go below zero.
    let _ = futures::stream::iter(0..100)
        .map(|j| {
            let t = &t;
            async move { t.reserve(&format!("y{j}"), "flush", &format!("y{j}"), 1).await }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    let deadline = Instant::now() + 30 * SECOND;
    loop {
        let s = t.stores("flush").await;
        // While persist settles, the time index and the entries are read at two instants and may
        // differ by what settled between; every other identity holds throughout (and all of them
        // once settled, below).
        let failures: Vec<String> =
            s.identity_failures(false).into_iter().filter(|f| !f.starts_with("a P entry is missing")).collect();
        assert!(failures.is_empty(), "{failures:?}: {s:?}");
        if s.redis_pending == 0 && s.redis_stock == Some(s.saleable) {
            break;
        }
        assert!(Instant::now() < deadline, "never converged: {s:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let s = t.assert_settled("flush").await;
    let sold = s.by_status.get("RESERVED").copied().unwrap_or(0);
    assert!(sold <= 50 && s.saleable == 50 - sold, "no oversell: {s:?}");
    assert_eq!(t.inspect("flush").await.int("drift"), 0);
}

#[tokio::test]
async fn a_cancel_that_died_after_dynamodb_is_completed() {
    let opts = Options { schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_threshold_ms = 0).await;
    t.collection("half", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "half", "o1", 4).await.status, 202);
    assert_eq!(t.reserve("u", "half", "o2", 2).await.status, 202);
    t.wait_status("u", "half", "o1", "RESERVED", 10 * SECOND).await;
    t.wait_status("u", "half", "o2", "RESERVED", 10 * SECOND).await;
    let app = &t.stack.app;
    let col = CollectionId::parse("half").unwrap();
    let now = flashstock::now_ms();
    // o1: the cancel logged its intent and committed in DynamoDB, then died before Redis.
    let key = |o: &str| OrderKey::new(col.clone(), UserId::parse("u").unwrap(), OrderId::parse(o).unwrap());
    let rec = app.ledger.order(&key("o1")).await.unwrap().unwrap();
    app.cache.log_intent(&rec, 1, now).await.unwrap();
    app.ledger.cancel_reserved(std::slice::from_ref(&rec), CancelReason::User, now).await.unwrap();
    // o2: the same, but it died even before its intent reached Redis (only drift shows it).
    let rec = app.ledger.order(&key("o2")).await.unwrap().unwrap();
    app.ledger.cancel_reserved(std::slice::from_ref(&rec), CancelReason::User, now).await.unwrap();
    let s = t.stores("half").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(4)), "Redis is short of both shares: {s:?}");
    let r = app.reconcile(flashstock::now_ms()).await.unwrap();
    let c = &r.collections["half"];
    assert_eq!(c.returned, 1, "o1 completed from the log: {c:?}");
    assert_eq!(c.repaired_drift, Some(-2), "o2 repaired as drift while nothing is unsettled: {c:?}");
    let s = t.assert_settled("half").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(10)), "{s:?}");
    // The buyer's retry of the cancel answers the same and changes nothing.
    assert_eq!(t.cancel("u", "half", "o1").await.str("status"), "CANCELLED");
    let again = app.cancel(&key("o2"), Canceller::Buyer, flashstock::now_ms()).await.unwrap();
    assert!(!again.changed);
    let s = t.assert_settled("half").await;
    assert_eq!(s.redis_stock, Some(10), "nothing returned twice: {s:?}");
    let r = app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!(r.max_abs_drift, 0);
    assert_eq!(r.identity_violations, 0);
}

#[tokio::test]
async fn drift_is_reported_and_never_repaired_while_deductions_are_unsettled() {
    let opts = Options { run_persist: false, schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_threshold_ms = 60_000).await;
    t.collection("busy", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "busy", "o1", 1).await.status, 202);
    let stock = t.keys("busy").stock(1);
    let mut con = t.redis.clone();
    let _: () = redis::cmd("INCRBY").arg(&stock).arg(5).query_async(&mut con).await.unwrap();
    let r = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    let c = &r.collections["busy"];
    assert_eq!(
        (c.drift, c.repaired_drift),
        (Some(5), None),
        "reported, not repaired while a deduction is pending: {c:?}"
    );
    assert_eq!(t.deliver_reservations(10).await, 1);
    let r = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!(r.collections["busy"].repaired_drift, Some(5), "repaired once quiet");
    let s = t.assert_settled("busy").await;
    assert_eq!((s.saleable, s.redis_stock), (9, Some(9)));
}

#[tokio::test]
async fn idle_collections_are_skipped_and_any_change_wakes_them() {
    let opts = Options { run_persist: false, schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_threshold_ms = 1_000).await;
    let names = ["qa", "qb", "qc", "qd", "qe"];
    for n in names {
        t.collection(n, json!({ "quantity": 10 })).await;
    }
    // qe holds a RESERVED order, to be confirmed later: a collection holding reserved units is
    // never idle (a confirm changes neither store's figures; its tally must still come).
    assert_eq!(t.reserve("u", "qe", "o1", 2).await.status, 202);
    assert_eq!(t.deliver_reservations(10).await, 1);
    let app = &t.stack.app;
    let mut now = flashstock::now_ms() + 20_000;
    // Until every collection is clean and marked, then every one but qe is skipped.
    let mut runs = 0;
    loop {
        let r = app.reconcile(now).await.unwrap();
        runs += 1;
        if r.collections_idle == 4 {
            assert_eq!((r.collections_checked, r.errors), (1, 0), "{r:?}");
            assert!(r.collections.contains_key("qe"), "{r:?}");
            break;
        }
        assert!(runs < 5, "never all idle: {r:?}");
        now += 20_000;
    }
    // Changes of every kind: a Try whose message is lost (qa), a lost stock key (qb), a stray
    // write to the stock (qc), a confirm in DynamoDB only (qe); qd stays idle.
    assert_eq!(t.reserve("u", "qa", "o1", 1).await.status, 202);
    let _ = t.take_reservation_message().await;
    let mut con = t.redis.clone();
    let _: () = redis::cmd("DEL").arg(t.keys("qb").stock(1)).query_async(&mut con).await.unwrap();
    let _: () = redis::cmd("INCRBY").arg(t.keys("qc").stock(1)).arg(3).query_async(&mut con).await.unwrap();
    assert_eq!(t.confirm("qe", "u", "o1").await.str("status"), "CONFIRMED");
    let r = app.reconcile(flashstock::now_ms() + 20_000).await.unwrap();
    assert_eq!((r.collections_idle, r.collections_checked), (1, 4), "{r:?}");
    assert!(!r.collections.contains_key("qd"));
    assert_eq!(r.collections["qa"].resent, 1, "the lost Try healed forward: {r:?}");
    assert_eq!(t.deliver_reservations(10).await, 1, "its message, re-sent");
    assert!(r.collections["qb"].rebuilt, "{r:?}");
    assert_eq!(r.collections["qc"].repaired_drift, Some(3), "{r:?}");
    assert_eq!(r.collections["qe"].tallied, 1, "the confirm tallied at once: {r:?}");
    for n in names {
        let s = t.assert_settled(n).await;
        assert_eq!(s.redis_stock, Some(s.saleable), "{n}: {s:?}");
    }
}

#[tokio::test]
async fn a_run_past_its_budget_leaves_the_rest_for_the_next() {
    let opts = Options { run_persist: false, schedule_interval: None, ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| c.reconcile_budget = Duration::ZERO).await;
    for n in ["ba", "bb", "bc"] {
        t.collection(n, json!({ "quantity": 10 })).await;
    }
    let app = &t.stack.app;
    let now = flashstock::now_ms();
    // A zero budget still starts one collection per run: every run makes progress.
    let r = app.reconcile(now).await.unwrap();
    assert_eq!((r.collections_checked, r.collections_deferred), (1, 2), "{r:?}");
    let mut seen: std::collections::BTreeSet<String> = r.collections.keys().cloned().collect();
    for k in 1..12 {
        let r = app.reconcile(now + k * 60_000).await.unwrap();
        seen.extend(r.collections.keys().cloned());
        if r.collections_idle == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "every collection had its turn: {seen:?}");
}

#[tokio::test]
async fn trim_forgets_old_settled_orders_and_spent_budget_windows_never_a_pending_one() {
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    t.collection("trim", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("gone", "trim", "g1", 1).await.status, 202);
    assert_eq!(t.reserve("kept", "trim", "k1", 1).await.status, 202);
    assert_eq!(t.cancel("gone", "trim", "g1").await.status, 200);
    let id = CollectionId::parse("trim").unwrap();
    let key = |u: &str, o: &str| OrderKey::new(id.clone(), UserId::parse(u).unwrap(), OrderId::parse(o).unwrap());
    let cache = &t.stack.app.cache;
    let nb = cache.bucket_count(&id, 0).await.unwrap().expect("a bucket count");
    let value = |u: &str| {
        let u = flashstock::adapters::redis_cache::buyer_bytes(&UserId::parse(u).unwrap());
        let bucket = t.keys("trim").bucket(flashstock::adapters::redis_cache::bucket_of(&u, nb));
        let mut con = t.redis.clone();
        async move { redis::cmd("HGET").arg(bucket).arg(u).query_async::<Option<Vec<u8>>>(&mut con).await.unwrap() }
    };
    let gone = value("gone").await.expect("a value");
    assert_eq!(&gone[..3], b"\x01\x00B", "the budget record opens the value: {gone:?}");
    // Two hours on: past the retention (one hour), and past the budget's window.
    let later = t.stack.app.clock.now_ms() + 2 * 3_600_000;
    let trimmed = cache.trim_settled(&id, 0, later, 20_000, false).await.unwrap();
    assert_eq!(trimmed.removed, 1, "the cancelled order, not the budget records: {trimmed:?}");
    assert_eq!(value("gone").await, None, "nothing left of the buyer");
    let kept = value("kept").await.expect("the pending order stays");
    assert_ne!(&kept[..2], b"\x01\x00", "its spent window's budget record went: {kept:?}");
    assert_eq!(
        cache.entry(&key("kept", "k1"), 1).await.unwrap().map(|e| e.state),
        Some(flashstock::ports::CacheState::Pending)
    );
    assert_eq!(cache.entry(&key("gone", "g1"), 1).await.unwrap(), None);
}
