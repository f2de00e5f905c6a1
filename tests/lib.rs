//! Test support for the end-to-end suite: each test gets its own deployment (Redis key prefix,
//! DynamoDB table, SQS queues) on the real local redis-server and moto server started by
//! `infra/test.sh`, with the real handlers behind the local front door.

use std::time::{Duration, Instant};

use flashstock::adapters::redis_cache::Keys;
use flashstock_local::poller::{self, PollerConfig};
use flashstock_local::provision;
use flashstock_local::stack::{Stack, StackOptions};
use serde_json::{Value, json};

pub use flashstock::config::Config;
pub use flashstock_local::stack::StackOptions as Options;

pub struct TestApp {
    pub stack: Stack,
    pub redis: flashstock::adapters::redis_cache::Conn,
    http: reqwest::Client,
    /// Settings every collection this test creates gets unless its body names them (the
    /// layout the suite runs on: [`LAYOUT_VAR`]).
    layout: Option<Value>,
}

/// Runs the tests that start with [`TestApp::start`] or [`TestApp::start_with`] on another
/// layout: `sharded-cluster` puts them on the local Redis Cluster, and gives every collection
/// they create 4 stock buckets over 2 cache shards (unless its body names either), so the
/// storefront contract is checked on a collection whose buyers live on different shards.
/// `infra/test.sh` runs the contract files a second time with it.
pub const LAYOUT_VAR: &str = "FLASHSTOCK_TEST_LAYOUT";

/// The answer of one API call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    /// The `Retry-After` header, when there is one.
    pub retry_after: Option<String>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }
    pub fn str(&self, field: &str) -> &str {
        self.body.get(field).and_then(Value::as_str).unwrap_or("")
    }
    pub fn int(&self, field: &str) -> i64 {
        self.body.get(field).and_then(Value::as_i64).unwrap_or(i64::MIN)
    }
    /// Asserts a problem+json answer with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
    }
}

/// Durable and cached figures of one collection, read straight from both stores.
pub use flashstock_local::stack::StoreFigures as Stores;

fn unique_name() -> String {
    format!("t{}", ulid::Ulid::new().to_string().to_lowercase())
}

pub const ADMIN: &[&str] = &[flashstock::http::auth::ADMIN_SCOPE];
pub const CONFIRM: &[&str] = &[flashstock::http::auth::CONFIRM_SCOPE];

impl TestApp {
    /// A deployment with the persist and timer consumers running, no schedule.
    pub async fn start() -> Self {
        Self::start_with(Self::fast_options(), |_| {}).await
    }

    /// Short visibility timeouts and batching windows so redeliveries happen within a test.
    pub fn fast_options() -> StackOptions {
        StackOptions {
            visibility_seconds: 2,
            batching_window: Duration::from_millis(50),
            schedule_interval: None,
            ..StackOptions::default()
        }
    }

    /// As [`Self::fast_options`], but with no persist consumer: orders stay PENDING until a test
    /// delivers their messages itself.
    pub fn manual_options() -> StackOptions {
        StackOptions { run_persist: false, ..Self::fast_options() }
    }

    /// Takes one reservation message off the queue (received and deleted, so a slow test never
    /// sees it again after its visibility timeout) and returns its body.
    pub async fn take_reservation_message(&self) -> String {
        let out = self
            .stack
            .sqs
            .receive_message()
            .queue_url(&self.stack.queues.reservations)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let m = out.messages.unwrap_or_default().into_iter().next().expect("a reservation message");
        if let Some(handle) = m.receipt_handle() {
            self.stack
                .sqs
                .delete_message()
                .queue_url(&self.stack.queues.reservations)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete");
        }
        m.body.expect("a body")
    }

    pub async fn start_with(opts: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        match std::env::var(LAYOUT_VAR).as_deref() {
            Ok("sharded-cluster") => {
                let mut t = Self::start_cluster(opts, tweak).await;
                t.layout = Some(json!({ "buckets": 4, "cacheShards": 2 }));
                t
            }
            Ok("") | Err(_) => Self::start_on("FLASHSTOCK_REDIS_URL", opts, tweak).await,
            Ok(other) => panic!("{LAYOUT_VAR}={other}: only sharded-cluster is known"),
        }
    }

    /// A deployment on the local three-node Redis Cluster, in cluster mode.
    pub async fn start_cluster(opts: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on("FLASHSTOCK_TEST_REDIS_CLUSTER_URL", opts, |c| {
            c.redis_cluster = true;
            tweak(c)
        })
        .await
    }

