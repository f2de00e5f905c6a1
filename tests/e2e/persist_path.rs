//! Persist: duplicate delivery, mixed batches (replays + short stock), poison messages to the DLQ.

use std::time::{Duration, Instant};

use flashstock::lambda::{persist_event, sqs_event};
use flashstock::ports::ReservationMessage;
use flashstock_e2e::TestApp;
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn duplicate_delivery_is_applied_once() {
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    t.collection("dup", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("u", "dup", "o1", 3).await.status, 202);
    assert_eq!(t.status("u", "dup", "o1").await.str("status"), "PENDING");
    let body = t.take_reservation_message().await;
    // The same message twice in one batch, then again in a later batch, then concurrently.
    let r = persist_event(&*t.stack.app, sqs_event(&[("m1", &body), ("m2", &body)]), 0).await;
    assert!(r.batch_item_failures.is_empty());
    let r = persist_event(&*t.stack.app, sqs_event(&[("m3", &body)]), 0).await;
    assert!(r.batch_item_failures.is_empty());
    let (a, b) = tokio::join!(
        persist_event(&*t.stack.app, sqs_event(&[("m4", &body)]), 0),
        persist_event(&*t.stack.app, sqs_event(&[("m5", &body)]), 0)
    );
    assert!(a.batch_item_failures.is_empty() && b.batch_item_failures.is_empty());
    assert_eq!(t.status("u", "dup", "o1").await.str("status"), "RESERVED");
    let s = t.assert_settled("dup").await;
    assert_eq!(s.saleable, 7, "taken once: {s:?}");
}

#[tokio::test]
async fn a_batch_of_replays_new_orders_and_short_stock() {
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    // One bucket: first come, first served across the whole batch.
    t.collection("mix", json!({ "quantity": 10, "buckets": 1 })).await;
    // Two orders become durable first.
    for (u, o) in [("a", "r1"), ("b", "r2")] {
        assert_eq!(t.reserve(u, "mix", o, 2).await.status, 202);
    }
    let first: Vec<String> = vec![t.take_reservation_message().await, t.take_reservation_message().await];
    let records: Vec<(String, &String)> = first.iter().enumerate().map(|(i, b)| (format!("f{i}"), b)).collect();
    let r = persist_event(&*t.stack.app, sqs_event(&records), 0).await;
    assert!(r.batch_item_failures.is_empty());
    // Redis drifted high: DynamoDB only has 6 left but Redis is told 12.
    t.set_redis_stock("mix", 12).await;
    for (u, o, q) in [("c", "n1", 3), ("d", "n2", 2), ("e", "n3", 3), ("f", "n4", 1)] {
        assert_eq!(t.reserve(u, "mix", o, q).await.status, 202, "{o}");
    }
    let mut bodies = first.clone(); // replays of r1, r2
    for _ in 0..4 {
        bodies.push(t.take_reservation_message().await);
    }
    let records: Vec<(String, &String)> = bodies.iter().enumerate().map(|(i, b)| (format!("m{i}"), b)).collect();
    let r = persist_event(&*t.stack.app, sqs_event(&records), 0).await;
    assert!(r.batch_item_failures.is_empty(), "every order resolved: {:?}", r.batch_item_failures);
    // 6 left: n1 (3) and n2 (2) fit, n3 (3) does not, n4 (1) does — first come, first served.
    for (u, o, want) in
        [("c", "n1", "RESERVED"), ("d", "n2", "RESERVED"), ("e", "n3", "FAILED"), ("f", "n4", "RESERVED")]
    {
        assert_eq!(t.status(u, "mix", o).await.str("status"), want, "{o}");
    }
    let s = t.stores("mix").await;
    TestApp::assert_identities(&s, false);
    assert_eq!(s.saleable, 0);
    assert_eq!(s.by_status.get("FAILED").copied(), Some(3));
    assert_eq!(s.redis_pending, 0);
    // A replay of the FAILED order answers as the first time and takes nothing (a known buyer's
    // take, kept while deduct.lua reads the records, is given back), with stock enough to take.
    t.set_redis_stock("mix", 5).await;
    let replay = t.reserve("e", "mix", "n3", 3).await;
    assert_eq!((replay.status, replay.str("orderId")), (202, "n3"), "{replay:?}");
    assert_eq!(t.status("e", "mix", "n3").await.str("status"), "FAILED");
    assert_eq!(t.stores("mix").await.redis_stock, Some(5), "nothing taken");
}

