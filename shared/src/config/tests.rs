//! The config's parsing and refusals, by variable.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| m.get(k).cloned()
}

const BASE: [(&str, &str); 4] = [
    (REDIS_URL, "rediss://cache.internal:6379"),
    (TABLE, "t"),
    (RESERVATION_QUEUE_URL, "http://q/r"),
    (TIMEOUT_QUEUE_URL, "http://q/t"),
];

#[test]
fn defaults() {
    let c = Config::from_lookup(env(&BASE)).unwrap();
    assert_eq!(c.key_prefix, "fs");
    assert_eq!(c.order_retention_seconds, 86_400);
    assert_eq!(c.sold_out_flag, Duration::from_millis(500));
    assert_eq!(c.fault_drop_message_percent, 0);
    assert!(c.emit_emf);
    assert!(!c.redis_cluster);
    assert_eq!(c.buyer_budget, Some(BuyerBudget { requests: 20, window: Duration::from_secs(60) }));
    assert_eq!(c.default_per_user_limit, Some(10));
    assert!(c.write_turns);
    // Bounded healing (docs/DESIGN.md#guarantees): threshold + one 60 s schedule interval < 2 min.
    assert!(c.reconcile_threshold_ms + 60_000 < 120_000);
    assert_eq!(c.reconcile_give_up_ms, 1_500_000);
}

#[test]
fn timing_that_lets_reconciliation_overtake_redelivery_is_refused_at_start_up() {
    // A longer visibility timeout: 5 receives × 300 s outlast the 25-minute give-up.
    let mut pairs = BASE.to_vec();
    pairs.push((RESERVATION_VISIBILITY_SECONDS, "300"));
    let Err(ConfigError::Invalid { name, why }) = Config::from_lookup(env(&pairs)) else {
        panic!("accepted a give-up inside the redelivery span")
    };
    assert_eq!(name, RECONCILE_GIVE_UP_MS);
    assert!(why.contains("1501 s"), "{why}");
    // Raising the give-up past the last redelivery makes it consistent again.
    pairs.push((RECONCILE_GIVE_UP_MS, "2100000"));
    assert!(Config::from_lookup(env(&pairs)).is_ok());
    // The threshold inside a healthy first delivery, and a run budget past its timeout.
    for (var, value) in [(RECONCILE_THRESHOLD_MS, "10000"), (RECONCILE_BUDGET_MS, "60000")] {
        let mut pairs = BASE.to_vec();
        pairs.push((var, value));
        assert!(
            matches!(Config::from_lookup(env(&pairs)), Err(ConfigError::Invalid { name, .. }) if name == var),
            "{var}={value}"
        );
    }
}

#[test]
fn secrets_never_show_in_debug() {
    let pairs = [(REDIS_URL, "rediss://:hunter2@cache:6379")];
    let mut all = BASE.to_vec();
    all.retain(|(k, _)| *k != REDIS_URL);
    all.extend(pairs);
    let c = Config::from_lookup(env(&all)).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    assert!(format!("{c:?}").contains("Secret([redacted])"), "{c:?}");
    assert_eq!(c.redis, RedisSource::Url(Secret::new("rediss://:hunter2@cache:6379")));
    assert_eq!(c.redis_url(), Some(&Secret::new("rediss://:hunter2@cache:6379")));
}

#[test]
fn bounds_are_inclusive_where_the_docs_say_so() {
    let with = |k, v: String| {
        let mut pairs: Vec<(&str, String)> = BASE.iter().map(|(k, v)| (*k, v.to_string())).collect();
        pairs.push((k, v));
        let m: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Config::from_lookup(move |k| m.get(k).cloned())
    };
    assert!(with(FAULT_DROP_MESSAGE_PERCENT, "100".into()).is_ok());
    assert!(matches!(
        with(FAULT_DROP_MESSAGE_PERCENT, "101".into()),
        Err(ConfigError::Invalid { name: FAULT_DROP_MESSAGE_PERCENT, .. })
    ));
    assert!(with(ORDER_RETENTION_SECONDS, MIN_ORDER_RETENTION_SECONDS.to_string()).is_ok());
    assert!(matches!(
        with(ORDER_RETENTION_SECONDS, (MIN_ORDER_RETENTION_SECONDS - 1).to_string()),
        Err(ConfigError::Invalid { name: ORDER_RETENTION_SECONDS, .. })
    ));
    // A week bounds every timing knob: a week is in range (whatever else it conflicts with).
    let range = |r: Result<Config, ConfigError>| matches!(r, Err(ConfigError::Invalid { why, .. }) if why.contains("out of range"));
    assert!(!range(with(RECONCILE_GIVE_UP_MS, "604800000".into())));
    assert!(range(with(RECONCILE_GIVE_UP_MS, "604800001".into())));
}

