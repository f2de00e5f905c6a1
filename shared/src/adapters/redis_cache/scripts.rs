//! The Lua scripts of `src/lua/`, compiled into the binary, each with [`STOCK_BIAS`] prepended
//! (its one definition); and the packed arguments of the two calls the benchmarks measure too.
//! `Script` runs EVALSHA and loads a script on NOSCRIPT.

use redis::Script;

use super::codec::{budget_record, buyer_bytes, e4, ident, order_bytes};
use super::keys::{Keys, bucket_of, secs, slice_of, user_bucket};
use crate::domain::buckets::home_shard;
use crate::domain::{CacheShard, OrderKey};
use crate::ports::DeductRequest;

/// What `:stock` holds above the units Redis may still sell: the Try takes before it looks, and
/// a take on a missing key (which Redis starts from 0) must land below 0. Larger than any qty.
pub const STOCK_BIAS: i64 = 1_000_000;

/// The `:stock` value for `units` (tests and benchmarks that set it directly).
pub fn stored_stock(units: i64) -> i64 {
    units + STOCK_BIAS
}

/// The helpers several scripts share (the record format), prepended to those that read records.
const RECORDS: &str = include_str!("../../lua/records.lua");

/// A script's full source: the bias, the shared helpers where it needs them, its body.
fn source(body: &str, with_records: bool) -> String {
    format!("local STOCK_BIAS = {STOCK_BIAS}\n{}{body}", if with_records { RECORDS } else { "" })
}

/// The Try script's source, as the adapter runs it.
pub fn deduct_script() -> String {
    source(include_str!("../../lua/deduct.lua"), false)
}

/// The release script's source, as the adapter runs it.
pub fn release_script() -> String {
    source(include_str!("../../lua/release.lua"), true)
}

pub(super) struct Scripts {
    pub deduct: Script,
    pub settle: Script,
    pub relog: Script,
    pub intent: Script,
    pub release: Script,
    pub snapshot: Script,
    pub rebuild: Script,
    pub trim: Script,
    pub prune: Script,
    pub budget: Script,
    pub turn: Script,
    pub move_out: Script,
    pub move_in: Script,
    pub shard_level: Script,
    pub fence: Script,
    pub adopt: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let s = |body: &str, with_records: bool| Script::new(&source(body, with_records));
        Self {
            deduct: Script::new(&deduct_script()),
            settle: s(include_str!("../../lua/settle.lua"), true),
            relog: s(include_str!("../../lua/relog.lua"), true),
            intent: s(include_str!("../../lua/intent.lua"), true),
            release: Script::new(&release_script()),
            snapshot: s(include_str!("../../lua/snapshot.lua"), false),
            rebuild: s(include_str!("../../lua/rebuild.lua"), false),
            trim: s(include_str!("../../lua/trim.lua"), true),
            prune: s(include_str!("../../lua/prune.lua"), false),
            budget: s(include_str!("../../lua/budget.lua"), false),
            turn: s(include_str!("../../lua/turn.lua"), false),
            move_out: s(include_str!("../../lua/move_out.lua"), false),
            move_in: s(include_str!("../../lua/move_in.lua"), false),
            shard_level: s(include_str!("../../lua/shard_level.lua"), false),
            fence: s(include_str!("../../lua/fence.lua"), false),
            adopt: s(include_str!("../../lua/adopt.lua"), true),
        }
    }
}

/// The Try script's keys and arguments, exactly as the adapter sends them (the benchmarks
/// measure the same call), on the buyer's cache shard, of `nb` buyer buckets.
pub fn deduct_call(prefix: &str, nb: u32, r: &DeductRequest<'_>) -> (Vec<String>, Vec<u8>) {
    let k = Keys::new(prefix, &r.key.collection, home_shard(&r.key.user, r.shards));
    let u = buyer_bytes(&r.key.user);
    let now = secs(r.now_ms);
    let slice = slice_of(r.now_ms);
    let mut rec = order_bytes(&r.key.order);
    rec.push(b'P');
    rec.push(r.quantity.min(255) as u8);
    rec.extend_from_slice(&e4(now));
    rec.extend_from_slice(&e4(now));
    let bucket = bucket_of(&u, nb);
    // A new buyer's value: with a budget, this window's budget record (the first request) first.
    let window = r.budget.map(|b| (b, b.window_at(r.now_ms)));
    let mut value = window.map_or_else(Vec::new, |(_, w)| budget_record(&w).to_vec());
    value.extend_from_slice(&rec);
    let mut a = vec![(u.len() - 1) as u8, value.len() as u8];
    a.extend_from_slice(&(bucket as u16).to_be_bytes());
    a.extend_from_slice(&u);
    a.extend_from_slice(&value);
    let (budget, wait) = window.map_or((0, 0), |(b, w)| (b.requests, w.left(r.now_ms).as_millis()));
    let tail = format!("{},{budget},{wait},{},{slice}", r.per_user_limit.unwrap_or(0), secs(r.stale_before_ms));
    a.extend_from_slice(tail.as_bytes());
    (vec![k.stock(r.shards), k.bucket(bucket), k.slice(slice), k.slices()], a)
}

/// The release script's keys and arguments, exactly as the adapter sends them, on cache shard
/// `at` of `nb` buyer buckets.
pub fn release_call(
    prefix: &str,
    at: CacheShard,
    nb: u32,
    order: &OrderKey,
    tombstone: bool,
    now_ms: i64,
) -> (Vec<String>, Vec<Vec<u8>>) {
    let k = Keys::new(prefix, &order.collection, at.index);
    let bucket = k.bucket(user_bucket(&order.user, nb));
    let args = vec![
        ident(order),
        secs(now_ms).to_string().into_bytes(),
        if tombstone { b"1".to_vec() } else { vec![] },
        at.count.max(1).to_string().into_bytes(),
    ];
    (vec![k.stock(at.count), k.meta(), bucket], args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_script_writes_the_bias_itself() {
        let bias = STOCK_BIAS.to_string();
        for src in [
            include_str!("../../lua/deduct.lua"),
            include_str!("../../lua/rebuild.lua"),
            include_str!("../../lua/snapshot.lua"),
        ] {
            assert!(!src.contains(&bias) && src.contains("STOCK_BIAS"), "{}", &src[..60]);
        }
        assert!(deduct_script().starts_with("local STOCK_BIAS = 1000000\n"));
        assert!(release_script().contains("local function"), "release reads records");
    }
}