    /// A deployment on the local TLS + AUTH redis, through a `rediss://:password@…` URL.
    pub async fn start_tls(opts: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on("FLASHSTOCK_TEST_REDIS_TLS_URL", opts, tweak).await
    }

    async fn start_on(var: &str, opts: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        let redis_url = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} unset: run the tests with infra/test.sh (it starts redis-server and moto)")
        });
        Self::start_on_url(&redis_url, opts, tweak).await
    }

    /// A deployment on the Redis at `redis_url` (a test's own server).
    pub async fn start_on_url(redis_url: &str, opts: StackOptions, tweak: impl FnOnce(&mut Config)) -> Self {
        let stack = Stack::launch(&unique_name(), redis_url, opts, tweak).await.expect("local stack starts");
        let redis = stack.redis.clone();
        Self { stack, redis, http: reqwest::Client::new(), layout: None }
    }

    pub fn token(&self, sub: &str, scopes: &[&str]) -> String {
        self.stack.token(sub, scopes)
    }

    /// A raw call: `token` as given (None = no Authorization header), body as raw text.
    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.stack.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let resp = req.send().await.expect("front door answers");
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, content_type, body, retry_after }
    }

    pub async fn call(&self, method: &str, path: &str, sub: &str, scopes: &[&str], body: Option<Value>) -> Answer {
        let token = self.token(sub, scopes);
        let body = body.map(|b| b.to_string());
        self.raw(method, path, Some(&token), body.as_deref()).await
    }

    pub async fn create(&self, collection: &str, mut body: Value) -> Answer {
        if let (Some(layout), Some(fields)) = (&self.layout, body.as_object_mut())
            && !fields.contains_key("buckets")
            && !fields.contains_key("cacheShards")
            && let Some(extra) = layout.as_object()
        {
            fields.extend(extra.clone());
        }
        self.call("PUT", &format!("/v1/admin/collections/{collection}"), "op", ADMIN, Some(body)).await
    }

    pub async fn warmup(&self, collection: &str) -> Answer {
        self.call("POST", &format!("/v1/admin/collections/{collection}/warmup"), "op", ADMIN, None).await
    }

    /// Raises the collection's cache shards (`body`: the request's JSON).
    pub async fn raise(&self, collection: &str, body: Value) -> Answer {
        self.call("POST", &format!("/v1/admin/collections/{collection}/cache-shards"), "op", ADMIN, Some(body)).await
    }

    /// Creates and warms a collection of `quantity` units.
    pub async fn collection(&self, collection: &str, body: Value) {
        let a = self.create(collection, body).await;
        assert_eq!(a.status, 201, "{a:?}");
        let a = self.warmup(collection).await;
        assert_eq!(a.status, 200, "{a:?}");
    }

    pub async fn inspect(&self, collection: &str) -> Answer {
        self.call("GET", &format!("/v1/admin/collections/{collection}"), "op", ADMIN, None).await
    }

    pub async fn reserve(&self, user: &str, collection: &str, order: &str, quantity: i64) -> Answer {
        let body = json!({ "orderId": order, "quantity": quantity });
        self.call("POST", &format!("/v1/collections/{collection}/reservations"), user, &[], Some(body)).await
    }

    /// The buyer's own reservation `order` on `collection`.
    pub async fn status(&self, user: &str, collection: &str, order: &str) -> Answer {
        self.call("GET", &format!("/v1/collections/{collection}/reservations/{order}"), user, &[], None).await
    }

    pub async fn cancel(&self, user: &str, collection: &str, order: &str) -> Answer {
        self.call("POST", &format!("/v1/collections/{collection}/reservations/{order}/cancel"), user, &[], None).await
    }

    /// The payment service confirms `buyer`'s order.
    pub async fn confirm(&self, collection: &str, buyer: &str, order: &str) -> Answer {
        let path = format!("/v1/collections/{collection}/reservations/{order}/confirm");
        self.call("POST", &path, "payments", CONFIRM, Some(json!({ "buyerId": buyer }))).await
    }

    /// Polls the order's status until it is `want` (panics after `within`).
    pub async fn wait_status(&self, user: &str, collection: &str, order: &str, want: &str, within: Duration) -> Answer {
        let deadline = Instant::now() + within;
        loop {
            let a = self.status(user, collection, order).await;
            if a.str("status") == want {
                return a;
            }
            assert!(Instant::now() < deadline, "order {order} never reached {want}: last {a:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Delivers what is in the reservation queue once to the persist handler (for deployments
    /// started with `run_persist: false`). Returns the number of messages delivered.
    pub async fn deliver_reservations(&self, batch_size: usize) -> usize {
        let cfg = PollerConfig {
            queue_url: self.stack.queues.reservations.clone(),
            queue_arn: provision::arn(&self.stack.sqs, &self.stack.queues.reservations).await.expect("arn"),
            batch_size,
            batching_window: Duration::from_millis(300),
        };
        let app = self.stack.app.clone();
        poller::deliver_once(&self.stack.sqs, &cfg, &move |ev| {
            let app = app.clone();
            async move { flashstock::lambda::persist_event(&*app, ev, flashstock::now_ms()).await }
        })
        .await
    }

    /// Sends a reservation message straight to the queue (a late or duplicate delivery).
    pub async fn send_reservation(&self, m: &flashstock::ports::ReservationMessage) {
        let body = serde_json::to_string(m).expect("encode");
        let q = &self.stack.queues.reservations;
        self.stack.sqs.send_message().queue_url(q).message_body(body).send().await.expect("send");
    }

    /// Waits until the reservation queue is empty (the consumers took everything).
    pub async fn wait_queue_empty(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.queue_depth(&self.stack.queues.reservations).await > 0 {
            assert!(std::time::Instant::now() < deadline, "the reservation queue never emptied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Approximate number of messages in a queue (visible + in flight + delayed).
    pub async fn queue_depth(&self, url: &str) -> i64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes");
        let attrs = out.attributes.unwrap_or_default();
        let get = |k: &A| attrs.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        get(&A::ApproximateNumberOfMessages)
            + get(&A::ApproximateNumberOfMessagesNotVisible)
            + get(&A::ApproximateNumberOfMessagesDelayed)
    }

    /// Redis loses the collection's stock keys (every cache shard's), as after a restart.
    pub async fn lose_stock(&self, collection: &str) {
        let id = flashstock::domain::CollectionId::parse(collection).expect("a collection id");
        let shards = self.stack.app.spec(&id).await.expect("the collection").cache_shards;
        let mut con = self.redis.clone();
        for r in 0..shards {
            let key = self.shard_keys(collection, r).stock(shards);
            let _: () = redis::cmd("DEL").arg(key).query_async(&mut con).await.unwrap();
        }
    }

    /// Sets the collection's cached stock to `units`, as if Redis had drifted there.
    pub async fn set_redis_stock(&self, collection: &str, units: i64) {
        let mut con = self.redis.clone();
        let stored = flashstock::adapters::redis_cache::stored_stock(units);
        let _: () =
            redis::cmd("SET").arg(self.keys(collection).stock(1)).arg(stored).query_async(&mut con).await.unwrap();
    }

    /// The Redis keys of the collection's cache shard 0 (its only one unless created with more).
    pub fn keys(&self, collection: &str) -> Keys {
        self.shard_keys(collection, 0)
    }

    /// The Redis keys of one of the collection's cache shards.
    pub fn shard_keys(&self, collection: &str, shard: u32) -> Keys {
        let c = flashstock::domain::CollectionId::parse(collection).expect("collection id");
        Keys::new(&self.stack.config.key_prefix, &c, shard)
    }

    /// Reads both stores directly (a table scan of this test's own table, Redis keys).
    pub async fn stores(&self, collection: &str) -> Stores {
        self.stack.store_figures(collection).await.expect("both stores read")
    }

    /// Asserts the stock identities (docs/DESIGN.md#stock-identities) on both stores; with
    /// `at_rest`, Redis stock = saleable − pending too.
    #[track_caller]
    pub fn assert_identities(s: &Stores, at_rest: bool) {
        let failures = s.identity_failures(at_rest);
        assert!(failures.is_empty(), "{failures:?}: {s:?}");
    }

    /// Waits until nothing is pending and both stores agree, then asserts every identity.
    pub async fn assert_settled(&self, collection: &str) -> Stores {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.stores(collection).await;
            let at_rest = s.redis_pending == 0 && s.redis_stock == Some(s.saleable);
            if at_rest || Instant::now() > deadline {
                Self::assert_identities(&s, true);
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
