//! Try: idempotency, limits, concurrency, cache loss and send failure, through the front door.

use std::time::Duration;

use flashstock_e2e::TestApp;
use flashstock_local::stack::StackOptions;
use futures::StreamExt;
use serde_json::json;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn replay_returns_the_original_answer_and_a_changed_body_is_refused() {
    let t = TestApp::start().await;
    t.collection("c1", json!({ "quantity": 10 })).await;
    let first = t.reserve("alice", "c1", "o-1", 2).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(first.body, json!({ "orderId": "o-1", "collectionId": "c1", "quantity": 2, "status": "PENDING" }));
    let again = t.reserve("alice", "c1", "o-1", 2).await;
    assert_eq!((again.status, &again.body), (202, &first.body), "a replay answers as the original");
    t.reserve("alice", "c1", "o-1", 3).await.assert_problem(409, "IDEMPOTENCY_MISMATCH");
    t.wait_status("alice", "c1", "o-1", "RESERVED", 10 * SECOND).await;
    let late = t.reserve("alice", "c1", "o-1", 2).await;
    assert_eq!(late.status, 202, "a replay after persist still answers as the original: {late:?}");
    let s = t.assert_settled("c1").await;
    assert_eq!((s.saleable, s.by_status.get("RESERVED").copied()), (8, Some(2)), "taken once: {s:?}");
}

#[tokio::test]
async fn order_ids_are_scoped_to_their_buyer() {
    let t = TestApp::start().await;
    t.collection("scope", json!({ "quantity": 10 })).await;
    // Two buyers use the same order id on one collection: two reservations, both accepted.
    assert_eq!(t.reserve("alice", "scope", "o-1", 2).await.status, 202);
    let bob = t.reserve("bob", "scope", "o-1", 3).await;
    assert_eq!(bob.status, 202, "bob's o-1 is his own order: {bob:?}");
    // A buyer's cancel of an id they never used does not touch another buyer's Try with that id.
    assert_eq!(t.cancel("mallory", "scope", "o-2").await.str("reason"), "EMPTY_ROLLBACK");
    assert_eq!(t.reserve("carol", "scope", "o-2", 1).await.status, 202, "mallory's tombstone is hers alone");
    t.reserve("mallory", "scope", "o-2", 1).await.assert_problem(409, "ORDER_CANCELLED");
    // Nobody sees another buyer's order, nor learns that it exists.
    t.status("mallory", "scope", "o-1").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    let a = t.wait_status("alice", "scope", "o-1", "RESERVED", 10 * SECOND).await;
    let b = t.wait_status("bob", "scope", "o-1", "RESERVED", 10 * SECOND).await;
    assert_eq!((a.int("quantity"), b.int("quantity")), (2, 3));
    // Each buyer's cancel and the payment service's confirm reach only that buyer's order.
    assert_eq!(t.cancel("alice", "scope", "o-1").await.str("status"), "CANCELLED");
    assert_eq!(t.confirm("scope", "bob", "o-1").await.str("status"), "CONFIRMED");
    t.confirm("scope", "dave", "o-1").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    t.wait_status("carol", "scope", "o-2", "RESERVED", 10 * SECOND).await;
    // The same buyer and order id on another collection is another reservation too.
    t.collection("scope2", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("alice", "scope2", "o-1", 2).await.status, 202);
    let s = t.assert_settled("scope").await;
    assert_eq!(s.saleable, 10 - 3 - 1, "bob's and carol's units are taken, alice's came back: {s:?}");
}

#[tokio::test]
async fn per_user_limit_counts_held_units_and_frees_them_on_cancel() {
    let t = TestApp::start().await;
    t.collection("lim", json!({ "quantity": 50, "perUserLimit": 3 })).await;
    assert_eq!(t.reserve("u", "lim", "a", 2).await.status, 202);
    let over = t.reserve("u", "lim", "b", 2).await;
    over.assert_problem(409, "LIMIT_EXCEEDED");
    assert_eq!(over.int("held"), 2);
    assert_eq!(t.reserve("u", "lim", "c", 1).await.status, 202);
    t.reserve("u", "lim", "d", 1).await.assert_problem(409, "LIMIT_EXCEEDED");
    assert_eq!(t.reserve("other", "lim", "e", 3).await.status, 202, "the limit is per user");
    t.wait_status("u", "lim", "a", "RESERVED", 10 * SECOND).await;
    assert_eq!(t.cancel("u", "lim", "a").await.status, 200);
    assert_eq!(t.reserve("u", "lim", "f", 2).await.status, 202, "a cancel releases the user's share");
    t.wait_status("u", "lim", "f", "RESERVED", 10 * SECOND).await;
    t.assert_settled("lim").await;
}

