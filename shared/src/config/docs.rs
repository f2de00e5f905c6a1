//! The configuration's reference tables, generated from the config itself: every variable with
//! its default (read from a [`Config`] parsed with nothing but the required variables set) and
//! its meaning, and the figures the timing defaults imply. `docs/CONFIGURATION.md` holds them
//! between `BEGIN GENERATED` / `END GENERATED` markers; a unit test fails when they differ, and
//! `FLASHSTOCK_UPDATE_DOCS=1 cargo test -p flashstock config::docs` rewrites them.

use std::time::Duration;

use super::*;
use crate::domain::{CLOCK_SKEW, timing::QUIET_STRETCH_FLOOR};

/// Each variable and what it means (its default is read from the parsed config).
pub const MEANINGS: [(&str, &str); 27] = [
    (
        REDIS_URL,
        "`rediss://` (TLS), with credentials for AUTH; how local runs and tests configure Redis. Plaintext `redis://` and `#insecure` (unverified TLS) URLs are refused unless `FLASHSTOCK_ALLOW_INSECURE_REDIS` is set",
    ),
    (
        REDIS_SECRET_ARN,
        "what deployed functions use instead of the URL: a Secrets Manager secret read once at init, JSON `{\"username\", \"password\"}` (for the endpoint below, over TLS) or `{\"url\"}`, under the same URL rules ([`secrets.rs`](../shared/src/adapters/secrets.rs))",
    ),
    (REDIS_ENDPOINT, "`host:port` of that Redis (required when the secret holds credentials, not a `url`)"),
    (
        ALLOW_INSECURE_REDIS,
        "`1`: accept plaintext and `#insecure` Redis URLs. Local only: the local stack sets it, a deployment never does (the template test checks). Unverified TLS also needs the `flashstock` crate's cargo feature `insecure-tls-for-tests`, which only `infra/local` enables; the Lambda bootstraps are built without it",
    ),
    (TABLE, "DynamoDB table"),
    (RESERVATION_QUEUE_URL, "reservation queue"),
    (TIMEOUT_QUEUE_URL, "payment-window timer queue"),
    (REDIS_CLUSTER, "the endpoint is a Redis Cluster (ElastiCache Serverless is): follow its slots"),
    (KEY_PREFIX, "Redis key prefix"),
    (
        ORDER_RETENTION_SECONDS,
        "how long Redis remembers an order id (at least 3600: a replay after it takes a unit again, which persist gives back when it meets the durable record)",
    ),
    (
        SOLD_OUT_FLAG_MS,
        "per-instance sold-out flag lifetime: while up, a Try of an unknown order id answers 409 SOLD_OUT without touching the buyer's cache shard (a known one still gets its original answer)",
    ),
    (
        RECONCILE_THRESHOLD_MS,
        "age (since last logged) at which an unsettled deduction is checked against DynamoDB; one with no record has its message re-sent (heal forward) and is logged again a visibility timeout's worth ahead, so it is looked at next one visibility timeout later ([first re-send](#derived-timings))",
    ),
    (
        RECONCILE_GIVE_UP_MS,
        "age (since accepted) after which reconciliation gives up an order DynamoDB has no record of: tombstone, stock back, CANCELLED with reason `LOST`. It re-sends such an order only before the [quiet stretch](#derived-timings) that ends at the give-up, and in the stretch does neither: every redelivery of the last message it re-sent ends before the give-up, and two runs alive at once never decide one order both ways",
    ),
    (
        RECONCILE_BUDGET_MS,
        "a reconciliation run starts no collection after this long (but always its first); the rest wait for the next run",
    ),
    (
        RESERVATION_VISIBILITY_SECONDS,
        "the reservation queue's visibility timeout as `template.yaml` deploys it: read for the timing check, and it spaces reconciliation's re-sends of one order",
    ),
    (RESERVATION_MAX_RECEIVES, "the reservation queue's `maxReceiveCount` (timing check)"),
    (
        PERSIST_TIMEOUT_SECONDS,
        "the persist function's timeout (timing check; persist's [turn budget](#derived-timings))",
    ),
    (PERSIST_BATCH_WINDOW_SECONDS, "persist's batching window (timing check)"),
    (RECONCILE_INTERVAL_SECONDS, "reconciliation's schedule interval (timing check)"),
    (RECONCILE_TIMEOUT_SECONDS, "the reconcile function's timeout (timing check)"),
    (
        CANCEL_TIMEOUT_SECONDS,
        "the cancel function's timeout (timing check: the threshold outlasts a cancel still running)",
    ),
    (
        WRITE_TURNS,
        "a stock bucket's write turn: every DynamoDB transaction on a bucket item (persist's chunks, moves, tallies, cancels of RESERVED orders, one or a timer batch) takes it, since DynamoDB cancels concurrent transactions on one item (a confirm writes no bucket and takes none). Persist waits for turns up to its [turn budget](#derived-timings) per invocation, cancel and the tally up to 2 s per wait, then each transacts anyway; confirm and cancel back off between conflict retries, and spend 6 s in all at most: past that they answer 503 (retryable), inside the API function's 10 s timeout. `off` disables the turns for all of them: they transact at once and retry the conflicts",
    ),
    (
        BUYER_BUDGET,
        "Tries and cancels one buyer may make on one collection per window (0…255), counted in Redis with the buyer's records; past it 429 `RATE_LIMITED`. `0` = off",
    ),
    (BUYER_BUDGET_WINDOW_SECONDS, "the budget's window (1…3600)"),
    (DEFAULT_PER_USER_LIMIT, "the per-user limit of a collection created without `perUserLimit`; `0` = none"),
    (
        FAULT_DROP_MESSAGE_PERCENT,
        "**fault switch** for tests and the demo: this share of accepted Tries loses its message after the Redis deduction. Environment only — no request can turn it on",
    ),
    (EMIT_EMF, "print CloudWatch embedded-metric-format lines on stdout"),
];

