//! Confirm, cancel, timeout, and their guards (empty rollback, anti-hanging), with both stores'
//! identities checked after each test.

use std::time::{Duration, Instant};

use flashstock::lambda::{sqs_event, timers_event};
use flashstock_e2e::{Options, TestApp};
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn user_cancel_of_a_reserved_order_returns_stock_to_both_stores_once() {
    let t = TestApp::start().await;
    t.collection("uc", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "uc", "o1", 4).await.status, 202);
    t.wait_status("u", "uc", "o1", "RESERVED", 10 * SECOND).await;
    // Another buyer's cancel of "o1" is a cancel of their own (never used) o1: it touches nothing here.
    assert_eq!(t.cancel("other", "uc", "o1").await.str("reason"), "EMPTY_ROLLBACK");
    assert_eq!(t.status("u", "uc", "o1").await.str("status"), "RESERVED");
    let c = t.cancel("u", "uc", "o1").await;
    assert_eq!((c.status, c.str("status"), c.str("reason")), (200, "CANCELLED", "USER"), "{c:?}");
    let again = t.cancel("u", "uc", "o1").await;
    assert_eq!((again.status, again.str("status")), (200, "CANCELLED"), "a replayed cancel answers the same");
    let s = t.assert_settled("uc").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(10)), "returned exactly once: {s:?}");
    t.reserve("u", "uc", "o1", 4).await.assert_problem(409, "ORDER_CANCELLED");
    t.confirm("uc", "u", "o1").await.assert_problem(409, "ALREADY_CANCELLED");
}

#[tokio::test]
async fn cancel_before_persist_leaves_a_tombstone_and_the_late_message_is_refused() {
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    t.collection("cbp", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "cbp", "o1", 3).await.status, 202);
    assert_eq!(t.status("u", "cbp", "o1").await.str("status"), "PENDING");
    t.confirm("cbp", "u", "o1").await.assert_problem(409, "NOT_YET_RESERVED");
    let c = t.cancel("u", "cbp", "o1").await;
    assert_eq!((c.status, c.str("status")), (200, "CANCELLED"), "{c:?}");
    let s = t.stores("cbp").await;
    assert_eq!(s.redis_stock, Some(10), "Redis share back at once: {s:?}");
    // The late persist message: refused by the tombstone, stock not taken, not returned twice.
    assert_eq!(t.deliver_reservations(10).await, 1);
    assert_eq!(t.deliver_reservations(10).await, 0, "the message was consumed, not left to redeliver");
    assert_eq!(t.status("u", "cbp", "o1").await.str("status"), "CANCELLED");
    let s = t.assert_settled("cbp").await;
    assert_eq!((s.saleable, s.redis_stock), (10, Some(10)), "{s:?}");
    t.reserve("u", "cbp", "o1", 3).await.assert_problem(409, "ORDER_CANCELLED");
}

#[tokio::test]
async fn empty_rollback_then_a_late_try_is_refused() {
    let t = TestApp::start().await;
    t.collection("er", json!({ "quantity": 10 })).await;
    let c = t.cancel("u", "er", "never-tried").await;
    assert_eq!((c.status, c.str("status"), c.str("reason")), (200, "CANCELLED", "EMPTY_ROLLBACK"), "{c:?}");
    assert_eq!(t.cancel("u", "er", "never-tried").await.status, 200, "again: same");
    t.reserve("u", "er", "never-tried", 1).await.assert_problem(409, "ORDER_CANCELLED");
    assert_eq!(t.reserve("someone-else", "er", "never-tried", 1).await.status, 202, "another buyer's own order");
    assert_eq!(t.status("u", "er", "never-tried").await.str("status"), "CANCELLED");
    t.wait_status("someone-else", "er", "never-tried", "RESERVED", 10 * SECOND).await;
    let s = t.assert_settled("er").await;
    assert_eq!(s.redis_stock, Some(9));
    // Even if Redis forgets the tombstone entry, the durable tombstone refuses a late persist message.
    let mut con = t.redis.clone();
    let key = flashstock::domain::OrderKey::new(
        flashstock::domain::CollectionId::parse("er").unwrap(),
        flashstock::domain::UserId::parse("u").unwrap(),
        flashstock::domain::OrderId::parse("never-tried").unwrap(),
    );
    let shards = t.stack.app.spec(&key.collection).await.unwrap().cache_shards;
    let (bucket, buyer) = t.stack.app.cache.location(&key, shards).await.unwrap().expect("warmed up");
    let _: () = redis::cmd("HDEL").arg(bucket).arg(buyer).query_async(&mut con).await.unwrap();
    let late = t.reserve("u", "er", "never-tried", 1).await;
    assert_eq!(late.status, 202, "Redis alone cannot know; DynamoDB decides: {late:?}");
    t.wait_status("u", "er", "never-tried", "CANCELLED", 10 * SECOND).await;
    let s = t.assert_settled("er").await;
    assert_eq!((s.saleable, s.redis_stock), (9, Some(9)), "the late deduction came back once: {s:?}");
}

