//! Raising a live collection's cache shards (docs/DESIGN.md#raising-cacheshards) on the local
//! Redis Cluster: every buyer keeps their orders, limits and tombstones, a function still
//! routing by the layout left is refused and then re-reads, every unit sells, and a raise whose
//! raiser died is finished by reconciliation.

use std::time::Duration;

use flashstock::app::LiveApp;
use flashstock::app::cancel::Canceller;
use flashstock::app::reserve::ReserveInput;
use flashstock::domain::buckets::home_shard;
use flashstock::domain::{CollectionId, OrderId, OrderKey, Status, UserId};
use flashstock::ports::{CacheRaise, Catalog};
use flashstock_e2e::TestApp;
use serde_json::json;

fn try_of(collection: &str, user: &str, order: &str) -> ReserveInput {
    ReserveInput {
        collection: CollectionId::parse(collection).unwrap(),
        order: OrderId::parse(order).unwrap(),
        user: UserId::parse(user).unwrap(),
        quantity: 1,
    }
}

/// The first of `buyers` whose home shard moves when 1 shard becomes `to`.
fn moved(buyers: &[String], to: u32) -> String {
    buyers.iter().find(|b| home_shard(&UserId::parse(b).unwrap(), to) != 0).cloned().expect("a buyer that moves")
}

