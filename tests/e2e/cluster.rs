//! The whole protocol on a real three-node Redis Cluster in cluster mode (ElastiCache Serverless
//! presents a cluster endpoint): scripts whose keys share one hash tag, collections spread over
//! nodes.

use std::time::Duration;

use flashstock_e2e::TestApp;
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn try_persist_cancel_confirm_and_reconcile_on_a_redis_cluster() {
    let t = TestApp::start_cluster(TestApp::fast_options(), |c| c.reconcile_threshold_ms = 0).await;
    // Collections whose hash tags land on different nodes.
    let collections = ["ca", "cb", "cc", "cd"];
    for c in collections {
        t.collection(c, json!({ "quantity": 20 })).await;
    }
    let answers: Vec<_> = futures::stream::iter(0..120)
        .map(|i| {
            let t = &t;
            let c = collections[i % collections.len()];
            async move { (i, c, t.reserve(&format!("b{i}"), c, &format!("o{i}"), 1).await) }
        })
        .buffer_unordered(60)
        .collect()
        .await;
    let accepted: Vec<_> = answers.iter().filter(|(_, _, a)| a.status == 202).collect();
    assert_eq!(accepted.len(), 80, "exactly the stock of the four collections");
    for (_, _, a) in answers.iter().filter(|(_, _, a)| a.status != 202) {
        a.assert_problem(409, "SOLD_OUT");
    }
    for (i, c, _) in &accepted {
        t.wait_status(&format!("b{i}"), c, &format!("o{i}"), "RESERVED", Duration::from_secs(30)).await;
    }
    let (i, ci, _) = accepted[0];
    assert_eq!(t.cancel(&format!("b{i}"), ci, &format!("o{i}")).await.str("status"), "CANCELLED");
    let (j, cj, _) = accepted[1];
    assert_eq!(t.confirm(cj, &format!("b{j}"), &format!("o{j}")).await.str("status"), "CONFIRMED");
    // Another buyer using the same order id places an order of their own.
    assert_eq!(t.reserve("late", ci, &format!("o{i}"), 1).await.status, 202, "the unit b{i} gave back");
    let report = t.stack.app.reconcile(flashstock::now_ms()).await.unwrap();
    assert_eq!((report.collections_checked, report.identity_violations, report.errors), (4, 0, 0), "{report:?}");
    for c in collections {
        let s = t.assert_settled(c).await;
        assert_eq!(s.quantity, 20);
    }
    assert_eq!(t.warmup("ca").await.status, 200);
}