#[tokio::test]
async fn five_hundred_concurrent_buyers_for_one_hundred_units() {
    let t = TestApp::start().await;
    t.collection("hot", json!({ "quantity": 100 })).await;
    let answers: Vec<_> = futures::stream::iter(0..500)
        .map(|i| {
            let t = &t;
            async move { t.reserve(&format!("buyer-{i}"), "hot", &format!("order-{i}"), 1).await }
        })
        .buffer_unordered(500)
        .collect()
        .await;
    let accepted: Vec<_> = answers.iter().filter(|a| a.status == 202).collect();
    assert_eq!(accepted.len(), 100, "exactly the stock is accepted");
    for a in answers.iter().filter(|a| a.status != 202) {
        a.assert_problem(409, "SOLD_OUT");
    }
    for a in &accepted {
        let order = a.str("orderId");
        let user = format!("buyer-{}", order.trim_start_matches("order-"));
        t.wait_status(&user, "hot", order, "RESERVED", 30 * SECOND).await;
    }
    let s = t.assert_settled("hot").await;
    assert_eq!(s.saleable, 0);
    assert_eq!(s.by_status.get("RESERVED").copied(), Some(100));
    assert_eq!(s.by_status.len(), 1, "no other records: {s:?}");
}

#[tokio::test]
async fn insufficient_stock_names_what_is_left_and_sold_out_clears_after_a_cancel() {
    let clock = std::sync::Arc::new(flashstock::ports::ShiftedClock::default());
    let t = TestApp::start_with(StackOptions { clock: Some(clock.clone()), ..TestApp::fast_options() }, |_| {}).await;
    t.collection("small", json!({ "quantity": 3 })).await;
    assert_eq!(t.reserve("a", "small", "o1", 2).await.status, 202);
    let short = t.reserve("b", "small", "o2", 2).await;
    short.assert_problem(409, "INSUFFICIENT_STOCK");
    assert_eq!(short.int("available"), 1);
    assert_eq!(t.reserve("b", "small", "o3", 1).await.status, 202);
    t.reserve("c", "small", "o4", 1).await.assert_problem(409, "SOLD_OUT");
    // While sold out (the per-instance flag is up), a retry of an accepted order still gets its
    // original answer, and a reused order id with another body is still a mismatch.
    let replay = t.reserve("b", "small", "o3", 1).await;
    assert_eq!((replay.status, replay.body["orderId"].as_str()), (202, Some("o3")), "{replay:?}");
    t.reserve("b", "small", "o3", 2).await.assert_problem(409, "IDEMPOTENCY_MISMATCH");
    t.reserve("c", "small", "o3", 1).await.assert_problem(409, "SOLD_OUT");
    t.wait_status("a", "small", "o1", "RESERVED", 10 * SECOND).await;
    assert_eq!(t.cancel("a", "small", "o1").await.status, 200);
    // The per-instance sold-out flag must not outlive the returned stock by more than ~1 s: the
    // app's clock passes its lifetime (no real sleep).
    clock.advance(Duration::from_millis(1_100));
    assert_eq!(t.reserve("c", "small", "o5", 2).await.status, 202, "stock came back");
    t.wait_status("c", "small", "o5", "RESERVED", 10 * SECOND).await;
    t.assert_settled("small").await;
}

