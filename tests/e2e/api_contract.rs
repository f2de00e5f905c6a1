//! The HTTP contract: authentication, scopes, ownership, and a 4xx problem+json for every malformed
//! input — never a 500.

use std::time::Duration;

use flashstock_e2e::{ADMIN, CONFIRM, TestApp};
use serde_json::json;

#[tokio::test]
async fn no_token_is_401_wrong_role_is_403_and_other_users_orders_are_404() {
    let t = TestApp::start().await;
    t.collection("auth", json!({ "quantity": 5 })).await;
    let body = r#"{"orderId":"o1","quantity":1}"#;
    t.raw("POST", "/v1/collections/auth/reservations", None, Some(body)).await.assert_problem(401, "UNAUTHENTICATED");
    t.raw("POST", "/v1/collections/auth/reservations", Some("garbage"), Some(body))
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    let forged = flashstock_local::jwt::mint("not-the-secret", "mallory", &[flashstock::http::auth::ADMIN_SCOPE]);
    t.raw("GET", "/v1/admin/collections/auth", Some(&forged), None).await.assert_problem(401, "UNAUTHENTICATED");
    t.call("GET", "/v1/admin/collections/auth", "buyer", &[], None).await.assert_problem(403, "FORBIDDEN");
    t.call("PUT", "/v1/admin/collections/x", "buyer", CONFIRM, Some(json!({"quantity": 1})))
        .await
        .assert_problem(403, "FORBIDDEN");
    t.call("POST", "/v1/admin/collections/auth/warmup", "buyer", &[], None).await.assert_problem(403, "FORBIDDEN");
    t.call("POST", "/v1/collections/auth/reservations/o1/confirm", "buyer", &[], Some(json!({"buyerId": "buyer"})))
        .await
        .assert_problem(403, "FORBIDDEN");
    // A userId in the body is ignored: identity comes from the token only.
    let a = t
        .call(
            "POST",
            "/v1/collections/auth/reservations",
            "alice",
            &[],
            Some(json!({"orderId": "o1", "quantity": 1, "userId": "bob"})),
        )
        .await;
    assert_eq!(a.status, 202, "{a:?}");
    t.wait_status("alice", "auth", "o1", "RESERVED", Duration::from_secs(10)).await;
    t.status("bob", "auth", "o1").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    assert_eq!(t.cancel("bob", "auth", "o1").await.str("reason"), "EMPTY_ROLLBACK", "bob's own o1, not alice's");
    t.status("alice", "auth", "never-seen").await.assert_problem(404, "RESERVATION_NOT_FOUND");
    assert_eq!(t.status("alice", "auth", "o1").await.str("status"), "RESERVED");
    t.assert_settled("auth").await;
}