#[tokio::test]
async fn poison_messages_go_to_the_dlq_and_good_ones_in_the_batch_land() {
    let t = TestApp::start().await;
    t.collection("p", json!({ "quantity": 10 })).await;
    let send = |body: String| {
        let sqs = t.stack.sqs.clone();
        let url = t.stack.queues.reservations.clone();
        async move { sqs.send_message().queue_url(url).message_body(body).send().await.unwrap() }
    };
    send("{not json".to_owned()).await;
    let unknown = ReservationMessage {
        order_id: flashstock::domain::OrderId::parse("ghost").unwrap(),
        collection_id: flashstock::domain::CollectionId::parse("no-such-collection").unwrap(),
        user_id: flashstock::domain::UserId::parse("u").unwrap(),
        quantity: 1,
        accepted_at_ms: flashstock::now_ms(),
    };
    send(serde_json::to_string(&unknown).unwrap()).await;
    assert_eq!(t.reserve("u", "p", "good", 1).await.status, 202);
    t.wait_status("u", "p", "good", "RESERVED", Duration::from_secs(10)).await;
    // maxReceiveCount 5, visibility 2 s: both poison messages reach the DLQ.
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.queue_depth(&t.stack.queues.reservations_dlq).await < 2 {
        assert!(Instant::now() < deadline, "poison messages never reached the DLQ");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(t.queue_depth(&t.stack.queues.reservations).await, 0);
    t.assert_settled("p").await;
}

#[tokio::test]
async fn persist_consumers_take_turns_on_a_collection_through_its_write_turns() {
    use flashstock::ports::prelude::*;
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    // One bucket: every buyer's orders wait for the turn held below.
    t.collection("turns", json!({ "quantity": 10, "buckets": 1 })).await;
    let cache = &t.stack.app.cache;
    let c = flashstock::domain::CollectionId::parse("turns").unwrap();
    let ttl = std::time::Duration::from_millis(300);
    assert!(cache.take_turn(&c, 0, "a", ttl).await.unwrap());
    assert!(!cache.take_turn(&c, 0, "b", ttl).await.unwrap(), "one holder at a time");
    assert!(cache.take_turn(&c, 0, "a", ttl).await.unwrap(), "the holder renews");
    cache.give_turn(&c, 0, "b").await.unwrap();
    assert!(!cache.take_turn(&c, 0, "b", ttl).await.unwrap(), "only the holder gives it back");
    cache.give_turn(&c, 0, "a").await.unwrap();
    assert!(cache.take_turn(&c, 0, "b", ttl).await.unwrap());
    // A holder that never gives it back (a consumer that died) holds it only for its time.
    tokio::time::sleep(ttl * 2).await;
    assert!(cache.take_turn(&c, 0, "a", ttl).await.unwrap());
    // Persist waits for a held write turn and goes ahead when it is given back.
    for i in 0..4 {
        assert_eq!(t.reserve(&format!("u{i}"), "turns", "o1", 1).await.status, 202);
    }
    let give_back = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        cache.give_turn(&c, 0, "a").await.unwrap();
    };
    let (delivered, ()) = tokio::join!(t.deliver_reservations(10), give_back);
    assert_eq!(delivered, 4);
    for i in 0..4 {
        assert_eq!(t.status(&format!("u{i}"), "turns", "o1").await.str("status"), "RESERVED");
    }
    t.assert_settled("turns").await;
}

/// Transactions and conflicts the local DynamoDB counted (it runs with DynamoDB's conflict
/// semantics, `infra/moto_serial.py`), or None when it does not.
async fn conflict_counts() -> Option<(u64, u64)> {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok()?;
    let v: serde_json::Value = reqwest::get(format!("{url}/flashstock/conflicts")).await.ok()?.json().await.ok()?;
    Some((v["transactions"].as_u64()?, v["transaction_conflicts"].as_u64()?))
}

#[tokio::test]
async fn confirms_and_cancels_during_a_hot_persist_all_succeed() {
    // Every persist transaction writes the collection item, and so do confirm and cancel: DynamoDB
    // cancels a transaction on an item another one holds. During a drop, the payment service's
    // confirms and the buyers' cancels must still go through, not end in 503s.
    let (tx0, c0) = conflict_counts().await.expect("the local DynamoDB runs with conflict semantics");
    let opts = flashstock_e2e::Options {
        persist_consumers: 8,
        persist_batch_size: 100,
        batching_window: Duration::from_millis(300),
        ..TestApp::fast_options()
    };
    let t = TestApp::start_with(opts, |_| {}).await;
    t.collection("rush", json!({ "quantity": 3000 })).await;
    let first: Vec<usize> = (0..80).collect();
    let tries = |range: Vec<usize>| {
        let t = &t;
        futures::stream::iter(range)
            .map(move |i| async move { (i, t.reserve(&format!("b{i}"), "rush", &format!("o{i}"), 1).await) })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
    };
    assert!(tries(first.clone()).await.iter().all(|(_, a)| a.status == 202));
    for i in &first {
        t.wait_status(&format!("b{i}"), "rush", &format!("o{i}"), "RESERVED", Duration::from_secs(30)).await;
    }
    // A second wave keeps persist busy on the collection item while the first is confirmed and
    // cancelled.
    let second_phase = futures::stream::iter(first.clone())
        .map(|i| {
            let t = &t;
            async move {
                let (u, o) = (format!("b{i}"), format!("o{i}"));
                if i % 2 == 0 {
                    ("CONFIRMED", t.confirm("rush", &u, &o).await)
                } else {
                    ("CANCELLED", t.cancel(&u, "rush", &o).await)
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    let (wave, answers) = tokio::join!(tries((1_000..1_400).collect()), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        second_phase.await
    });
    assert!(wave.iter().all(|(_, a)| a.status == 202));
    for (want, a) in &answers {
        assert_eq!((a.status, a.str("status")), (200, *want), "{a:?}");
    }
    let (tx1, c1) = conflict_counts().await.unwrap_or_default();
    eprintln!("{} transactions, {} cancelled for conflicts", tx1.saturating_sub(tx0), c1.saturating_sub(c0));
    let s = t.assert_settled("rush").await;
    assert_eq!(s.by_status.get("CONFIRMED").copied(), Some(40), "{s:?}");
    assert_eq!(s.by_status.get("RESERVED").copied(), Some(400), "{s:?}");
}