#[tokio::test]
async fn a_known_buyers_refused_or_replayed_order_leaves_the_stock_as_it_was() {
    // deduct.lua keeps a known buyer's take while it reads the buyer's records: every answer but
    // a new order taken must give it back, and a new order must be taken once.
    let t = TestApp::start().await;
    t.collection("known", json!({ "quantity": 10, "perUserLimit": 3 })).await;
    let cached = || async { t.inspect("known").await.int("cached") };
    assert_eq!(t.reserve("k", "known", "o1", 2).await.status, 202);
    assert_eq!(cached().await, 8);
    let replay = t.reserve("k", "known", "o1", 2).await;
    assert_eq!((replay.status, replay.str("orderId")), (202, "o1"), "a replay: {replay:?}");
    t.reserve("k", "known", "o1", 1).await.assert_problem(409, "IDEMPOTENCY_MISMATCH");
    t.reserve("k", "known", "o2", 2).await.assert_problem(409, "LIMIT_EXCEEDED");
    assert_eq!(cached().await, 8, "a replay, a mismatch and a refusal for the limit take nothing");
    assert_eq!(t.reserve("k", "known", "o2", 1).await.status, 202, "a known buyer's new order");
    assert_eq!(cached().await, 7, "taken once");
    t.wait_status("k", "known", "o1", "RESERVED", 10 * SECOND).await;
    let replay = t.reserve("k", "known", "o1", 2).await;
    assert_eq!((replay.status, replay.str("orderId")), (202, "o1"), "a replay of a durable order: {replay:?}");
    assert_eq!(t.cancel("k", "known", "o1").await.status, 200);
    assert_eq!(cached().await, 9);
    t.reserve("k", "known", "o1", 2).await.assert_problem(409, "ORDER_CANCELLED");
    assert_eq!(cached().await, 9, "a Try of a cancelled order takes nothing");
    t.wait_status("k", "known", "o2", "RESERVED", 10 * SECOND).await;
    let s = t.assert_settled("known").await;
    assert_eq!((s.saleable, s.redis_stock), (9, Some(9)), "{s:?}");
}

#[tokio::test]
async fn lost_cache_answers_503_until_warm_up_never_sold_out() {
    let t = TestApp::start().await;
    let a = t.create("cold", json!({ "quantity": 5 })).await;
    assert_eq!(a.status, 201, "{a:?}");
    t.reserve("u", "cold", "o1", 1).await.assert_problem(503, "CACHE_NOT_READY");
    assert_eq!(t.warmup("cold").await.int("cached"), 5);
    assert_eq!(t.reserve("u", "cold", "o1", 1).await.status, 202, "a refused Try can be retried");
    t.wait_status("u", "cold", "o1", "RESERVED", 10 * SECOND).await;
    // Redis loses the stock key (restart, failover).
    t.lose_stock("cold").await;
    let lost = t.reserve("v", "cold", "o2", 1).await;
    lost.assert_problem(503, "CACHE_NOT_READY");
    assert_eq!(t.inspect("cold").await.body["cached"], json!(null));
    assert_eq!(t.warmup("cold").await.int("cached"), 4, "rebuilt from DynamoDB saleable");
    assert_eq!(t.warmup("cold").await.int("cached"), 4, "warm-up never overwrites a live stock");
    assert_eq!(t.reserve("v", "cold", "o2", 1).await.status, 202);
    t.wait_status("v", "cold", "o2", "RESERVED", 10 * SECOND).await;
    t.assert_settled("cold").await;
}

#[tokio::test]
async fn a_lost_stock_key_is_rebuilt_at_once_with_unsettled_entries_held_back() {
    // No persist consumer: the orders stay unsettled until the test delivers them.
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    t.collection("unsettled", json!({ "quantity": 10 })).await;
    assert_eq!(t.reserve("a", "unsettled", "a1", 2).await.status, 202);
    assert_eq!(t.reserve("b", "unsettled", "b1", 1).await.status, 202);
    // a1 and b1 durable; c1 then stays unsettled.
    assert_eq!(t.deliver_reservations(10).await, 2);
    t.wait_status("b", "unsettled", "b1", "RESERVED", 10 * SECOND).await;
    assert_eq!(t.reserve("c", "unsettled", "c1", 3).await.status, 202);
    // Redis loses the stock key while c1's message is in flight.
    t.lose_stock("unsettled").await;
    t.reserve("d", "unsettled", "d1", 1).await.assert_problem(503, "CACHE_NOT_READY");
    // Rebuilt at once: DynamoDB's 7 saleable less c1's 3 units, still to be taken.
    assert_eq!(t.warmup("unsettled").await.int("cached"), 4, "the unsettled deduction held back");
    assert_eq!(t.reserve("d", "unsettled", "d1", 1).await.status, 202);
    assert_eq!(t.deliver_reservations(10).await, 2);
    t.wait_status("c", "unsettled", "c1", "RESERVED", 10 * SECOND).await;
    t.wait_status("d", "unsettled", "d1", "RESERVED", 10 * SECOND).await;
    let s = t.assert_settled("unsettled").await;
    assert_eq!((s.saleable, s.redis_stock), (3, Some(3)), "no drift once everything settled: {s:?}");
}

