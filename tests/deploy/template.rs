//! `template.yaml` must stay true to the code: every function's `Binary` is a workspace binary and
//! every Lambda binary is deployed; every variable the config requires is set and no Redis
//! credential or local override is; each function's role names the table and queues its code
//! uses; every SQS event source mapping reports batch item failures; queue visibility timeouts
//! are ≥ 6× their consumer's timeout; every route of the API goes to the function that serves it;
//! the durable path's timing (threshold, give-up, the reservation queue's visibility timeout and
//! receive count, persist's timeout and batching window, reconciliation's schedule and timeout)
//! is consistent ([`flashstock::domain::Timing`]), and the values the functions check it on at
//! start-up are the resources' own.
//!
//! And it must stay locked down, checked on what AWS's own SAM translator makes of it
//! (`infra/sam_transform.py`): no IAM policy grants on `*` (beyond the four actions IAM only
//! takes on `*`) or uses a wildcard action or an AWS managed policy; every route has the JWT
//! authorizer and exactly the OAuth scope the code requires; the cache admits 6379-6380 from the
//! functions' security group only, with AUTH on. Each check also runs against a broken template
//! to prove it fails.

use std::collections::{BTreeMap, BTreeSet};

use std::time::Duration;

use flashstock::config;
use flashstock::domain::Timing;
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml")).expect("template parses")
}