#[tokio::test]
async fn a_live_collection_raised_keeps_every_buyers_orders_and_sells_every_unit() {
    let t = TestApp::start_cluster(TestApp::manual_options(), |c| c.reconcile_threshold_ms = 0).await;
    let created = json!({ "quantity": 40, "buckets": 4, "perUserLimit": 2 });
    t.collection("hot", created.clone()).await;
    let id = CollectionId::parse("hot").unwrap();
    // Three function instances that read the settings before the raise.
    let mut stale = Vec::new();
    for _ in 0..3 {
        let app = LiveApp::from_config(&t.stack.config).await.unwrap();
        app.spec(&id).await.unwrap();
        stale.push(app);
    }
    let [stale_try, stale_cancel, stale_durable]: [LiveApp; 3] = stale.try_into().ok().unwrap();
    // Six durable orders, six pending; a cancelled durable one, a tombstone, a buyer at the limit.
    let buyers: Vec<String> = (0..12).map(|i| format!("buyer-{i}")).collect();
    for b in &buyers[..6] {
        assert_eq!(t.reserve(b, "hot", "o1", 1).await.status, 202);
    }
    t.deliver_reservations(10).await;
    t.wait_status(&buyers[0], "hot", "o1", "RESERVED", Duration::from_secs(30)).await;
    for b in &buyers[6..] {
        assert_eq!(t.reserve(b, "hot", "o1", 1).await.status, 202);
    }
    assert_eq!(t.cancel(&buyers[0], "hot", "o1").await.str("status"), "CANCELLED");
    assert_eq!(t.cancel(&buyers[6], "hot", "o1").await.str("status"), "CANCELLED");
    assert_eq!(t.reserve(&buyers[1], "hot", "o2", 1).await.status, 202);

    let raised = t.raise("hot", json!({ "cacheShards": 4 })).await;
    assert_eq!(raised.status, 200, "{raised:?}");
    assert_eq!((raised.int("cacheShards"), raised.int("raisedFrom")), (4, 1));
    assert!(raised.int("buyersMoved") >= 1, "{raised:?}");
    assert_eq!(raised.int("cached"), 40 - 11, "the 11 units held (10 orders and b1's second) are not for sale");

    // Every buyer's orders answer as before, wherever the buyer lives now.
    for b in buyers[1..6].iter().chain(&buyers[7..]) {
        assert_eq!(t.reserve(b, "hot", "o1", 1).await.status, 202, "{b}'s replay");
    }
    t.reserve(&buyers[0], "hot", "o1", 1).await.assert_problem(409, "ORDER_CANCELLED");
    t.reserve(&buyers[6], "hot", "o1", 1).await.assert_problem(409, "ORDER_CANCELLED");
    t.reserve(&buyers[1], "hot", "o3", 1).await.assert_problem(409, "LIMIT_EXCEEDED");
    // A function routing by the layout left finds no stock there: 503, and once its settings
    // are a second old it reads them again.
    tokio::time::sleep(flashstock::app::SPEC_RECHECK).await;
    let mover = moved(&buyers[7..], 4);
    let r = stale_try.reserve(try_of("hot", &mover, "o1"), flashstock::now_ms()).await;
    assert!(matches!(r, Err(flashstock::app::AppError::CacheNotReady)), "{r:?}");
    let r = stale_try.reserve(try_of("hot", &mover, "o1"), flashstock::now_ms()).await;
    assert!(r.is_ok(), "the replay after re-reading: {r:?}");
    // A cancel routed by the old layout finds the pending order where it lives now.
    let key = OrderKey::new(id.clone(), UserId::parse(&mover).unwrap(), OrderId::parse("o1").unwrap());
    let c = stale_cancel.cancel(&key, Canceller::Buyer, flashstock::now_ms()).await.unwrap();
    assert_eq!(c.view.status, Status::Cancelled);
    // A cancel of a durable order routed by the old layout is refused by the shard (its layout's
    // count is another now), not written where the buyer no longer is; routed anew it goes through.
    let durable = moved(&buyers[2..6], 4);
    let key = OrderKey::new(id.clone(), UserId::parse(&durable).unwrap(), OrderId::parse("o1").unwrap());
    let r = stale_durable.cancel(&key, Canceller::Buyer, flashstock::now_ms()).await;
    assert!(matches!(&r, Err(flashstock::app::AppError::Infra(e)) if e.message.contains("raised since")), "{r:?}");
    assert_eq!(t.status(&durable, "hot", "o1").await.str("status"), "RESERVED");
    assert_eq!(t.cancel(&durable, "hot", "o1").await.str("status"), "CANCELLED");

    // The rest sells out over the four shards, every unit.
    t.deliver_reservations(10).await;
    let (mut sold, mut sold_out) = (0, false);
    for i in 0..400 {
        let a = t.reserve(&format!("late-{i}"), "hot", "o1", 1).await;
        match a.status {
            202 => sold += 1,
            503 => continue,
            _ => {
                a.assert_problem(409, "SOLD_OUT");
                sold_out = true;
                break;
            }
        }
    }
    assert!(sold_out, "sold {sold} and never out");
    assert_eq!(sold, 40 - 9, "9 held: 11 taken before, the mover's and a durable one cancelled");
    while t.deliver_reservations(10).await > 0 {}
    let report = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!((report.identity_violations, report.errors), (0, 0), "{report:?}");
    let s = t.assert_settled("hot").await;
    assert_eq!((s.saleable, s.redis_stock), (0, Some(0)));
    assert_eq!(t.inspect("hot").await.body["cacheShards"].as_array().map(Vec::len), Some(4));
    // The creation's body again is still the same collection.
    assert_eq!(t.create("hot", created).await.status, 200);
}

