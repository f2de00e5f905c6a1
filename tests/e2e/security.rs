//! Security and abuse: every route against every kind of caller, OAuth scopes checked by the
//! gateway (the front door plays it) and again in code, any identity provider's subjects, the
//! per-buyer request budget, the body cap, routing under a named stage, the default per-user
//! limit, and Redis credentials read from Secrets Manager.

use std::collections::HashMap;
use std::time::Duration;

use flashstock::config::RedisSource;
use flashstock::domain::{CollectionId, OrderId, OrderKey, UserId};
use flashstock::http::auth::{ADMIN_SCOPE, CONFIRM_SCOPE};
use flashstock::ports::CacheState;
use flashstock::ports::prelude::*;
use flashstock_e2e::{Answer, TestApp};
use flashstock_local::jwt;
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// The callers of the authorization table: a name and the token they send (None: no header).
fn callers(t: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let now = flashstock::now_ms() / 1000;
    let claims = |k: &str, v: Value| {
        let mut c = json!({ "sub": "alice", "exp": now + 600, "iss": jwt::ISSUER, "aud": jwt::AUDIENCE });
        c[k] = v;
        c
    };
    let secret = &t.stack.secret;
    vec![
        ("no token", None),
        ("bad signature", Some(jwt::sign("not-the-secret", &claims("scope", json!(ADMIN_SCOPE))))),
        ("expired", Some(jwt::sign(secret, &claims("exp", json!(now - 5))))),
        ("wrong issuer", Some(jwt::sign(secret, &claims("iss", json!("https://evil.example"))))),
        ("wrong audience", Some(jwt::sign(secret, &claims("aud", json!("another-app"))))),
        ("buyer", Some(t.token("alice", &[]))),
        ("another buyer", Some(t.token("bob", &[]))),
        ("confirm scope", Some(t.token("payments", &[CONFIRM_SCOPE]))),
        ("admin scope", Some(t.token("op", &[ADMIN_SCOPE]))),
        ("both scopes", Some(t.token("root", &[ADMIN_SCOPE, CONFIRM_SCOPE]))),
    ]
}