#[tokio::test]
async fn confirm_is_final_and_cancel_then_confirm_is_refused() {
    let t = TestApp::start().await;
    t.collection("cf", json!({ "quantity": 10 })).await;
    for o in ["a", "b"] {
        assert_eq!(t.reserve("u", "cf", o, 2).await.status, 202);
        t.wait_status("u", "cf", o, "RESERVED", 10 * SECOND).await;
    }
    let c = t.confirm("cf", "u", "a").await;
    assert_eq!((c.status, c.str("status")), (200, "CONFIRMED"), "{c:?}");
    assert_eq!(t.confirm("cf", "u", "a").await.str("status"), "CONFIRMED", "a replayed confirm answers the same");
    t.cancel("u", "cf", "a").await.assert_problem(409, "ALREADY_CONFIRMED");
    assert_eq!(t.cancel("u", "cf", "b").await.status, 200);
    t.confirm("cf", "u", "b").await.assert_problem(409, "ALREADY_CANCELLED");
    t.confirm("cf", "u", "unknown").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    let s = t.assert_settled("cf").await;
    assert_eq!((s.saleable, s.by_status.get("CONFIRMED").copied()), (8, Some(2)), "{s:?}");
    assert_eq!((s.confirmed_counter, s.untallied), (0, 2), "a confirm writes no stock item");
}

#[tokio::test]
async fn cancel_and_confirm_race_exactly_one_wins_fifty_times() {
    // One buyer races many orders here: no request budget, no per-user limit in the way.
    let t = TestApp::start_with(TestApp::fast_options(), |c| c.buyer_budget = None).await;
    t.collection("race", json!({ "quantity": 100, "perUserLimit": 100 })).await;
    for i in 0..50 {
        assert_eq!(t.reserve("u", "race", &format!("o{i}"), 1).await.status, 202);
    }
    for i in 0..50 {
        t.wait_status("u", "race", &format!("o{i}"), "RESERVED", 20 * SECOND).await;
    }
    let mut confirmed = 0;
    let mut cancelled = 0;
    for i in 0..50 {
        let o = format!("o{i}");
        // Two of each, all at once.
        let (a, b, c, d) = tokio::join!(
            t.cancel("u", "race", &o),
            t.confirm("race", "u", &o),
            t.confirm("race", "u", &o),
            t.cancel("u", "race", &o)
        );
        let cancel_won = a.status == 200 && d.status == 200;
        let confirm_won = b.status == 200 && c.status == 200;
        assert!(cancel_won ^ confirm_won, "exactly one side wins: {a:?} {b:?} {c:?} {d:?}");
        if cancel_won {
            b.assert_problem(409, "ALREADY_CANCELLED");
            cancelled += 1;
        } else {
            a.assert_problem(409, "ALREADY_CONFIRMED");
            confirmed += 1;
        }
        let final_status = t.status("u", "race", &o).await;
        assert_eq!(final_status.str("status"), if cancel_won { "CANCELLED" } else { "CONFIRMED" });
    }
    let s = t.assert_settled("race").await;
    assert_eq!(s.by_status.get("CONFIRMED").copied().unwrap_or(0), confirmed);
    assert_eq!(s.saleable, 100 - confirmed, "every cancelled unit came back once: {s:?} ({cancelled} cancelled)");
}

#[tokio::test]
async fn unpaid_reservations_time_out_and_stock_comes_back() {
    let t = TestApp::start().await;
    t.collection("to", json!({ "quantity": 10, "paymentWindowSeconds": 3 })).await;
    let started = Instant::now();
    assert_eq!(t.reserve("u", "to", "late-payer", 2).await.status, 202);
    assert_eq!(t.reserve("u", "to", "payer", 1).await.status, 202);
    let r = t.wait_status("u", "to", "late-payer", "RESERVED", 10 * SECOND).await;
    let expires_at = r.int("expiresAt");
    assert!(expires_at > 0, "a reserved order shows its deadline: {r:?}");
    t.wait_status("u", "to", "payer", "RESERVED", 10 * SECOND).await;
    assert_eq!(t.confirm("to", "u", "payer").await.status, 200);
    let c = t.wait_status("u", "to", "late-payer", "CANCELLED", 30 * SECOND).await;
    assert_eq!(c.str("reason"), "TIMEOUT");
    let lag_ms = flashstock::now_ms() - expires_at * 1000;
    eprintln!("timeout precision: CANCELLED observed {lag_ms} ms after the deadline (polled every 100 ms)");
    let lag = lag_ms / 1000;
    assert!(lag <= 60, "cancelled within a minute of its deadline (lag {lag} s)");
    assert!(started.elapsed() >= Duration::from_secs(2), "not before its deadline");
    t.confirm("to", "u", "late-payer").await.assert_problem(409, "ALREADY_CANCELLED");
    let s = t.assert_settled("to").await;
    assert_eq!((s.saleable, s.redis_stock), (9, Some(9)), "{s:?}");
    tokio::time::sleep(4 * SECOND).await;
    assert_eq!(t.status("u", "to", "payer").await.str("status"), "CONFIRMED", "a paid order never times out");
}