#[tokio::test]
async fn a_raise_is_a_larger_multiple_that_divides_the_buckets() {
    let t = TestApp::start().await;
    t.collection("r", json!({ "quantity": 5, "buckets": 8, "cacheShards": 2 })).await;
    for (body, why) in [
        (json!({ "cacheShards": 3 }), "not a multiple"),
        (json!({ "cacheShards": 1 }), "lower"),
        (json!({ "cacheShards": 16 }), "more than the buckets"),
        (json!({ "cacheShards": "4" }), "a string"),
        (json!({}), "missing"),
    ] {
        let a = t.raise("r", body).await;
        a.assert_problem(400, "INVALID_FIELD");
        assert!(a.body.to_string().contains("cacheShards"), "{why}: {}", a.body);
    }
    let same = t.raise("r", json!({ "cacheShards": 2 })).await;
    assert_eq!((same.status, same.body["raisedFrom"].is_null(), same.int("cached")), (200, true, 5));
    t.raise("none", json!({ "cacheShards": 2 })).await.assert_problem(404, "COLLECTION_NOT_FOUND");
    t.call("POST", "/v1/admin/collections/r/cache-shards", "buyer", &[], Some(json!({ "cacheShards": 4 })))
        .await
        .assert_problem(403, "FORBIDDEN");
    // Created with 2, raised to 8: 8 and 2 are the same collection again, 4 never was.
    assert_eq!(t.raise("r", json!({ "cacheShards": 8 })).await.int("cached"), 5);
    assert_eq!(t.create("r", json!({ "quantity": 5, "buckets": 8, "cacheShards": 8 })).await.status, 200);
    assert_eq!(t.create("r", json!({ "quantity": 5, "buckets": 8, "cacheShards": 2 })).await.status, 200);
    t.create("r", json!({ "quantity": 5, "buckets": 8, "cacheShards": 4 }))
        .await
        .assert_problem(409, "SETTINGS_IMMUTABLE");
}

#[tokio::test]
async fn a_raise_whose_raiser_died_is_finished_by_reconciliation() {
    let t = TestApp::start_with(TestApp::manual_options(), |c| c.reconcile_threshold_ms = 0).await;
    t.collection("half", json!({ "quantity": 10, "buckets": 4, "cacheShards": 2 })).await;
    let (app, id) = (&t.stack.app, CollectionId::parse("half").unwrap());
    let buyers: Vec<String> = (0..6).map(|i| format!("b-{i}")).collect();
    for b in &buyers {
        assert_eq!(t.reserve(b, "half", "o1", 1).await.status, 202);
    }
    // The raiser died with every shard fenced, before any buyer moved.
    assert!(app.ledger.begin_raise(&id, 2, 4).await.unwrap());
    for r in 0..4 {
        assert!(app.cache.fence(&id, r, 2, 4).await.unwrap());
    }
    // Nothing sells, nothing is rebuilt, nothing is taken for unknown while the raise is open.
    t.reserve("new", "half", "o1", 1).await.assert_problem(503, "CACHE_NOT_READY");
    t.warmup("half").await.assert_problem(503, "SERVICE_UNAVAILABLE");
    let r = t.cancel(&buyers[0], "half", "o1").await;
    assert_eq!(r.status, 503, "the buyer's records may be on their way: {r:?}");
    let report = app.reconcile_collections(std::slice::from_ref(&id), flashstock::now_ms()).await;
    assert!(report.collections["half"].raise_finished, "{report:?}");
    assert!(report.collections["half"].errors.is_empty(), "{report:?}");
    assert_eq!(t.inspect("half").await.body["cacheShards"].as_array().map(Vec::len), Some(4));
    // Every order is where its buyer lives now, and the stock holds them back. The cancel that
    // answered 503 had written its tombstone: its retry answers what it did.
    for b in &buyers[1..] {
        assert_eq!(t.status(b, "half", "o1").await.str("status"), "PENDING", "{b}");
    }
    assert_eq!(t.cancel(&buyers[0], "half", "o1").await.str("status"), "CANCELLED");
    while t.deliver_reservations(10).await > 0 {}
    let report = app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!((report.identity_violations, report.errors), (0, 0), "{report:?}");
    let s = t.assert_settled("half").await;
    assert_eq!((s.saleable, s.redis_stock), (5, Some(5)));
    // A finisher lagging behind the one that ended the raise fences nothing again.
    for r in 0..4 {
        assert!(!app.cache.fence(&id, r, 2, 4).await.unwrap(), "shard {r}");
    }
    assert_eq!(t.cancel(&buyers[1], "half", "o1").await.str("status"), "CANCELLED");
    assert_eq!(t.assert_settled("half").await.redis_stock, Some(6));
}
