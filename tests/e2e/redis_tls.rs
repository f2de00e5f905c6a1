//! Redis over TLS with AUTH, as production uses it (`rediss://` with credentials in the URL, which
//! reaches the code through `FLASHSTOCK_REDIS_URL`).

use std::time::Duration;

use flashstock::adapters::redis_cache;
use flashstock_e2e::TestApp;
use serde_json::json;

#[tokio::test]
async fn the_protocol_runs_over_tls_with_auth() {
    let t = TestApp::start_tls(TestApp::fast_options(), |_| {}).await;
    t.collection("tls", json!({ "quantity": 5 })).await;
    assert_eq!(t.reserve("u", "tls", "o1", 2).await.status, 202);
    t.wait_status("u", "tls", "o1", "RESERVED", Duration::from_secs(10)).await;
    assert_eq!(t.cancel("u", "tls", "o1").await.str("status"), "CANCELLED");
    let s = t.assert_settled("tls").await;
    assert_eq!((s.saleable, s.redis_stock), (5, Some(5)));
}

#[tokio::test]
async fn wrong_credentials_or_plaintext_are_refused_at_start_up() {
    let url = std::env::var("FLASHSTOCK_TEST_REDIS_TLS_URL").expect("infra/test.sh sets it");
    let wrong = url.replace(":flashstock-test@", ":wrong@");
    assert!(redis_cache::connect(&wrong, false).await.is_err(), "a wrong password fails at connect");
    let plain = url.replacen("rediss://", "redis://", 1);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), redis_cache::connect(&plain, false))
            .await
            .map_or(true, |r| r.is_err()),
        "plaintext to a TLS port never works"
    );
}