/// A variable's default as the table shows it, read from `c` (parsed with only the required
/// variables set).
fn default_shown(name: &str, c: &Config) -> String {
    let on = |b: bool| if b { "on" } else { "off" }.to_owned();
    let n = |v: i128| format!("`{v}`");
    let ms = |d: Duration| n(d.as_millis() as i128);
    let s = |d: Duration| n(i128::from(d.as_secs()));
    let t = &c.timing;
    match name {
        REDIS_URL => "required without a secret".into(),
        REDIS_SECRET_ARN => "—".into(),
        REDIS_ENDPOINT => "with the secret".into(),
        TABLE | RESERVATION_QUEUE_URL | TIMEOUT_QUEUE_URL => "required".into(),
        ALLOW_INSECURE_REDIS => on(c.allow_insecure_redis),
        REDIS_CLUSTER => on(c.redis_cluster),
        KEY_PREFIX => format!("`{}`", c.key_prefix),
        ORDER_RETENTION_SECONDS => n(i128::from(c.order_retention_seconds)),
        SOLD_OUT_FLAG_MS => ms(c.sold_out_flag),
        RECONCILE_THRESHOLD_MS => ms(t.threshold),
        RECONCILE_GIVE_UP_MS => ms(t.give_up),
        RECONCILE_BUDGET_MS => ms(t.reconcile_budget),
        RESERVATION_VISIBILITY_SECONDS => s(t.visibility_timeout),
        RESERVATION_MAX_RECEIVES => n(i128::from(t.max_receive_count)),
        PERSIST_TIMEOUT_SECONDS => s(t.persist_timeout),
        PERSIST_BATCH_WINDOW_SECONDS => s(t.batch_window),
        RECONCILE_INTERVAL_SECONDS => s(t.reconcile_interval),
        RECONCILE_TIMEOUT_SECONDS => s(t.reconcile_timeout),
        CANCEL_TIMEOUT_SECONDS => s(t.cancel_timeout),
        WRITE_TURNS => on(c.write_turns),
        BUYER_BUDGET => n(c.buyer_budget.map_or(0, |b| i128::from(b.requests))),
        BUYER_BUDGET_WINDOW_SECONDS => s(c.buyer_budget.map_or(Duration::ZERO, |b| b.window)),
        DEFAULT_PER_USER_LIMIT => n(c.default_per_user_limit.map_or(0, i128::from)),
        FAULT_DROP_MESSAGE_PERCENT => n(i128::from(c.fault_drop_message_percent)),
        EMIT_EMF => on(c.emit_emf),
        _ => "?".into(),
    }
}

/// The config every default is read from: the required variables, nothing else.
fn defaults() -> Result<Config, ConfigError> {
    Config::from_lookup(|k| match k {
        REDIS_URL => Some("rediss://cache:6379".into()),
        TABLE | RESERVATION_QUEUE_URL | TIMEOUT_QUEUE_URL => Some("x".into()),
        _ => None,
    })
}

/// The variables table.
pub fn variables_table() -> Result<String, ConfigError> {
    let c = defaults()?;
    let mut out = String::from("| variable | default | meaning |\n| --- | --- | --- |\n");
    for (name, meaning) in MEANINGS {
        out.push_str(&format!("| `{name}` | {} | {meaning} |\n", default_shown(name, &c)));
    }
    Ok(out)
}