#[tokio::test]
async fn a_rebuild_with_unsettled_waits_for_a_drained_slice_that_changed_and_may_set_below_zero() {
    use flashstock::ports::prelude::*;
    let t = TestApp::start_with(TestApp::manual_options(), |_| {}).await;
    // One stock bucket, so one cache shard on any layout the suite runs on: the calls below are
    // the adapter's on shard 0.
    t.collection("guard", json!({ "quantity": 10, "buckets": 1 })).await;
    assert_eq!(t.reserve("a", "guard", "a1", 2).await.status, 202);
    let mut con = t.redis.clone();
    let _: () = redis::cmd("DEL").arg(t.keys("guard").stock(1)).query_async(&mut con).await.unwrap();
    let id = flashstock::domain::CollectionId::parse("guard").unwrap();
    let cache = &t.stack.app.cache;
    let snap = cache.snapshot(&id, flashstock::domain::CacheShard::new(0, 1)).await.unwrap();
    assert_eq!((snap.stock, snap.unsettled.len()), (None, 1), "{snap:?}");
    // A drained slice the snapshot read that is gone now (pruned under its scan): it may have
    // hidden an entry re-logged elsewhere, so the rebuild waits.
    let mut pruned = snap.clone();
    pruned.drained_slices.push((1, 4));
    assert_eq!(
        cache.rebuild_with_unsettled(&id, flashstock::domain::CacheShard::new(0, 1), &pruned, 8, 10).await.unwrap(),
        flashstock::ports::Rebuild::Busy
    );
    // Below zero when asked (Redis had drifted high before the loss): kept, and sold out.
    assert_eq!(
        cache.rebuild_with_unsettled(&id, flashstock::domain::CacheShard::new(0, 1), &snap, -1, 10).await.unwrap(),
        flashstock::ports::Rebuild::Set(-1)
    );
    assert_eq!(cache.snapshot(&id, flashstock::domain::CacheShard::new(0, 1)).await.unwrap().stock, Some(-1));
    t.reserve("b", "guard", "b1", 1).await.assert_problem(409, "SOLD_OUT");
}

#[tokio::test]
async fn send_failure_keeps_the_deduction_and_answers_unconfirmed() {
    // The API's queue URL points at a queue that does not exist: every send fails for real.
    // A failed send may still have reached SQS, so the deduction stays: the answer says the
    // reservation is unconfirmed, a retry with the same id is a replay (no second deduction), and
    // reconciliation settles what no message ever reached.
    let t = TestApp::start_with(TestApp::fast_options(), |c| {
        c.reservation_queue_url = format!("{}-missing", c.reservation_queue_url);
        c.reconcile_threshold_ms = 0;
        // Re-sending fails too (the same missing queue): only giving up settles this one.
        c.reconcile_give_up_ms = 0;
    })
    .await;
    t.collection("pf", json!({ "quantity": 5 })).await;
    let a = t.reserve("u", "pf", "o1", 2).await;
    a.assert_problem(503, "RESERVATION_UNCONFIRMED");
    assert_eq!(a.body["retryable"], json!(true), "{a:?}");
    let s = t.stores("pf").await;
    assert_eq!((s.redis_stock, s.redis_pending, s.redis_open_slices), (Some(3), 2, 1), "the deduction stays: {s:?}");
    assert_eq!(t.status("u", "pf", "o1").await.str("status"), "PENDING", "the order is found, not 404");
    // The retry is a replay: it tries to send again and takes nothing more.
    t.reserve("u", "pf", "o1", 2).await.assert_problem(503, "RESERVATION_UNCONFIRMED");
    assert_eq!(t.stores("pf").await.redis_stock, Some(3));
    let r = t.stack.app.reconcile(flashstock::now_ms() + 1).await.unwrap();
    assert_eq!(r.collections["pf"].tombstones_written, 1, "{r:?}");
    let st = t.status("u", "pf", "o1").await;
    assert_eq!((st.str("status"), st.str("reason")), ("CANCELLED", "LOST"), "{st:?}");
    let s = t.assert_settled("pf").await;
    assert_eq!((s.saleable, s.redis_stock), (5, Some(5)), "{s:?}");
}

#[tokio::test]
async fn unknown_collection_is_404() {
    let t = TestApp::start().await;
    t.reserve("u", "nope", "o1", 1).await.assert_problem(404, "COLLECTION_NOT_FOUND");
}