#[test]
fn plaintext_and_unverified_redis_need_the_local_override() {
    for url in ["redis://127.0.0.1:6379", "rediss://:pw@cache:6379/#insecure", "http://cache"] {
        let mut pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != REDIS_URL).collect();
        pairs.push((REDIS_URL, url));
        assert!(matches!(Config::from_lookup(env(&pairs)), Err(ConfigError::Invalid { name: REDIS_URL, .. })), "{url}");
        pairs.push((ALLOW_INSECURE_REDIS, "1"));
        assert!(Config::from_lookup(env(&pairs)).is_ok(), "{url} with the override");
    }
}

#[test]
fn a_secret_replaces_the_url() {
    let mut pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != REDIS_URL).collect();
    assert_eq!(Config::from_lookup(env(&pairs)), Err(ConfigError::Missing(REDIS_URL)));
    pairs.push((REDIS_SECRET_ARN, "arn:aws:secretsmanager:eu-west-1:1:secret:redis"));
    pairs.push((REDIS_ENDPOINT, "cache.internal:6379"));
    let c = Config::from_lookup(env(&pairs)).unwrap();
    assert!(matches!(c.redis, RedisSource::SecretsManager { ref endpoint, .. } if endpoint == "cache.internal:6379"));
    assert_eq!(c.redis_url(), None);
}

#[test]
fn the_buyer_budget_and_default_limit_can_be_turned_off() {
    let mut pairs = BASE.to_vec();
    pairs.extend([(BUYER_BUDGET, "0"), (DEFAULT_PER_USER_LIMIT, "0")]);
    let c = Config::from_lookup(env(&pairs)).unwrap();
    assert_eq!((c.buyer_budget, c.default_per_user_limit), (None, None));
    let mut pairs = BASE.to_vec();
    pairs.push((BUYER_BUDGET_WINDOW_SECONDS, "0"));
    assert!(matches!(
        Config::from_lookup(env(&pairs)),
        Err(ConfigError::Invalid { name: BUYER_BUDGET_WINDOW_SECONDS, .. })
    ));
    // The count is stored in one byte.
    let mut pairs = BASE.to_vec();
    pairs.push((BUYER_BUDGET, "255"));
    assert_eq!(Config::from_lookup(env(&pairs)).unwrap().buyer_budget.map(|b| b.requests), Some(255));
    pairs.push((BUYER_BUDGET, "256"));
    assert!(matches!(Config::from_lookup(env(&pairs)), Err(ConfigError::Invalid { name: BUYER_BUDGET, .. })));
}

#[test]
fn the_old_name_of_write_turns_is_refused_naming_the_new_one() {
    let mut pairs = BASE.to_vec();
    pairs.push((RENAMED_WRITE_TURNS, "off"));
    let Err(ConfigError::Invalid { name, why }) = Config::from_lookup(env(&pairs)) else { panic!("accepted") };
    assert_eq!(name, RENAMED_WRITE_TURNS);
    assert!(why.contains(WRITE_TURNS), "{why}");
}

#[test]
fn missing_and_invalid_are_named() {
    for name in REQUIRED {
        let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != name).collect();
        assert_eq!(Config::from_lookup(env(&pairs)), Err(ConfigError::Missing(name)));
    }
    let mut pairs = BASE.to_vec();
    pairs.push((SOLD_OUT_FLAG_MS, "soon"));
    assert!(matches!(Config::from_lookup(env(&pairs)), Err(ConfigError::Invalid { name: SOLD_OUT_FLAG_MS, .. })));
    let mut pairs = BASE.to_vec();
    pairs.push((KEY_PREFIX, "{bad}"));
    assert!(matches!(Config::from_lookup(env(&pairs)), Err(ConfigError::Invalid { name: KEY_PREFIX, .. })));
    let mut pairs = BASE.to_vec();
    pairs.push((FAULT_DROP_MESSAGE_PERCENT, "101"));
    assert!(Config::from_lookup(env(&pairs)).is_err());
    let mut pairs = BASE.to_vec();
    pairs.push((ORDER_RETENTION_SECONDS, "60"));
    assert!(matches!(
        Config::from_lookup(env(&pairs)),
        Err(ConfigError::Invalid { name: ORDER_RETENTION_SECONDS, .. })
    ));
}
