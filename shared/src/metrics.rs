//! Metrics: CloudWatch embedded-metric-format (EMF) lines, the one way flashstock emits metrics.
//! Lambda ships stdout to CloudWatch Logs, which extracts the metrics; the alarms in
//! `template.yaml` read them. Only the Lambda glue ([`crate::lambda`]) prints them: use cases
//! return reports.

use serde_json::json;

use crate::app::reconcile::ReconcileReport;

/// Prints EMF lines (each must be a bare JSON line on stdout).
pub fn emit(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// One persist invocation: messages received and reported failed (the persist alarm reads this).
pub fn persist_line(now_ms: i64, received: usize, failed: usize) -> String {
    json!({
        "_aws": { "Timestamp": now_ms, "CloudWatchMetrics": [{
            "Namespace": "flashstock", "Dimensions": [[]],
            "Metrics": [{ "Name": "PersistMessages", "Unit": "Count" },
                        { "Name": "PersistFailedMessages", "Unit": "Count" }],
        }]},
        "PersistMessages": received,
        "PersistFailedMessages": failed,
    })
    .to_string()
}

/// CloudWatch embedded-metric-format lines: one per collection (dimension `Collection`) and one
/// for the run.
pub fn reconcile_lines(report: &ReconcileReport, now_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (id, c) in &report.collections {
        out.push(
            json!({
                "_aws": { "Timestamp": now_ms, "CloudWatchMetrics": [{
                    "Namespace": "flashstock",
                    "Dimensions": [["Collection"]],
                    "Metrics": [
                        { "Name": "Drift", "Unit": "Count" },
                        { "Name": "IdentityViolations", "Unit": "Count" },
                        { "Name": "EntriesHealed", "Unit": "Count" },
                        { "Name": "TombstonesWritten", "Unit": "Count" },
                        { "Name": "Resent", "Unit": "Count" },
                        { "Name": "Tallied", "Unit": "Count" },
                    ],
                }]},
                "Collection": id,
                "Drift": c.drift.unwrap_or(0),
                "IdentityViolations": c.identity_violations.len(),
                "EntriesHealed": c.settled + c.returned,
                "TombstonesWritten": c.tombstones_written,
                "Resent": c.resent,
                "Tallied": c.tallied,
            })
            .to_string(),
        );
    }
    out.push(
        json!({
            "_aws": { "Timestamp": now_ms, "CloudWatchMetrics": [{
                "Namespace": "flashstock",
                "Dimensions": [[]],
                "Metrics": [
                    { "Name": "ReconcileMaxAbsDrift", "Unit": "Count" },
                    { "Name": "ReconcileIdentityViolations", "Unit": "Count" },
                    { "Name": "ReconcileErrors", "Unit": "Count" },
                    { "Name": "ReconcileDuration", "Unit": "Milliseconds" },
                ],
            }]},
            "ReconcileMaxAbsDrift": report.max_abs_drift,
            "ReconcileIdentityViolations": report.identity_violations,
            "ReconcileErrors": report.errors,
            "ReconcileDuration": report.duration_ms,
        })
        .to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::reconcile::CollectionReport;

    #[test]
    fn every_line_declares_the_metrics_it_carries() {
        let mut r = ReconcileReport::default();
        r.collections
            .insert("c1".into(), CollectionReport { drift: Some(-2), tombstones_written: 1, ..Default::default() });
        let mut lines = reconcile_lines(&r, 1_700_000_000_000);
        assert_eq!(lines.len(), 2);
        lines.push(persist_line(1_700_000_000_000, 10, 1));
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            let metrics = &v["_aws"]["CloudWatchMetrics"][0]["Metrics"];
            for m in metrics.as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(v.get(name).is_some(), "{name} has a value");
            }
            assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        }
    }
}