/// Binaries of the workspace packages under `functions/` (from `cargo metadata`).
fn lambda_binaries() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let mut bins = BTreeSet::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        if !p["manifest_path"].as_str().unwrap_or("").contains("/functions/") {
            continue;
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")) {
                bins.insert(t["name"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    bins
}

/// What each function's code touches (from its handlers' use of the ports): the resources its
/// policy must name, by logical id.
fn uses(binary: &str) -> &'static [&'static str] {
    match binary {
        // Try sends reservations; admin/status/confirm read and write the table.
        "flashstock-api" => &["Table", "ReservationQueue"],
        // Persist writes the table and sends payment-window timers.
        "flashstock-persist" => &["Table", "TimeoutQueue"],
        // Cancel writes the table, queries the expiry index, re-delays timers.
        "flashstock-cancel" => &["Table", "TimeoutQueue"],
        // Reconcile reads and writes the table and its collection index, and re-sends
        // reservations (heal forward).
        "flashstock-reconcile" => &["Table", "ReservationQueue"],
        _ => &[],
    }
}

fn functions(t: &Value) -> BTreeMap<String, Value> {
    t["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, v)| (k.as_str().unwrap_or("").to_owned(), v.clone()))
        .collect()
}

/// Every problem found; empty when the template is true to the code.
fn problems(t: &Value, bins: &BTreeSet<String>) -> Vec<String> {
    let mut p = Vec::new();
    let fns = functions(t);
    let mut deployed = BTreeSet::new();
    let global_env = &t["Globals"]["Function"]["Environment"]["Variables"];
    for (name, f) in &fns {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or("").to_owned();
        if f["Metadata"]["BuildMethod"] != "rust-cargolambda" {
            p.push(format!("{name}: BuildMethod is not rust-cargolambda"));
        }
        if !bins.contains(&binary) {
            p.push(format!("{name}: Binary {binary:?} is not a binary of the workspace"));
        }
        deployed.insert(binary.clone());
        let env = &f["Properties"]["Environment"]["Variables"];
        let required = flashstock::config::REQUIRED.into_iter();
        for var in required.chain([flashstock::config::REDIS_SECRET_ARN, flashstock::config::REDIS_ENDPOINT]) {
            if env[var].is_null() && global_env[var].is_null() {
                p.push(format!("{name}: environment variable {var} (required by the config) is missing"));
            }
        }
        for var in [flashstock::config::REDIS_URL, flashstock::config::ALLOW_INSECURE_REDIS] {
            if !env[var].is_null() || !global_env[var].is_null() {
                p.push(format!("{name}: environment variable {var} must not be set in a deployment"));
            }
        }
        let role = f["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap_or("");
        let policies = serde_json::to_string(&t["Resources"][role]["Properties"]["Policies"]).unwrap_or_default();
        for resource in uses(&binary) {
            let named = policies.contains(&format!("\"{resource}\"")) || policies.contains(&format!("${{{resource}."));
            if !named {
                p.push(format!("{name}: role {role:?} omits {resource}, which its code uses"));
            }
        }
        let timeout = f["Properties"]["Timeout"].as_i64().or(t["Globals"]["Function"]["Timeout"].as_i64()).unwrap_or(3);
        for (ev_name, ev) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if ev["Type"] != "SQS" {
                continue;
            }
            let types = &ev["Properties"]["FunctionResponseTypes"];
            if !types.as_sequence().is_some_and(|s| s.iter().any(|v| v == "ReportBatchItemFailures")) {
                p.push(format!("{name}.{ev_name:?}: SQS event source mapping lacks ReportBatchItemFailures"));
            }
            let queue = ev["Properties"]["Queue"]["Fn::GetAtt"][0].as_str().unwrap_or("");
            let visibility = t["Resources"][queue]["Properties"]["VisibilityTimeout"].as_i64().unwrap_or(30);
            if visibility < 6 * timeout {
                p.push(format!("{queue}: visibility {visibility} s < 6 × {name}'s timeout {timeout} s"));
            }
        }
    }
    for b in bins.difference(&deployed) {
        p.push(format!("Lambda binary {b} is not deployed by the template"));
    }
    p.extend(timing_problems(t));
    p
}

/// The timing the template deploys, read from its resources and parameter defaults.
fn deployed_timing(t: &Value) -> Result<Timing, String> {
    let r = &t["Resources"];
    let num = |v: &Value, what: &str| v.as_u64().ok_or_else(|| format!("{what} is not a number: {v:?}"));
    let persist = &r["PersistFunction"]["Properties"];
    let reconcile = &r["ReconcileFunction"]["Properties"];
    let cancel = &r["CancelFunction"]["Properties"];
    let schedule = reconcile["Events"]["EveryMinute"]["Properties"]["Schedule"].as_str().unwrap_or("");
    let interval = rate_seconds(schedule).ok_or_else(|| format!("reconcile schedule {schedule:?} is not a rate"))?;
    let budget = t["Globals"]["Function"]["Environment"]["Variables"][config::RECONCILE_BUDGET_MS]
        .as_str()
        .and_then(|v| v.parse().ok())
        .map_or(flashstock::config::RECONCILE_BUDGET_DEFAULT, Duration::from_millis);
    Ok(Timing {
        threshold: Duration::from_millis(num(&t["Parameters"]["ReconcileThresholdMs"]["Default"], "threshold")?),
        give_up: Duration::from_millis(num(&t["Parameters"]["ReconcileGiveUpMs"]["Default"], "give-up")?),
        visibility_timeout: Duration::from_secs(num(
            &r["ReservationQueue"]["Properties"]["VisibilityTimeout"],
            "ReservationQueue visibility",
        )?),
        max_receive_count: num(
            &r["ReservationQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"],
            "ReservationQueue maxReceiveCount",
        )? as u32,
        persist_timeout: Duration::from_secs(num(&persist["Timeout"], "PersistFunction timeout")?),
        batch_window: Duration::from_secs(num(
            &persist["Events"]["Reservations"]["Properties"]["MaximumBatchingWindowInSeconds"],
            "persist batching window",
        )?),
        reconcile_interval: Duration::from_secs(interval),
        reconcile_timeout: Duration::from_secs(num(&reconcile["Timeout"], "ReconcileFunction timeout")?),
        reconcile_budget: budget,
        cancel_timeout: Duration::from_secs(num(&cancel["Timeout"], "CancelFunction timeout")?),
    })
}

/// Seconds of an EventBridge `rate(N unit)` expression.
fn rate_seconds(expr: &str) -> Option<u64> {
    let (n, unit) = expr.strip_prefix("rate(")?.strip_suffix(')')?.split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    Some(
        n * match unit.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3_600,
            "day" => 86_400,
            _ => return None,
        },
    )
}

/// The timing's conflicts, and every start-up variable that differs from its resource's value.
fn timing_problems(t: &Value) -> Vec<String> {
    let timing = match deployed_timing(t) {
        Ok(timing) => timing,
        Err(e) => return vec![format!("timing: {e}")],
    };
    let mut p: Vec<String> =
        timing.conflicts().into_iter().map(|c| format!("timing: {:?} {}", c.knob, c.why)).collect();
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let want = [
        (config::RESERVATION_VISIBILITY_SECONDS, timing.visibility_timeout.as_secs()),
        (config::RESERVATION_MAX_RECEIVES, u64::from(timing.max_receive_count)),
        (config::PERSIST_TIMEOUT_SECONDS, timing.persist_timeout.as_secs()),
        (config::PERSIST_BATCH_WINDOW_SECONDS, timing.batch_window.as_secs()),
        (config::RECONCILE_INTERVAL_SECONDS, timing.reconcile_interval.as_secs()),
        (config::RECONCILE_TIMEOUT_SECONDS, timing.reconcile_timeout.as_secs()),
        (config::CANCEL_TIMEOUT_SECONDS, timing.cancel_timeout.as_secs()),
    ];
    for (var, value) in want {
        let got = env[var].as_str().and_then(|v| v.parse::<u64>().ok());
        if got != Some(value) {
            p.push(format!(
                "timing: {var} is {got:?} but the resource says {value}: the start-up check would be blind"
            ));
        }
        // And the config's default is the template's value (a function given none checks that).
        let default = config::TIMING_DEFAULTS.iter().find(|(n, _)| *n == var).map(|(_, v)| *v);
        if default != Some(value) {
            p.push(format!("timing: the config's default for {var} is {default:?}, the template deploys {value}"));
        }
    }
    for (var, param) in
        [(config::RECONCILE_THRESHOLD_MS, "ReconcileThresholdMs"), (config::RECONCILE_GIVE_UP_MS, "ReconcileGiveUpMs")]
    {
        if env[var]["Ref"] != param {
            p.push(format!("timing: {var} is not the {param} parameter"));
        }
    }
    // The config's own defaults for those two are the parameters' defaults.
    let defaults = config::Config::from_lookup(|k| match k {
        config::REDIS_URL => Some("rediss://cache:6379".into()),
        config::TABLE | config::RESERVATION_QUEUE_URL | config::TIMEOUT_QUEUE_URL => Some("x".into()),
        _ => None,
    });
    let want = (timing.threshold.as_millis() as i64, timing.give_up.as_millis() as i64);
    match defaults {
        Ok(c) if (c.reconcile_threshold_ms, c.reconcile_give_up_ms) == want => {}
        other => p.push(format!("timing: the config's defaults are not the parameters' {want:?}: {other:?}")),
    }
    p
}

/// (method, path) → function, for every HttpApi event.
fn routes(t: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (name, f) in functions(t) {
        for (_, ev) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if ev["Type"] == "HttpApi" {
                let m = ev["Properties"]["Method"].as_str().unwrap_or("").to_owned();
                let path = ev["Properties"]["Path"].as_str().unwrap_or("").to_owned();
                out.insert((m, path), name.clone());
            }
        }
    }
    out
}

