//! Cache shards on the real stores: a collection's Redis state over several hash tags (on the
//! local Redis Cluster, over its nodes), buyers on an empty shard served by shard moves, a dead
//! mover's move finished by reconciliation, and one lost shard rebuilt while the others sell.

use std::time::Duration;

use flashstock::domain::buckets::home_shard;
use flashstock::domain::{CacheShard, CollectionId, UserId};
use flashstock::ports::{MoveLog, MoveOut, ShardMoves};
use flashstock_e2e::TestApp;
use futures::StreamExt;
use serde_json::json;

/// `n` buyer names whose records live on cache shard `shard` of a collection of `shards`.
fn buyers_on(shard: u32, shards: u32, n: usize, tag: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{tag}{i}"))
        .filter(|b| home_shard(&UserId::parse(b).unwrap(), shards) == shard)
        .take(n)
        .collect()
}

#[tokio::test]
async fn buyers_all_on_one_shard_buy_every_unit_on_a_redis_cluster() {
    let t = TestApp::start_cluster(TestApp::fast_options(), |_| {}).await;
    t.collection("spread", json!({ "quantity": 30, "buckets": 3, "cacheShards": 3 })).await;
    // The three shards' hash tags sit in three slots.
    let mut con = t.redis.clone();
    let mut slots = std::collections::BTreeSet::new();
    for shard in 0..3 {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(t.shard_keys("spread", shard).stock(3))
            .query_async(&mut con)
            .await
            .unwrap();
        slots.insert(slot);
    }
    assert_eq!(slots.len(), 3, "{slots:?}");
    // 40 buyers, every one homed on shard 0 (10 units there): the other shards' 20 units move to
    // it. Each retries a retryable answer as a storefront does.
    let buyers = buyers_on(0, 3, 40, "b");
    let started = std::time::Instant::now();
    let answers: Vec<(String, u16, String, Duration, Duration)> = futures::stream::iter(buyers.iter().cloned())
        .map(|b| {
            let t = &t;
            async move {
                let mut tries = 0;
                loop {
                    let from = started.elapsed();
                    let a = t.reserve(&b, "spread", "o1", 1).await;
                    tries += 1;
                    if a.status == 503 && tries < 20 {
                        tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                        continue;
                    }
                    let code = if a.status == 202 { String::new() } else { a.code().to_owned() };
                    return (b, a.status, code, from, started.elapsed());
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let accepted: Vec<&String> = answers.iter().filter(|a| a.1 == 202).map(|a| &a.0).collect();
    let refused: Vec<&str> = answers.iter().filter(|a| a.1 != 202).map(|a| a.2.as_str()).collect();
    if accepted.len() != 30 {
        let mut con = t.redis.clone();
        let mut moves = Vec::new();
        for r in 0..3 {
            let m: Vec<(String, String)> =
                redis::cmd("HGETALL").arg(t.shard_keys("spread", r).moves()).query_async(&mut con).await.unwrap();
            moves.push(m);
        }
        panic!("every unit sold: {refused:?} {:?} moves {moves:?}", t.stores("spread").await);
    }
    assert!(refused.iter().all(|c| *c == "SOLD_OUT"), "{refused:?}");
    // No buyer was told SOLD_OUT while a unit was left: no Try sent after that answer got one.
    let first_sold_out = answers.iter().filter(|a| a.1 == 409).map(|a| a.4).min().expect("some sold out");
    let late: Vec<_> = answers.iter().filter(|a| a.1 == 202 && a.3 > first_sold_out).collect();
    assert!(late.is_empty(), "accepted after a SOLD_OUT answer: {late:?}");
    let view = t.inspect("spread").await;
    let shards = view.body["cacheShards"].as_array().expect("a level per shard").clone();
    assert_eq!(shards.len(), 3);
    assert!(shards.iter().all(|s| s["cached"] == 0), "every shard empty: {shards:?}");
    for b in &accepted {
        t.wait_status(b, "spread", "o1", "RESERVED", Duration::from_secs(30)).await;
    }
    let s = t.assert_settled("spread").await;
    assert_eq!((s.saleable, s.redis_stock), (0, Some(0)));
    // A cancel gives the unit back to its buyer's own shard, and the next buyer there gets it.
    assert_eq!(t.cancel(accepted[0], "spread", "o1").await.str("status"), "CANCELLED");
    let late = buyers_on(0, 3, 41, "b").pop().unwrap();
    assert_eq!(t.reserve(&late, "spread", "o1", 1).await.status, 202);
    t.wait_status(&late, "spread", "o1", "RESERVED", Duration::from_secs(30)).await;
    t.assert_settled("spread").await;
}

#[tokio::test]
async fn a_dead_movers_shard_moves_are_finished_by_reconciliation() {
    let t = TestApp::start_with(TestApp::fast_options(), |c| c.reconcile_threshold_ms = 0).await;
    t.collection("dead", json!({ "quantity": 4, "buckets": 2, "cacheShards": 2 })).await;
    let (app, id) = (&t.stack.app, CollectionId::parse("dead").unwrap());
    let now = flashstock::now_ms();
    // One mover died after taking a unit from shard 0; another after DynamoDB moved its unit too.
    assert_eq!(
        app.cache.move_out(&id, CacheShard::new(0, 2), 1, "m-taken", 1, 1, now).await.unwrap(),
        MoveOut::Taken(1)
    );
    assert_eq!(
        app.cache.move_out(&id, CacheShard::new(0, 2), 1, "m-moved", 1, 1, now).await.unwrap(),
        MoveOut::Taken(1)
    );
    app.ledger.move_between_shards(&id, "m-moved", &[(0, 1)], 1, now).await.unwrap();
    let s = t.stores("dead").await;
    assert_eq!(s.redis_shards, vec![(Some(0), 0), (Some(2), 0)], "two units in flight");
    // Not rebuilt from DynamoDB while they are: shard 1's buckets hold a unit its stock lacks.
    let report = app.reconcile_collections(std::slice::from_ref(&id), flashstock::now_ms() + 1).await;
    let r = &report.collections["dead"];
    assert_eq!((r.moves_finished, r.errors.len()), (2, 0), "{r:?}");
    let s = t.assert_settled("dead").await;
    assert_eq!(s.redis_shards, vec![(Some(1), 0), (Some(3), 0)], "one back, one moved");
    assert_eq!(s.bucket_saleable, vec![1, 3]);
    // A late commit of the called-off move is refused by its ABORTED item.
    assert!(app.ledger.move_between_shards(&id, "m-taken", &[(0, 1)], 1, now).await.is_err());
    t.assert_settled("dead").await;
}

#[tokio::test]
async fn a_lost_shard_is_rebuilt_while_the_others_sell() {
    let t = TestApp::start_with(TestApp::fast_options(), |c| c.reconcile_threshold_ms = 0).await;
    t.collection("lost", json!({ "quantity": 8, "buckets": 4, "cacheShards": 2 })).await;
    let mut con = t.redis.clone();
    let _: () = redis::cmd("DEL").arg(t.shard_keys("lost", 1).stock(2)).query_async(&mut con).await.unwrap();
    // Shard 0's buyers still buy; shard 1's are told the cache is not ready (not sold out).
    let on0 = buyers_on(0, 2, 2, "z");
    let on1 = buyers_on(1, 2, 1, "y");
    assert_eq!(t.reserve(&on0[0], "lost", "o", 1).await.status, 202);
    t.reserve(&on1[0], "lost", "o", 1).await.assert_problem(503, "CACHE_NOT_READY");
    let report = t.stack.app.reconcile_collections(&[CollectionId::parse("lost").unwrap()], flashstock::now_ms()).await;
    assert!(report.collections["lost"].rebuilt, "{report:?}");
    assert_eq!(t.reserve(&on1[0], "lost", "o", 1).await.status, 202);
    assert_eq!(t.reserve(&on0[1], "lost", "o", 1).await.status, 202);
    for b in [&on0[0], &on0[1], &on1[0]] {
        t.wait_status(b, "lost", "o", "RESERVED", Duration::from_secs(30)).await;
    }
    let s = t.assert_settled("lost").await;
    assert_eq!(s.redis_stock, Some(5));
}

#[tokio::test]
async fn cache_shards_must_divide_the_buckets() {
    let t = TestApp::start().await;
    for (body, why) in [
        (json!({ "quantity": 5, "buckets": 4, "cacheShards": 3 }), "not a divisor"),
        (json!({ "quantity": 5, "cacheShards": 0 }), "zero"),
        (json!({ "quantity": 5, "buckets": 2, "cacheShards": 4 }), "more than the buckets"),
        (json!({ "quantity": 5, "cacheShards": "2" }), "a string"),
    ] {
        let a = t.create("bad-shards", body).await;
        a.assert_problem(400, "INVALID_FIELD");
        assert!(a.body.to_string().contains("cacheShards"), "{why}: {}", a.body);
    }
    // Like the bucket count, the shard count never changes after creation.
    t.collection("fixed", json!({ "quantity": 5, "buckets": 2, "cacheShards": 2 })).await;
    t.create("fixed", json!({ "quantity": 5, "buckets": 2, "cacheShards": 1 }))
        .await
        .assert_problem(409, "SETTINGS_IMMUTABLE");
}

#[tokio::test]
async fn every_step_of_a_shard_move_makes_a_rebuild_read_before_it_step_aside() {
    use flashstock::ports::{CacheWarmup, Rebuild};
    let t = TestApp::start().await;
    t.collection("steps", json!({ "quantity": 10, "buckets": 2, "cacheShards": 2 })).await;
    let (app, id) = (&t.stack.app, CollectionId::parse("steps").unwrap());
    let now = flashstock::now_ms();
    let (donor_shard, recipient_shard) = (CacheShard::new(0, 2), CacheShard::new(1, 2));
    // The donor read (stock and version) after its take, DynamoDB read after the move committed:
    // once the move is done, a repair from those reads would give the donor the units back.
    assert_eq!(app.cache.move_out(&id, donor_shard, 1, "m1", 2, 2, now).await.unwrap(), MoveOut::Taken(2));
    let donor = app.cache.snapshot(&id, donor_shard).await.unwrap();
    app.ledger.move_between_shards(&id, "m1", &[(0, 2)], 1, now).await.unwrap();
    assert_eq!(app.cache.move_in(&id, recipient_shard, "m1", 2, now).await.unwrap(), flashstock::ports::MoveIn::Added);
    assert!(app.cache.move_done(&id, donor_shard, "m1").await.unwrap());
    assert_eq!(app.cache.rebuild(&id, donor_shard, &donor, 5, false, 5).await.unwrap(), Rebuild::Race);
    // A recipient whose stock key was lost, read before a move's units reached its buckets: the
    // move's add (nothing added, the id recorded) makes that rebuild step aside too.
    let mut con = t.redis.clone();
    let _: () = redis::cmd("DEL").arg(t.shard_keys("steps", 1).stock(2)).query_async(&mut con).await.unwrap();
    let recipient = app.cache.snapshot(&id, recipient_shard).await.unwrap();
    assert_eq!(recipient.stock, None);
    assert_eq!(app.cache.move_out(&id, donor_shard, 1, "m2", 1, 1, now).await.unwrap(), MoveOut::Taken(1));
    app.ledger.move_between_shards(&id, "m2", &[(0, 1)], 1, now).await.unwrap();
    assert_eq!(
        app.cache.move_in(&id, recipient_shard, "m2", 1, now).await.unwrap(),
        flashstock::ports::MoveIn::NoCache
    );
    assert!(app.cache.move_done(&id, donor_shard, "m2").await.unwrap());
    assert_eq!(app.cache.rebuild(&id, recipient_shard, &recipient, 7, true, 5).await.unwrap(), Rebuild::Race);
    // Rebuilt from fresh reads, both shards match their buckets.
    let report = app.reconcile_collections(std::slice::from_ref(&id), flashstock::now_ms()).await;
    assert!(report.collections["steps"].errors.is_empty(), "{report:?}");
    let s = t.assert_settled("steps").await;
    assert_eq!(s.redis_shards, vec![(Some(2), 0), (Some(8), 0)]);
}

#[tokio::test]
async fn the_storefront_contract_holds_on_every_shard_of_a_collection_on_a_redis_cluster() {
    let t = TestApp::start_cluster(TestApp::manual_options(), |c| c.reconcile_threshold_ms = 0).await;
    t.collection("pact", json!({ "quantity": 12, "buckets": 6, "cacheShards": 3, "perUserLimit": 2 })).await;
    let wait = Duration::from_secs(30);
    for shard in 0..3 {
        let [a, b, c]: [String; 3] = buyers_on(shard, 3, 3, &format!("p{shard}-")).try_into().unwrap();
        // A replay answers what the first Try did; another quantity for the same id is refused.
        let first = t.reserve(&a, "pact", "o1", 1).await;
        assert_eq!(first.status, 202, "{}", first.body);
        let again = t.reserve(&a, "pact", "o1", 1).await;
        assert_eq!((again.status, &again.body), (202, &first.body));
        t.reserve(&a, "pact", "o1", 2).await.assert_problem(409, "IDEMPOTENCY_MISMATCH");
        // The per-user limit counts the buyer's orders on their shard.
        assert_eq!(t.reserve(&a, "pact", "o2", 1).await.status, 202);
        t.reserve(&a, "pact", "o3", 1).await.assert_problem(409, "LIMIT_EXCEEDED");
        // A cancel before persist leaves a tombstone: the late Try is refused.
        assert_eq!(t.reserve(&b, "pact", "o1", 1).await.status, 202);
        assert_eq!(t.cancel(&b, "pact", "o1").await.str("status"), "CANCELLED");
        t.reserve(&b, "pact", "o1", 1).await.assert_problem(409, "ORDER_CANCELLED");
        // An empty rollback: a cancel of an order never tried, then its Try.
        assert_eq!(t.cancel(&c, "pact", "ghost").await.str("status"), "CANCELLED");
        t.reserve(&c, "pact", "ghost", 1).await.assert_problem(409, "ORDER_CANCELLED");
        t.deliver_reservations(10).await;
        t.wait_status(&a, "pact", "o1", "RESERVED", wait).await;
        assert_eq!(t.confirm("pact", &a, "o1").await.str("status"), "CONFIRMED");
        assert_eq!(t.cancel(&a, "pact", "o2").await.str("status"), "CANCELLED");
        // Another buyer's order with the same id is their own.
        assert_eq!(t.status(&c, "pact", "o1").await.status, 404);
    }
    // 3 confirmed of 12; a buyer asking for more than is left is told how many are.
    let d = buyers_on(1, 3, 1, "q").pop().unwrap();
    let short = t.reserve(&d, "pact", "big", 2).await;
    assert_eq!(short.status, 202, "9 units are left over the shards: {}", short.body);
    t.deliver_reservations(10).await;
    let report = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!((report.identity_violations, report.errors), (0, 0), "{report:?}");
    let s = t.assert_settled("pact").await;
    assert_eq!((s.saleable, s.redis_stock), (7, Some(7)));
    let view = t.inspect("pact").await;
    assert_eq!(view.body["cacheShards"].as_array().map(Vec::len), Some(3));
}