#[tokio::test]
async fn a_replay_is_promised_until_the_give_up_nears() {
    // The first message is lost; the client retries. Reconciliation only re-sends an order
    // that young, so the replay re-sends and answers 202 again; near the give-up (here: a
    // give-up of zero) a run may be cancelling it, so the replay re-sends but promises
    // nothing.
    for (give_up_ms, want) in [(1_200_000, 202), (0, 503)] {
        let t = TestApp::start_with(TestApp::manual_options(), |c| {
            c.reconcile_threshold_ms = 1_000;
            c.reconcile_give_up_ms = give_up_ms;
        })
        .await;
        t.collection("late", json!({ "quantity": 5 })).await;
        assert_eq!(t.reserve("u", "late", "o1", 1).await.status, 202);
        let _lost = t.take_reservation_message().await;
        let again = t.reserve("u", "late", "o1", 1).await;
        if want == 202 {
            assert_eq!(again.status, 202, "give-up {give_up_ms}: {again:?}");
        } else {
            again.assert_problem(503, "RESERVATION_UNCONFIRMED");
        }
        let resent = t.take_reservation_message().await;
        assert!(resent.contains("\"orderId\":\"o1\""), "re-sent either way: {resent}");
        assert_eq!(t.stores("late").await.redis_stock, Some(4), "taken once");
    }
}

/// A redis-server of one test's own (its command counts are the test's alone), on a free port,
/// stopped when dropped.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let me = Self { child, port };
        for _ in 0..100 {
            if me.connection().await.is_some() {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on {port} did not answer");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let c = redis::Client::open(self.url()).ok()?;
        c.get_multiplexed_async_connection().await.ok()
    }

    /// Calls per command since the last reset (scripts' own commands included), reset after.
    async fn commands(&self) -> std::collections::BTreeMap<String, i64> {
        let mut con = self.connection().await.expect("connected");
        let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut con).await.expect("INFO");
        let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(&mut con).await.expect("RESETSTAT");
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(":calls=")?;
                Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
            })
            .filter(|(name, _)| {
                !matches!(name.split('|').next(), Some("info" | "config" | "hello" | "client" | "ping"))
            })
            .collect()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_try_is_one_redis_call_budget_included_and_one_read_once_sold_out() {
    let redis = OwnRedis::start().await;
    // No persist consumer: nothing but the Tries talks to this Redis while they are counted.
    // The sold-out flag lasts a minute here, so that a slow machine does not see it lapse.
    let t = TestApp::start_on_url(&redis.url(), TestApp::manual_options(), |c| {
        c.sold_out_flag = Duration::from_secs(60);
    })
    .await;
    t.collection("one-call", json!({ "quantity": 4, "perUserLimit": 2 })).await;
    // The instance learns the collection (its spec and bucket count) once.
    assert_eq!(t.reserve("early", "one-call", "e1", 1).await.status, 202);
    // What the script itself may run; any other command is a second call.
    let script = ["evalsha", "decrby", "incrby", "hsetnx", "hget", "hset", "append", "zadd", "del"];
    let outside = |c: &std::collections::BTreeMap<String, i64>| {
        c.iter().filter(|(n, _)| !script.contains(&n.as_str())).map(|(n, k)| format!("{n}={k}")).collect::<Vec<_>>()
    };
    let cases = [("alice", "a1", 202), ("alice", "a2", 202), ("alice", "a3", 409), ("alice", "a1", 202)];
    for (buyer, order, want) in cases {
        redis.commands().await;
        let a = t.reserve(buyer, "one-call", order, 1).await;
        assert_eq!(a.status, want, "{a:?}");
        let c = redis.commands().await;
        assert_eq!(c.get("evalsha"), Some(&1), "{buyer}/{order}: one script call, budget included: {c:?}");
        assert!(outside(&c).is_empty(), "{buyer}/{order}: nothing outside the script: {c:?}");
    }
    // The last unit: the instance's sold-out flag goes up.
    assert_eq!(t.reserve("bob", "one-call", "b1", 1).await.status, 202);
    assert_eq!(t.deliver_reservations(10).await, 5, "four orders, a1 sent again by its replay");
    t.wait_status("alice", "one-call", "a1", "RESERVED", 10 * SECOND).await;
    redis.commands().await;
    t.reserve("carol", "one-call", "c1", 1).await.assert_problem(409, "SOLD_OUT");
    let replay = t.reserve("alice", "one-call", "a1", 1).await;
    assert_eq!(replay.status, 202, "a replay still answers what it answered: {replay:?}");
    let c = redis.commands().await;
    assert_eq!(c, [("hget".to_owned(), 2)].into(), "one read each, of the buyer's records: {c:?}");
}