#[test]
fn template_is_true_to_the_code() {
    let p = problems(&template(), &lambda_binaries());
    assert!(p.is_empty(), "template.yaml problems:\n{}", p.join("\n"));
}

#[test]
fn every_route_of_the_contract_reaches_its_function() {
    let want: BTreeMap<(String, String), String> = [
        ("PUT", "/v1/admin/collections/{collectionId}", "ApiFunction"),
        ("POST", "/v1/admin/collections/{collectionId}/warmup", "ApiFunction"),
        ("POST", "/v1/admin/collections/{collectionId}/cache-shards", "ApiFunction"),
        ("GET", "/v1/admin/collections/{collectionId}", "ApiFunction"),
        ("POST", "/v1/collections/{collectionId}/reservations", "ApiFunction"),
        ("GET", "/v1/collections/{collectionId}/reservations/{orderId}", "ApiFunction"),
        ("POST", "/v1/collections/{collectionId}/reservations/{orderId}/confirm", "ApiFunction"),
        ("POST", "/v1/collections/{collectionId}/reservations/{orderId}/cancel", "CancelFunction"),
    ]
    .into_iter()
    .map(|(m, p, f)| ((m.to_owned(), p.to_owned()), f.to_owned()))
    .collect();
    let got = routes(&template());
    assert_eq!(got, want);
    // And the handlers recognise every one of them.
    for (m, p) in want.keys() {
        let concrete = p.replace("{collectionId}", "c1").replace("{orderId}", "o1");
        let method = http::Method::from_bytes(m.as_bytes()).unwrap();
        assert!(flashstock::http::route(&method, &concrete).is_ok(), "{m} {p}");
    }
}