/// `1,361 s`.
fn secs(d: Duration) -> String {
    let s = d.as_secs().to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    format!("{out} s")
}

/// The figures the timing defaults imply.
pub fn derived_table() -> Result<String, ConfigError> {
    let t = defaults()?.timing;
    let quiet = t.quiet_stretch();
    let rows = [
        (
            "first re-send of a lost message, after it was logged",
            secs(t.threshold + t.reconcile_interval),
            "threshold + schedule interval (within the 2-minute bound of [bounded healing](DESIGN.md#guarantees))",
        ),
        (
            "last delivery of a message",
            secs(t.last_delivery()),
            "batching window + `maxReceiveCount` × visibility timeout",
        ),
        (
            "quiet stretch before the give-up",
            secs(quiet),
            &*format!("max({}, last delivery + `CLOCK_SKEW` {})", secs(QUIET_STRETCH_FLOOR), secs(CLOCK_SKEW)),
        ),
        ("re-sends stop, after acceptance", secs(t.give_up.saturating_sub(quiet)), "give-up − quiet stretch"),
        (
            "replay cutoff, after acceptance (older: 503 `RESERVATION_UNCONFIRMED`)",
            secs(t.give_up.saturating_sub(quiet + CLOCK_SKEW)),
            "give-up − quiet stretch − `CLOCK_SKEW`",
        ),
        (
            "latest second re-send, after acceptance",
            secs(t.second_resend_by()),
            "threshold + 2 × (schedule interval + reconcile timeout) + visibility timeout",
        ),
        ("minimum give-up", secs(t.second_resend_by() + quiet), "latest second re-send + quiet stretch"),
        ("persist's turn budget, per invocation", secs(t.persist_turn_budget()), "persist timeout × 2 / 5"),
    ];
    let mut out = String::from("| name | value | formula |\n| --- | --- | --- |\n");
    for (name, value, formula) in rows {
        out.push_str(&format!("| {name} | {value} | {formula} |\n"));
    }
    Ok(out)
}

/// `doc` with the text between the markers of `section` replaced by `body`; `None` when the
/// markers are missing.
pub fn splice(doc: &str, section: &str, body: &str) -> Option<String> {
    let begin = format!("<!-- BEGIN GENERATED: {section} -->\n");
    let end = format!("<!-- END GENERATED: {section} -->");
    let a = doc.find(&begin)? + begin.len();
    let b = a + doc[a..].find(&end)?;
    Some(format!("{}{body}{}", &doc[..a], &doc[b..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_has_a_row() {
        let mut names: Vec<&str> = MEANINGS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MEANINGS.len(), "a variable listed twice");
        let c = defaults().unwrap();
        for (name, _) in MEANINGS {
            assert_ne!(default_shown(name, &c), "?", "{name} has no default shown");
        }
        for (name, _) in TIMING_DEFAULTS {
            assert!(names.contains(&name), "{name} missing");
        }
    }

    #[test]
    fn the_figures_read_as_the_docs_write_them() {
        assert_eq!(secs(Duration::from_secs(1_361)), "1,361 s");
        assert_eq!(secs(Duration::from_secs(906)), "906 s");
        assert_eq!(secs(Duration::from_secs(1_234_567)), "1,234,567 s");
        let d = derived_table().unwrap();
        assert!(d.contains("| 906 s |") && d.contains("| 1,361 s |") && d.contains("| 589 s |"), "{d}");
        assert_eq!(
            splice("a\n<!-- BEGIN GENERATED: x -->\nold\n<!-- END GENERATED: x -->\nb", "x", "new\n").unwrap(),
            "a\n<!-- BEGIN GENERATED: x -->\nnew\n<!-- END GENERATED: x -->\nb"
        );
        assert_eq!(splice("no markers", "x", ""), None);
    }

    /// docs/CONFIGURATION.md shows the defaults this code has (rewrite it with
    /// `FLASHSTOCK_UPDATE_DOCS=1`).
    #[test]
    fn the_configuration_doc_agrees_with_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIGURATION.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let mut want = doc.clone();
        for (section, body) in
            [("variables", variables_table().unwrap()), ("derived timings", derived_table().unwrap())]
        {
            want = splice(&want, section, &body).unwrap_or_else(|| panic!("markers of {section:?} missing"));
        }
        if std::env::var_os("FLASHSTOCK_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        } else {
            assert!(
                doc == want,
                "docs/CONFIGURATION.md disagrees with the defaults: run FLASHSTOCK_UPDATE_DOCS=1 cargo test -p flashstock config::docs"
            );
        }
    }
}