#[tokio::test]
async fn every_malformed_field_is_a_400_naming_it() {
    let t = TestApp::start().await;
    t.collection("bad", json!({ "quantity": 5 })).await;
    let user = t.token("u", &[]);
    let admin = t.token("op", ADMIN);
    let reserve = |body: &'static str| {
        let user = user.clone();
        let t = &t;
        async move { t.raw("POST", "/v1/collections/bad/reservations", Some(&user), Some(body)).await }
    };
    for (body, code, field) in [
        ("", "MALFORMED_BODY", None),
        ("{", "MALFORMED_BODY", None),
        ("[1]", "MALFORMED_BODY", None),
        ("\"x\"", "MALFORMED_BODY", None),
        (r#"{"quantity":1}"#, "INVALID_FIELD", Some("orderId")),
        (r#"{"orderId":7,"quantity":1}"#, "INVALID_FIELD", Some("orderId")),
        (r#"{"orderId":"has space","quantity":1}"#, "INVALID_FIELD", Some("orderId")),
        (r#"{"orderId":"{tag}","quantity":1}"#, "INVALID_FIELD", Some("orderId")),
        (
            r#"{"orderId":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","quantity":1}"#,
            "INVALID_FIELD",
            Some("orderId"),
        ),
        (r#"{"orderId":"ok"}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":0}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":-1}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":11}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":1.5}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":"1"}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":99999999999999999999}"#, "INVALID_FIELD", Some("quantity")),
        (r#"{"orderId":"ok","quantity":18446744073709551615}"#, "INVALID_FIELD", Some("quantity")),
    ] {
        let a = reserve(body).await;
        a.assert_problem(400, code);
        if let Some(f) = field {
            assert_eq!(a.str("field"), f, "{body}: {a:?}");
        }
    }
    let a = t
        .raw("POST", "/v1/collections/bad%20id/reservations", Some(&user), Some(r#"{"orderId":"ok","quantity":1}"#))
        .await;
    a.assert_problem(400, "INVALID_FIELD");
    assert_eq!(a.str("field"), "collectionId");
    let a = t.raw("GET", "/v1/collections/bad/reservations/%7Bx%7D", Some(&user), None).await;
    a.assert_problem(400, "INVALID_FIELD");
    assert_eq!(a.str("field"), "orderId");
    let confirm = "/v1/collections/bad/reservations/o1/confirm";
    let service = t.token("payments", CONFIRM);
    for (body, field) in [(r#"{}"#, "buyerId"), (r#"{"buyerId":7}"#, "buyerId"), (r#"{"buyerId":""}"#, "buyerId")] {
        let a = t.raw("POST", confirm, Some(&service), Some(body)).await;
        a.assert_problem(400, "INVALID_FIELD");
        assert_eq!(a.str("field"), field, "{body}: {a:?}");
    }
    t.raw("POST", confirm, Some(&service), None).await.assert_problem(400, "MALFORMED_BODY");
    t.raw("GET", "/v1/reservations/o1", Some(&user), None).await.assert_problem(404, "ROUTE_NOT_FOUND");
    for (body, field) in [
        (r#"{}"#, "quantity"),
        (r#"{"quantity":-1}"#, "quantity"),
        (r#"{"quantity":1000000001}"#, "quantity"),
        (r#"{"quantity":"10"}"#, "quantity"),
        (r#"{"quantity":10,"perUserLimit":0}"#, "perUserLimit"),
        (r#"{"quantity":10,"perUserLimit":"x"}"#, "perUserLimit"),
        (r#"{"quantity":10,"paymentWindowSeconds":0}"#, "paymentWindowSeconds"),
        (r#"{"quantity":10,"paymentWindowSeconds":86401}"#, "paymentWindowSeconds"),
    ] {
        let a = t.raw("PUT", "/v1/admin/collections/new", Some(&admin), Some(body)).await;
        a.assert_problem(400, "INVALID_FIELD");
        assert_eq!(a.str("field"), field, "{body}: {a:?}");
    }
    t.raw("PUT", "/v1/admin/collections/new", Some(&admin), Some("nope")).await.assert_problem(400, "MALFORMED_BODY");
    t.raw("GET", "/v1/nothing/here", Some(&user), None).await.assert_problem(404, "ROUTE_NOT_FOUND");
    t.raw("DELETE", "/v1/collections/c/reservations/x", Some(&user), None)
        .await
        .assert_problem(405, "METHOD_NOT_ALLOWED");
    let big = format!(r#"{{"orderId":"ok","quantity":1,"pad":"{}"}}"#, "x".repeat(70_000));
    let a = t.raw("POST", "/v1/collections/bad/reservations", Some(&user), Some(&big)).await;
    assert_eq!(a.status, 413, "{a:?}");
    // Nothing was taken by any of it.
    let s = t.stores("bad").await;
    assert_eq!(s.redis_stock, Some(5));
}

#[tokio::test]
async fn collection_creation_is_idempotent_and_quantity_immutable() {
    let t = TestApp::start().await;
    let a = t.create("imm", json!({ "quantity": 7, "perUserLimit": 2 })).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!((a.int("quantity"), a.int("saleable")), (7, 7));
    let again = t.create("imm", json!({ "quantity": 7, "perUserLimit": 2 })).await;
    assert_eq!(again.status, 200, "{again:?}");
    t.create("imm", json!({ "quantity": 8, "perUserLimit": 2 })).await.assert_problem(409, "QUANTITY_IMMUTABLE");
    t.create("imm", json!({ "quantity": 7 })).await.assert_problem(409, "SETTINGS_IMMUTABLE");
    let got = t.inspect("imm").await;
    assert_eq!(got.status, 200);
    for f in ["quantity", "saleable", "pending", "reserved", "confirmed"] {
        assert!(got.body.get(f).is_some(), "{f} in {got:?}");
    }
    assert_eq!(got.body["cached"], json!(null), "not warmed yet");
    assert_eq!(t.warmup("imm").await.int("cached"), 7);
    assert_eq!(t.inspect("imm").await.int("drift"), 0);
    t.call("GET", "/v1/admin/collections/none", "op", ADMIN, None).await.assert_problem(404, "COLLECTION_NOT_FOUND");
    t.warmup("none").await.assert_problem(404, "COLLECTION_NOT_FOUND");
}