#[test]
fn the_checks_catch_a_broken_template() {
    let bins = lambda_binaries();
    assert_eq!(bins.len(), 4, "four Lambda binaries: {bins:?}");
    let mut t = template();
    t["Resources"]["PersistFunction"]["Metadata"]["BuildProperties"]["Binary"] = Value::from("flashstock-persister");
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("not a binary of the workspace")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("flashstock-persist is not deployed")), "{p:?}");

    let mut t = template();
    if let Some(m) = t["Globals"]["Function"]["Environment"]["Variables"].as_mapping_mut() {
        m.remove("FLASHSTOCK_TIMEOUT_QUEUE_URL");
    }
    let p = problems(&t, &bins);
    assert_eq!(p.iter().filter(|x| x.contains("FLASHSTOCK_TIMEOUT_QUEUE_URL")).count(), 4, "{p:?}");

    let mut t = template();
    t["Resources"]["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][2]["Resource"][0] =
        serde_yaml_ng::from_str("{ \"Fn::GetAtt\": [TimeoutQueue, Arn] }").unwrap();
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("ApiFunction: role \"ApiRole\" omits ReservationQueue")), "{p:?}");

    let mut t = template();
    t["Globals"]["Function"]["Environment"]["Variables"]["FLASHSTOCK_REDIS_URL"] =
        Value::from("rediss://:pw@cache:6379");
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("FLASHSTOCK_REDIS_URL must not be set")), "{p:?}");

    let mut t = template();
    t["Resources"]["PersistFunction"]["Properties"]["Events"]["Reservations"]["Properties"]["FunctionResponseTypes"] =
        Value::Sequence(vec![]);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("lacks ReportBatchItemFailures")), "{p:?}");

    let mut t = template();
    t["Resources"]["TimeoutQueue"]["Properties"]["VisibilityTimeout"] = Value::from(60);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("TimeoutQueue: visibility 60")), "{p:?}");

    // Reconciliation overtaking redelivery: a longer visibility timeout (the start-up variable
    // raised with it) makes five receives outlast the give-up.
    let mut t = template();
    t["Resources"]["ReservationQueue"]["Properties"]["VisibilityTimeout"] = Value::from(300);
    t["Globals"]["Function"]["Environment"]["Variables"][config::RESERVATION_VISIBILITY_SECONDS] = Value::from("300");
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("timing: GiveUp") && x.contains("1501 s")), "{p:?}");
    // The same through the receive count, the give-up parameter, or a threshold inside persist's timeout.
    let mut t = template();
    t["Resources"]["ReservationQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = Value::from(10);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("timing: GiveUp")), "{p:?}");
    assert!(
        p.iter().any(|x| x.contains("FLASHSTOCK_RESERVATION_MAX_RECEIVES is Some(5) but the resource says 10")),
        "{p:?}"
    );
    let mut t = template();
    t["Parameters"]["ReconcileGiveUpMs"]["Default"] = Value::from(600_000);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("timing: GiveUp")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("the config's defaults are not the parameters'")), "{p:?}");
    let mut t = template();
    t["Parameters"]["ReconcileThresholdMs"]["Default"] = Value::from(20_000);
    assert!(problems(&t, &bins).iter().any(|x| x.contains("timing: Threshold")));
    let mut t = template();
    t["Resources"]["ReconcileFunction"]["Properties"]["Timeout"] = Value::from(30);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("timing: ReconcileBudget")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("FLASHSTOCK_RECONCILE_TIMEOUT_SECONDS")), "{p:?}");
    // A cancel that may outlive the threshold: reconciliation could clear its intent mid-way.
    let mut t = template();
    t["Resources"]["CancelFunction"]["Properties"]["Timeout"] = Value::from(41);
    let p = problems(&t, &bins);
    assert!(p.iter().any(|x| x.contains("timing: Threshold") && x.contains("46 s")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("FLASHSTOCK_CANCEL_TIMEOUT_SECONDS")), "{p:?}");
    // The 20-minute give-up of before: two re-sends do not fit before its quiet stretch.
    let mut t = template();
    t["Parameters"]["ReconcileGiveUpMs"]["Default"] = Value::from(1_200_000);
    assert!(problems(&t, &bins).iter().any(|x| x.contains("timing: GiveUp") && x.contains("455 s")));
}