/// The status every route answers each caller. Alice owns the orders the status, cancel and
/// confirm routes name; the buyer routes need no scope (a caller acts on their own orders).
fn expected(caller: &str, route: &str) -> u16 {
    let valid = !matches!(caller, "no token" | "bad signature" | "expired" | "wrong issuer" | "wrong audience");
    let admin = matches!(caller, "admin scope" | "both scopes");
    let confirm = matches!(caller, "confirm scope" | "both scopes");
    match (valid, route) {
        (false, _) => 401,
        (true, "create") => {
            if admin {
                201
            } else {
                403
            }
        }
        (true, "inspect" | "warm up") => {
            if admin {
                200
            } else {
                403
            }
        }
        (true, "reserve") => 202,
        (true, "status") => {
            if caller == "buyer" {
                200
            } else {
                404
            }
        }
        (true, "cancel") => 200,
        (true, "confirm") => {
            if confirm {
                200
            } else {
                403
            }
        }
        _ => unreachable!("{route}"),
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_table_says() {
    let t = TestApp::start_with(TestApp::fast_options(), |c| c.buyer_budget = None).await;
    t.collection("authz", json!({ "quantity": 1000, "perUserLimit": 1000 })).await;
    let callers = callers(&t);
    // Alice's orders, one of each kind per caller, all RESERVED before the table runs.
    for (i, _) in callers.iter().enumerate() {
        for kind in ["s", "c", "f"] {
            assert_eq!(t.reserve("alice", "authz", &format!("{kind}{i}"), 1).await.status, 202);
        }
    }
    for (i, _) in callers.iter().enumerate() {
        for kind in ["s", "c", "f"] {
            t.wait_status("alice", "authz", &format!("{kind}{i}"), "RESERVED", WAIT).await;
        }
    }
    let mut failures = Vec::new();
    for (i, (caller, token)) in callers.iter().enumerate() {
        let reserve = format!(r#"{{"orderId":"r{i}","quantity":1}}"#);
        let cells = [
            ("create", "PUT", format!("/v1/admin/collections/authz-new{i}"), Some(r#"{"quantity":5}"#.to_owned())),
            ("inspect", "GET", "/v1/admin/collections/authz".to_owned(), None),
            ("warm up", "POST", "/v1/admin/collections/authz/warmup".to_owned(), None),
            ("reserve", "POST", "/v1/collections/authz/reservations".to_owned(), Some(reserve)),
            ("status", "GET", format!("/v1/collections/authz/reservations/s{i}"), None),
            ("cancel", "POST", format!("/v1/collections/authz/reservations/c{i}/cancel"), None),
            (
                "confirm",
                "POST",
                format!("/v1/collections/authz/reservations/f{i}/confirm"),
                Some(r#"{"buyerId":"alice"}"#.to_owned()),
            ),
        ];
        for (route, method, path, body) in cells {
            let a = t.raw(method, &path, token.as_deref(), body.as_deref()).await;
            let want = expected(caller, route);
            if a.status != want {
                failures.push(format!("{caller} × {route}: {} (want {want}) {}", a.status, a.body));
            } else if want >= 400 {
                assert_eq!(a.content_type, "application/problem+json", "{caller} × {route}: {a:?}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // What the others did touched nothing of Alice's: her orders are as the table left them.
    for (i, (caller, _)) in callers.iter().enumerate() {
        let status = t.status("alice", "authz", &format!("c{i}")).await;
        let want = if *caller == "buyer" { "CANCELLED" } else { "RESERVED" };
        assert_eq!(status.str("status"), want, "{caller}'s cancel");
        let status = t.status("alice", "authz", &format!("f{i}")).await;
        let want = if matches!(*caller, "confirm scope" | "both scopes") { "CONFIRMED" } else { "RESERVED" };
        assert_eq!(status.str("status"), want, "{caller}'s confirm");
    }
    t.assert_settled("authz").await;
}

/// Calls the API handler directly with these authorizer claims (no front door, no gateway: the
/// checks in code alone).
async fn direct(t: &TestApp, method: &str, path: &str, claims: &[(&str, &str)], body: Option<&str>) -> (u16, Value) {
    let req = http::Request::builder().method(method).uri(path).body(()).expect("request");
    let (parts, ()) = req.into_parts();
    let claims: HashMap<String, String> = claims.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let route = flashstock::http::route(&parts.method, parts.uri.path()).ok();
    let body = axum::body::Bytes::from(body.unwrap_or("").to_owned());
    let event = flashstock_local::front_door::to_event(&parts, &body, claims, route.as_ref(), None);
    let resp = flashstock::http::handle(&*t.stack.app, flashstock::lambda::http_request(event)).await;
    let status = resp.status().as_u16();
    let text = match resp.into_body() {
        lambda_http::Body::Text(t) => t,
        _ => String::new(),
    };
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn roles_groups_and_near_miss_scopes_grant_nothing_in_code() {
    let t = TestApp::start().await;
    t.collection("roles", json!({ "quantity": 5 })).await;
    let inspect = "/v1/admin/collections/roles";
    for claims in [
        vec![("sub", "op"), ("roles", "[store admin]")],
        vec![("sub", "op"), ("roles", "[admin]"), ("cognito:groups", "[admin]")],
        vec![("sub", "op"), ("scope", "admin")],
        vec![("sub", "op"), ("scope", "store admin")],
        vec![("sub", "op"), ("scope", "[flashstock/admin]")],
        vec![("sub", "op"), ("scope", CONFIRM_SCOPE)],
        vec![("sub", "op"), ("scp", ADMIN_SCOPE)],
    ] {
        let (status, body) = direct(&t, "GET", inspect, &claims, None).await;
        assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{claims:?}");
    }
    let (status, _) = direct(&t, "GET", inspect, &[("sub", "op"), ("scope", "openid flashstock/admin")], None).await;
    assert_eq!(status, 200);
    // The admin scope does not imply the confirm scope.
    let confirm = "/v1/collections/roles/reservations/o1/confirm";
    let (status, _) =
        direct(&t, "POST", confirm, &[("sub", "op"), ("scope", ADMIN_SCOPE)], Some(r#"{"buyerId":"u"}"#)).await;
    assert_eq!(status, 403);
    // No claims at all, or a subject no identity provider issues: 401.
    assert_eq!(direct(&t, "GET", inspect, &[], None).await.0, 401);
    let long = "u".repeat(256);
    assert_eq!(direct(&t, "GET", inspect, &[("sub", &long), ("scope", ADMIN_SCOPE)], None).await.0, 401);
}

/// A 255-character subject with every separator an identity provider uses.
fn longest_subject() -> String {
    let mut s = "samlp|corp-idp:user@example.com#".to_owned();
    while s.len() < 255 {
        s.push(char::from(b'a' + (s.len() % 26) as u8));
    }
    s
}

#[tokio::test]
async fn subjects_from_every_identity_provider_work_end_to_end() {
    let t = TestApp::start().await;
    t.collection("idp", json!({ "quantity": 100, "perUserLimit": 3 })).await;
    let subs = [
        "auth0|5f3c8e2b9a1d4c0012345678".to_owned(),
        "google-oauth2|123456789012345678901".to_owned(),
        "0b6f3c2e-8f0a-4d1e-9c3b-2a7e5f1d4c6b".to_owned(),
        longest_subject(),
    ];
    assert_eq!(subs[3].len(), 255);
    for sub in &subs {
        assert_eq!(t.reserve(sub, "idp", "o1", 2).await.status, 202, "{sub}");
        assert_eq!(t.reserve(sub, "idp", "o2", 1).await.status, 202, "{sub}");
        // The per-user limit counts this buyer's own records.
        t.reserve(sub, "idp", "o3", 1).await.assert_problem(409, "LIMIT_EXCEEDED");
    }
    for sub in &subs {
        t.wait_status(sub, "idp", "o1", "RESERVED", WAIT).await;
        t.wait_status(sub, "idp", "o2", "RESERVED", WAIT).await;
        assert_eq!(t.confirm("idp", sub, "o1").await.str("status"), "CONFIRMED", "{sub}");
        assert_eq!(t.cancel(sub, "idp", "o2").await.str("status"), "CANCELLED", "{sub}");
        assert_eq!(t.status(sub, "idp", "o1").await.str("status"), "CONFIRMED");
        // Redis holds the buyer's records under the full subject.
        let key = OrderKey::new(
            CollectionId::parse("idp").unwrap(),
            UserId::parse(sub).unwrap(),
            OrderId::parse("o1").unwrap(),
        );
        let entry = t.stack.app.cache.entry(&key, 1).await.unwrap().expect("an entry");
        assert_eq!(entry.state, CacheState::Durable, "{sub}");
        assert_eq!(entry.user.as_str(), sub);
    }
    // One buyer's id prefix is not another buyer: "auth0" alone holds nothing.
    t.status("auth0", "idp", "o1").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    let s = t.assert_settled("idp").await;
    assert_eq!((s.quantity, s.saleable, s.by_status.get("CONFIRMED").copied()), (100, 92, Some(8)));
}

/// The default budget (20 requests), over a window longer than a test can take.
async fn with_a_long_budget_window() -> TestApp {
    TestApp::start_with(TestApp::fast_options(), |c| {
        if let Some(b) = c.buyer_budget.as_mut() {
            b.window = Duration::from_secs(600);
        }
    })
    .await
}

#[tokio::test]
async fn a_burst_from_one_buyer_is_refused_past_its_budget_and_others_are_unaffected() {
    let t = with_a_long_budget_window().await;
    let budget = t.stack.config.buyer_budget.expect("on by default").requests as usize;
    assert_eq!(budget, 20);
    t.collection("burst", json!({ "quantity": 5000, "perUserLimit": 5000 })).await;
    let hoarder = t.token("hoarder", &[]);
    let tries = futures::stream::iter(0..1000)
        .map(|i| {
            let (t, token) = (&t, hoarder.clone());
            async move {
                let body = format!(r#"{{"orderId":"h{i}","quantity":1}}"#);
                t.raw("POST", "/v1/collections/burst/reservations", Some(&token), Some(&body)).await
            }
        })
        .buffer_unordered(32);
    // Other buyers, during the burst.
    let others = futures::stream::iter(0..50).map(|i| {
        let t = &t;
        async move { t.reserve(&format!("buyer-{i}"), "burst", "o1", 1).await }
    });
    let (hoards, others): (Vec<Answer>, Vec<Answer>) =
        futures::join!(tries.collect(), others.buffer_unordered(8).collect());
    let accepted = hoards.iter().filter(|a| a.status == 202).count();
    let limited: Vec<&Answer> = hoards.iter().filter(|a| a.status == 429).collect();
    assert_eq!((accepted, limited.len()), (budget, 1000 - budget), "every answer is 202 or 429");
    for a in limited {
        a.assert_problem(429, "RATE_LIMITED");
        let after: u64 = a.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After");
        assert!((1..=600).contains(&after), "{a:?}");
    }
    assert!(others.iter().all(|a| a.status == 202), "{others:?}");
    // Cancels spend the same budget.
    t.cancel("hoarder", "burst", "h0").await.assert_problem(429, "RATE_LIMITED");
    let s = t.assert_settled("burst").await;
    assert_eq!(s.saleable, 5000 - budget as i64 - 50);
}

#[tokio::test]
async fn cancels_of_unknown_ids_write_at_most_the_budget() {
    let t = with_a_long_budget_window().await;
    t.collection("spam", json!({ "quantity": 5 })).await;
    let mut ok = 0;
    for i in 0..60 {
        let a = t.cancel("spammer", "spam", &format!("random-{i}")).await;
        match a.status {
            200 => ok += 1,
            _ => a.assert_problem(429, "RATE_LIMITED"),
        }
    }
    assert_eq!(ok, 20);
    // Their tombstones: one durable item per answered cancel, none for the refused ones.
    let items = t.stack.dynamo.scan().table_name(&t.stack.config.table).send().await.unwrap();
    let tombstones = items
        .items()
        .iter()
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.ends_with("#spammer")))
        .count();
    assert_eq!(tombstones, 20);
    // A cancel on a collection that does not exist writes nothing at all.
    t.cancel("other", "no-such", "x").await.assert_problem(404, "COLLECTION_NOT_FOUND");
}

#[tokio::test]
async fn bodies_above_the_cap_are_413_before_anything_is_parsed() {
    let t = TestApp::start().await;
    t.collection("cap", json!({ "quantity": 5 })).await;
    let pad = "x".repeat(flashstock::http::MAX_BODY_BYTES);
    let big = format!(r#"{{"orderId":"o1","quantity":1,"pad":"{pad}"}}"#);
    let token = t.token("u", &[]);
    let a = t.raw("POST", "/v1/collections/cap/reservations", Some(&token), Some(&big)).await;
    a.assert_problem(413, "BODY_TOO_LARGE");
    let admin = t.token("op", &[ADMIN_SCOPE]);
    let a = t.raw("PUT", "/v1/admin/collections/cap2", Some(&admin), Some(&big)).await;
    a.assert_problem(413, "BODY_TOO_LARGE");
    assert_eq!(t.stores("cap").await.redis_stock, Some(5), "nothing taken");
}

#[tokio::test]
async fn a_named_stage_routes_by_route_key() {
    let opts = flashstock_e2e::Options { stage: Some("prod".to_owned()), ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |_| {}).await;
    assert!(t.stack.url.ends_with("/prod"), "{}", t.stack.url);
    t.collection("staged", json!({ "quantity": 5 })).await;
    assert_eq!(t.reserve("u", "staged", "o1", 2).await.status, 202);
    t.wait_status("u", "staged", "o1", "RESERVED", WAIT).await;
    assert_eq!(t.cancel("u", "staged", "o1").await.str("status"), "CANCELLED");
    assert_eq!(t.inspect("staged").await.int("saleable"), 5);
}

#[tokio::test]
async fn a_collection_created_without_a_limit_gets_the_default_one() {
    let t = TestApp::start().await;
    assert_eq!(t.stack.config.default_per_user_limit, Some(10));
    t.collection("deflimit", json!({ "quantity": 100 })).await;
    assert_eq!(t.inspect("deflimit").await.int("perUserLimit"), 10);
    assert_eq!(t.reserve("u", "deflimit", "o1", 10).await.status, 202);
    t.reserve("u", "deflimit", "o2", 1).await.assert_problem(409, "LIMIT_EXCEEDED");
    // An explicit limit (the quantity: no practical limit) is kept as given.
    t.collection("open", json!({ "quantity": 100, "perUserLimit": 100 })).await;
    assert_eq!(t.reserve("u", "open", "o1", 10).await.status, 202);
    assert_eq!(t.reserve("u", "open", "o2", 10).await.status, 202);
}

#[tokio::test]
async fn redis_credentials_come_from_secrets_manager() {
    let sdk = flashstock::adapters::aws_sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let tls = std::env::var("FLASHSTOCK_TEST_REDIS_TLS_URL").expect("infra/test.sh sets it");
    let secret = |name: String, value: Value| {
        let sm = sm.clone();
        async move {
            let out = sm.create_secret().name(name).secret_string(value.to_string()).send().await.unwrap();
            out.arn().unwrap().to_owned()
        }
    };
    let name = format!("redis-{}", ulid::Ulid::new());
    let good = secret(format!("{name}-good"), json!({ "url": tls })).await;
    let from = |arn: &str| RedisSource::SecretsManager { secret_arn: arn.to_owned(), endpoint: "unused:6379".into() };
    let src = from(&good);
    let t = TestApp::start_tls(TestApp::fast_options(), move |c| c.redis = src).await;
    t.collection("sm", json!({ "quantity": 5 })).await;
    assert_eq!(t.reserve("u", "sm", "o1", 1).await.status, 202);
    t.wait_status("u", "sm", "o1", "RESERVED", WAIT).await;
    // A wrong password, a missing secret, a plaintext URL without the local override: no start.
    let wrong = secret(format!("{name}-wrong"), json!({ "url": tls.replace(":flashstock-test@", ":nope@") })).await;
    let plain = secret(format!("{name}-plain"), json!({ "url": "redis://127.0.0.1:1" })).await;
    for (arn, insecure_ok) in
        [(wrong, true), ("arn:aws:secretsmanager:us-east-1:000000000000:secret:none".into(), true), (plain, false)]
    {
        let src = from(&arn);
        let launched = flashstock_local::stack::Stack::launch(
            &format!("sm{}", ulid::Ulid::new().to_string().to_lowercase()),
            &tls,
            TestApp::fast_options(),
            move |c| {
                c.redis = src;
                c.allow_insecure_redis = insecure_ok;
            },
        )
        .await;
        assert!(launched.is_err(), "{arn}");
    }
}

#[tokio::test]
async fn a_buyers_budget_is_per_collection_and_starts_again_with_the_next_window() {
    let clock = std::sync::Arc::new(flashstock::ports::ShiftedClock::default());
    let opts = flashstock_local::stack::StackOptions { clock: Some(clock.clone()), ..TestApp::fast_options() };
    let t = TestApp::start_with(opts, |c| {
        c.buyer_budget = Some(flashstock::domain::BuyerBudget { requests: 2, window: Duration::from_secs(60) });
    })
    .await;
    for c in ["win-a", "win-b"] {
        t.collection(c, json!({ "quantity": 50, "perUserLimit": 50 })).await;
    }
    // Right after a window starts, so that the requests below fall in it.
    let now = clock.now_ms();
    clock.advance(Duration::from_millis((60_000 - now.rem_euclid(60_000)) as u64 + 10));
    let ends = clock.now_ms() + 59_990;
    assert_eq!(t.reserve("pat", "win-a", "p1", 1).await.status, 202);
    assert_eq!(t.reserve("pat", "win-a", "p1", 1).await.status, 202, "a replay spends one too");
    let over = t.reserve("pat", "win-a", "p2", 1).await;
    over.assert_problem(429, "RATE_LIMITED");
    let after: i64 = over.retry_after.as_deref().and_then(|v| v.parse().ok()).expect("Retry-After");
    let left = (ends - clock.now_ms()).div_euclid(1000);
    assert!((left..=60).contains(&after), "until the window ends ({left} s or a little more): {after}");
    t.cancel("pat", "win-a", "p1").await.assert_problem(429, "RATE_LIMITED");
    // Another collection counts on its own.
    assert_eq!(t.reserve("pat", "win-b", "p1", 1).await.status, 202);
    // The next window.
    clock.advance(Duration::from_secs(60));
    assert_eq!(t.reserve("pat", "win-a", "p2", 1).await.status, 202);
    // Durable first: a cancel racing its persist may be answered 503 (retryable) under load, and
    // a retry would spend another request.
    t.wait_status("pat", "win-a", "p2", "RESERVED", Duration::from_secs(10)).await;
    let cancelled = t.cancel("pat", "win-a", "p2").await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    t.reserve("pat", "win-a", "p3", 1).await.assert_problem(429, "RATE_LIMITED");
    // An instance whose clock lags into the window before counts in the later one it finds.
    clock.rewind(Duration::from_secs(60));
    t.reserve("pat", "win-a", "p4", 1).await.assert_problem(429, "RATE_LIMITED");
    t.cancel("pat", "win-a", "p4").await.assert_problem(429, "RATE_LIMITED");
}