#[tokio::test]
async fn a_lost_timer_is_caught_by_the_sweep() {
    // No timer consumer: every timer message is "lost"; the scheduled sweep must cancel.
    let opts =
        Options { run_timers: false, schedule_interval: Some(Duration::from_millis(500)), ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |_| {}).await;
    t.collection("sw", json!({ "quantity": 5, "paymentWindowSeconds": 2 })).await;
    assert_eq!(t.reserve("u", "sw", "o1", 1).await.status, 202);
    t.wait_status("u", "sw", "o1", "RESERVED", 10 * SECOND).await;
    let c = t.wait_status("u", "sw", "o1", "CANCELLED", 20 * SECOND).await;
    assert_eq!(c.str("reason"), "TIMEOUT");
    let s = t.assert_settled("sw").await;
    assert_eq!(s.saleable, 5);
}

#[tokio::test]
async fn timers_fire_once_and_redelay_when_early() {
    let t = TestApp::start_with(Options { run_timers: false, ..TestApp::fast_options() }, |_| {}).await;
    t.collection("tm", json!({ "quantity": 5, "paymentWindowSeconds": 1000 })).await;
    assert_eq!(t.reserve("u", "tm", "o1", 1).await.status, 202);
    let r = t.wait_status("u", "tm", "o1", "RESERVED", 10 * SECOND).await;
    let body = |due: i64| json!({ "collectionId": "tm", "userId": "u", "orderId": "o1", "dueAt": due }).to_string();
    let ev = |due: i64| sqs_event(&[(format!("m{due}"), body(due))]);
    // Early (window longer than SQS's 900 s cap): re-delayed, nothing cancelled.
    let now = flashstock::now_ms();
    let (resp, report) = timers_event(&*t.stack.app, ev(r.int("expiresAt")), now).await;
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(report.redelayed, 1);
    assert_eq!(t.queue_depth(&t.stack.queues.timeouts).await, 2, "the original timer and the re-delayed one");
    assert_eq!(t.status("u", "tm", "o1").await.str("status"), "RESERVED");
    // Due: cancelled once; a duplicate timer is a no-op.
    let late = (r.int("expiresAt") + 1) * 1000;
    let (_, first) = timers_event(&*t.stack.app, ev(0), late).await;
    let (_, second) = timers_event(&*t.stack.app, ev(0), late).await;
    assert_eq!((first.cancelled, second.cancelled, second.already_final), (1, 0, 1));
    let s = t.assert_settled("tm").await;
    assert_eq!(s.saleable, 5);
}

#[tokio::test]
async fn poison_timer_messages_are_reported() {
    let t = TestApp::start_with(Options { run_timers: false, ..TestApp::fast_options() }, |_| {}).await;
    let (resp, report) = timers_event(&*t.stack.app, sqs_event(&[("bad", "{")]), flashstock::now_ms()).await;
    assert_eq!(resp.batch_item_failures.len(), 1);
    assert_eq!(report.errors, 1);
}

#[tokio::test]
async fn an_empty_rollback_before_the_first_warm_up_still_refuses_the_late_try() {
    let t = TestApp::start().await;
    let a = t.create("early", json!({ "quantity": 5 })).await;
    assert_eq!(a.status, 201, "{a:?}");
    // The buyer gives up on an order before the sale is even cached.
    assert_eq!(t.cancel("u", "early", "o1").await.str("reason"), "EMPTY_ROLLBACK");
    assert_eq!(t.warmup("early").await.status, 200);
    t.reserve("u", "early", "o1", 1).await.assert_problem(409, "ORDER_CANCELLED");
    assert_eq!(t.reserve("u", "early", "o2", 1).await.status, 202);
    let s = t.wait_status("u", "early", "o2", "RESERVED", 10 * SECOND).await;
    assert_eq!(s.int("quantity"), 1);
    let s = t.assert_settled("early").await;
    assert_eq!((s.saleable, s.redis_stock), (4, Some(4)), "{s:?}");
}
