//! Every script's reply, decoded strictly in one place: a reply of an unexpected shape or code is
//! an error naming the script and what came back, never a default.
//!
//! The one reply convention: a script answers `{code, values…}`, a code naming the outcome and
//! then that outcome's values, as many as its header lists for that code (integers; relog's flags
//! are a string). The one exception is the Try's accepting path: `deduct.lua` answers the stock
//! left as a bare integer, the hot path's cheapest reply.

use std::time::Duration;

use redis::Value;

use super::codec::state_of;
use super::keys::secs;
use crate::ports::{DeductOutcome, InfraError, InfraResult, MoveBack, MoveIn, MoveOut, Rebuild, Released, ShardLevel};

fn unexpected(script: &'static str, v: &Value) -> InfraError {
    InfraError::new(script, format!("unexpected reply {v:?}"))
}

/// A `{code, values…}` reply: its code and its values as they came.
fn parts<'a>(script: &'static str, v: &'a Value) -> InfraResult<(&'a str, &'a [Value])> {
    let Value::Array(items) = v else { return Err(unexpected(script, v)) };
    let code = match items.first() {
        Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
        Some(Value::SimpleString(s)) => Some(s.as_str()),
        _ => None,
    };
    code.map(|c| (c, &items[1..])).ok_or_else(|| unexpected(script, v))
}

/// A `{code, n…}` reply whose values are all integers.
fn coded<'a>(script: &'static str, v: &'a Value) -> InfraResult<(&'a str, Vec<i64>)> {
    let (code, values) = parts(script, v)?;
    let ints = values.iter().map(|x| if let Value::Int(n) = x { Some(*n) } else { None }).collect::<Option<Vec<_>>>();
    ints.map(|n| (code, n)).ok_or_else(|| unexpected(script, v))
}

/// `{"BUSY"}` from release.lua, settle.lua or intent.lua: the collection's cache shards are being
/// raised; `{"LAYOUT"}` from those and the shard move scripts: the caller routes by a cache shard
/// count raised since. Nothing changed either way: a busy error (503 `SERVICE_UNAVAILABLE`, or
/// a message retried).
pub(super) fn in_layout(script: &'static str, v: &Value) -> InfraResult<()> {
    match parts(script, v) {
        Ok(("BUSY", [])) => Err(InfraError::busy(script, "the collection's cache shards are being raised; retry")),
        Ok(("LAYOUT", [])) => Err(InfraError::busy(
            script,
            "routed by a cache shard count raised since (this instance reads it again within 10 s); retry",
        )),
        _ => Ok(()),
    }
}

/// `{code, n}` with this code: the count (settle, trim, adopt).
pub(super) fn count(script: &'static str, code: &str, v: Value) -> InfraResult<u32> {
    match coded(script, &v)? {
        (c, n)
            if c == code
                && let [n] = n[..] =>
        {
            u32::try_from(n).map_err(|_| unexpected(script, &v))
        }
        _ => Err(unexpected(script, &v)),
    }
}

/// `{yes}` or `{no}`: which of two outcomes (intent, prune, turn).
pub(super) fn either(script: &'static str, yes: &str, no: &str, v: Value) -> InfraResult<bool> {
    match coded(script, &v)? {
        (c, n) if n.is_empty() && c == yes => Ok(true),
        (c, n) if n.is_empty() && c == no => Ok(false),
        _ => Err(unexpected(script, &v)),
    }
}

/// `adopt.lua`: the buyers written, or `None` when the shard is not fenced for the raise.
pub(super) fn adopt(v: Value) -> InfraResult<Option<u32>> {
    const S: &str = "redis adopt.lua";
    if matches!(parts(S, &v)?, ("DONE", [])) {
        return Ok(None);
    }
    count(S, "ADOPTED", v).map(Some)
}

/// `deduct.lua`: the stock left when taken now (a whole second of acceptance), or a refusal.
pub(super) fn deduct(v: Value, now_ms: i64) -> InfraResult<DeductOutcome> {
    const S: &str = "redis deduct.lua";
    if let Value::Int(left) = v {
        return Ok(DeductOutcome::Accepted { stock_left: left, accepted_at_ms: secs(now_ms) * 1000 });
    }
    let (code, n) = coded(S, &v)?;
    Ok(match (code, &n[..]) {
        ("CANCELLED", []) => DeductOutcome::Cancelled,
        ("MISMATCH", []) => DeductOutcome::Mismatch,
        ("NOCACHE", []) => DeductOutcome::NoCache,
        ("SOLDOUT", []) => DeductOutcome::SoldOut,
        ("INSUFFICIENT", &[a]) => DeductOutcome::Insufficient { available: a },
        ("LIMIT", &[held]) => DeductOutcome::LimitExceeded { held },
        ("BUDGET", &[ms]) if ms >= 0 => DeductOutcome::OverBudget { wait: Duration::from_millis(ms.max(1) as u64) },
        ("REPLAY_STALE", &[at]) => DeductOutcome::ReplayStale { accepted_at_ms: at * 1000 },
        (other, &[at]) => match other.strip_prefix("REPLAY_").map(str::as_bytes) {
            Some(&[b @ (b'P' | b'S' | b'F')]) if let Some(state) = state_of(b) => {
                DeductOutcome::Replay { state, accepted_at_ms: at * 1000 }
            }
            _ => return Err(unexpected(S, &v)),
        },
        _ => return Err(unexpected(S, &v)),
    })
}

/// `release.lua`.
pub(super) fn release(v: Value) -> InfraResult<Released> {
    const S: &str = "redis release.lua";
    in_layout(S, &v)?;
    let (code, n) = coded(S, &v)?;
    Ok(match (code, &n[..]) {
        ("RETURNED", &[q]) => Released::Returned(u32::try_from(q).map_err(|_| unexpected(S, &v))?),
        ("ALREADY", []) => Released::Already,
        ("FAILED", []) => Released::WasFailed,
        ("UNLOGGED", []) => Released::Unlogged,
        ("ABSENT", []) => Released::Absent,
        _ => return Err(unexpected(S, &v)),
    })
}

/// `rebuild.lua`.
pub(super) fn rebuild(v: Value) -> InfraResult<Rebuild> {
    const S: &str = "redis rebuild.lua";
    let (code, n) = coded(S, &v)?;
    Ok(match (code, &n[..]) {
        ("SET", &[s]) => Rebuild::Set(s),
        ("LIVE", &[s]) => Rebuild::Live(s),
        ("BUSY", []) => Rebuild::Busy,
        ("RACE", []) => Rebuild::Race,
        _ => return Err(unexpected(S, &v)),
    })
}

/// `intent.lua`: whether the intent was logged (false: nothing to give back).
pub(super) fn intent(v: Value) -> InfraResult<bool> {
    in_layout("redis intent.lua", &v)?;
    either("redis intent.lua", "LOGGED", "CLOSED", v)
}

/// `relog.lua`: a flag per order, exactly `n` of them.
pub(super) fn relog(v: Value, n: usize) -> InfraResult<Vec<bool>> {
    const S: &str = "redis relog.lua";
    let flags = match parts(S, &v)? {
        ("RELOGGED", [Value::BulkString(f)]) if f.len() == n && f.iter().all(|b| matches!(b, b'0' | b'1')) => f,
        _ => return Err(unexpected(S, &v)),
    };
    Ok(flags.iter().map(|&f| f == b'1').collect())
}

/// `snapshot.lua`: (stock if any, version, open slices, bucket count).
pub(super) fn snapshot(v: Value) -> InfraResult<(Option<i64>, i64, i64, u32)> {
    const S: &str = "redis snapshot.lua";
    let (code, n) = coded(S, &v)?;
    let (stock, version, open, nb) = match (code, &n[..]) {
        ("CACHED", &[stock, version, open, nb]) => (Some(stock), version, open, nb),
        ("MISSING", &[version, open, nb]) => (None, version, open, nb),
        _ => return Err(unexpected(S, &v)),
    };
    Ok((stock, version, open, u32::try_from(nb).map_err(|_| unexpected(S, &v))?))
}

/// `budget.lua`: `None` within the budget, else the milliseconds to wait (at least 1).
pub(super) fn budget(v: Value) -> InfraResult<Option<u64>> {
    const S: &str = "redis budget.lua";
    match coded(S, &v)? {
        ("WITHIN", n) if n.is_empty() => Ok(None),
        ("SPENT", n)
            if let [ms] = n[..]
                && ms >= 0 =>
        {
            Ok(Some(ms.max(1) as u64))
        }
        _ => Err(unexpected(S, &v)),
    }
}

/// `move_out.lua` taking units.
pub(super) fn move_out(v: Value) -> InfraResult<MoveOut> {
    in_layout("redis move_out.lua", &v)?;
    const S: &str = "redis move_out.lua";
    match coded(S, &v)? {
        ("OUT", n)
            if let [u] = n[..]
                && u > 0 =>
        {
            Ok(MoveOut::Taken(u))
        }
        ("SHORT", n) if let [s] = n[..] => Ok(MoveOut::Short(s)),
        ("NOCACHE", n) if n.is_empty() => Ok(MoveOut::NoCache),
        _ => Err(unexpected(S, &v)),
    }
}

/// `move_out.lua` finishing (`done`: true if the record was there) a move.
pub(super) fn move_done(v: Value) -> InfraResult<bool> {
    in_layout("redis move_out.lua", &v)?;
    either("redis move_out.lua done", "DONE", "ABSENT", v)
}

/// `move_out.lua` calling a move off.
pub(super) fn move_back(v: Value) -> InfraResult<MoveBack> {
    in_layout("redis move_out.lua", &v)?;
    const S: &str = "redis move_out.lua back";
    match coded(S, &v)? {
        ("BACK", n)
            if let [u] = n[..]
                && u > 0 =>
        {
            Ok(MoveBack::Returned(u))
        }
        ("ABSENT", n) if n.is_empty() => Ok(MoveBack::Absent),
        ("FORGOTTEN", n) if n.is_empty() => Ok(MoveBack::Forgotten),
        _ => Err(unexpected(S, &v)),
    }
}

/// `shard_level.lua`.
pub(super) fn shard_level(v: Value) -> InfraResult<ShardLevel> {
    const S: &str = "redis shard_level.lua";
    match coded(S, &v)? {
        ("LEVEL", n)
            if let [stock, mo] = n[..]
                && mo >= 0 =>
        {
            Ok(ShardLevel { stock: Some(stock), moves_out: mo })
        }
        ("NOCACHE", n)
            if let [mo] = n[..]
                && mo >= 0 =>
        {
            Ok(ShardLevel { stock: None, moves_out: mo })
        }
        _ => Err(unexpected(S, &v)),
    }
}

/// `move_in.lua`.
pub(super) fn move_in(v: Value) -> InfraResult<MoveIn> {
    in_layout("redis move_in.lua", &v)?;
    const S: &str = "redis move_in.lua";
    match coded(S, &v)? {
        ("IN", n) if n.len() == 1 => Ok(MoveIn::Added),
        ("ALREADY", n) if n.is_empty() => Ok(MoveIn::Already),
        ("NOCACHE", n) if n.is_empty() => Ok(MoveIn::NoCache),
        _ => Err(unexpected(S, &v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::CacheState;

    #[test]
    fn shard_move_replies_decode_strictly() {
        assert_eq!(move_out(r("OUT", &[3])).unwrap(), MoveOut::Taken(3));
        assert_eq!(move_out(r("SHORT", &[0])).unwrap(), MoveOut::Short(0));
        assert_eq!(move_out(r("NOCACHE", &[])).unwrap(), MoveOut::NoCache);
        assert!(move_out(r("OUT", &[0])).is_err(), "a move takes something");
        assert!(move_out(r("OUT", &[])).is_err());
        assert!(move_done(r("DONE", &[])).unwrap());
        assert!(!move_done(r("ABSENT", &[])).unwrap());
        assert_eq!(move_back(r("BACK", &[2])).unwrap(), MoveBack::Returned(2));
        assert_eq!(move_back(r("ABSENT", &[])).unwrap(), MoveBack::Absent);
        assert_eq!(move_back(r("FORGOTTEN", &[])).unwrap(), MoveBack::Forgotten);
        assert!(move_back(r("BACK", &[0])).is_err());
        assert_eq!(move_in(r("IN", &[9])).unwrap(), MoveIn::Added);
        assert_eq!(move_in(r("ALREADY", &[])).unwrap(), MoveIn::Already);
        assert_eq!(move_in(r("NOCACHE", &[])).unwrap(), MoveIn::NoCache);
        assert!(move_in(r("IN", &[])).is_err());
        assert_eq!(shard_level(r("LEVEL", &[4, 2])).unwrap(), ShardLevel { stock: Some(4), moves_out: 2 });
        assert_eq!(shard_level(r("NOCACHE", &[1])).unwrap(), ShardLevel { stock: None, moves_out: 1 });
        assert!(shard_level(r("LEVEL", &[4])).is_err());
        assert!(shard_level(r("NOCACHE", &[])).is_err());
    }

    /// `{code, values…}` with integer values.
    fn r(code: &str, values: &[i64]) -> Value {
        let mut items = vec![Value::BulkString(code.as_bytes().to_vec())];
        items.extend(values.iter().copied().map(Value::Int));
        Value::Array(items)
    }

    fn relogged(flags: &[u8]) -> Value {
        Value::Array(vec![Value::BulkString(b"RELOGGED".to_vec()), Value::BulkString(flags.to_vec())])
    }

    #[test]
    fn every_code_of_every_script_decodes_to_its_outcome() {
        assert_eq!(
            deduct(Value::Int(7), 12_345).unwrap(),
            DeductOutcome::Accepted { stock_left: 7, accepted_at_ms: 12_000 }
        );
        assert_eq!(
            deduct(r("REPLAY_P", &[9]), 0).unwrap(),
            DeductOutcome::Replay { state: CacheState::Pending, accepted_at_ms: 9_000 }
        );
        assert_eq!(
            deduct(r("REPLAY_S", &[8]), 0).unwrap(),
            DeductOutcome::Replay { state: CacheState::Durable, accepted_at_ms: 8_000 }
        );
        assert_eq!(deduct(r("REPLAY_STALE", &[7]), 0).unwrap(), DeductOutcome::ReplayStale { accepted_at_ms: 7_000 });
        assert_eq!(deduct(r("INSUFFICIENT", &[2]), 0).unwrap(), DeductOutcome::Insufficient { available: 2 });
        assert_eq!(deduct(r("LIMIT", &[4]), 0).unwrap(), DeductOutcome::LimitExceeded { held: 4 });
        let over = |ms| DeductOutcome::OverBudget { wait: Duration::from_millis(ms) };
        assert_eq!(deduct(r("BUDGET", &[1_500]), 0).unwrap(), over(1_500));
        assert_eq!(deduct(r("BUDGET", &[0]), 0).unwrap(), over(1), "a window ending now still waits");
        for (code, want) in [
            ("CANCELLED", DeductOutcome::Cancelled),
            ("MISMATCH", DeductOutcome::Mismatch),
            ("NOCACHE", DeductOutcome::NoCache),
            ("SOLDOUT", DeductOutcome::SoldOut),
        ] {
            assert_eq!(deduct(r(code, &[]), 0).unwrap(), want, "{code}");
        }
        assert_eq!(release(r("RETURNED", &[3])).unwrap(), Released::Returned(3));
        for (code, want) in [
            ("ALREADY", Released::Already),
            ("FAILED", Released::WasFailed),
            ("UNLOGGED", Released::Unlogged),
            ("ABSENT", Released::Absent),
        ] {
            assert_eq!(release(r(code, &[])).unwrap(), want, "{code}");
        }
        assert_eq!(rebuild(r("SET", &[5])).unwrap(), Rebuild::Set(5));
        assert_eq!(rebuild(r("LIVE", &[5])).unwrap(), Rebuild::Live(5));
        assert_eq!(rebuild(r("BUSY", &[])).unwrap(), Rebuild::Busy);
        assert_eq!(rebuild(r("RACE", &[])).unwrap(), Rebuild::Race);
        assert_eq!(count("s", "SETTLED", r("SETTLED", &[4])).unwrap(), 4);
        for e in [release(r("BUSY", &[])).unwrap_err(), intent(r("BUSY", &[])).unwrap_err()] {
            assert!(e.message.contains("being raised") && e.busy, "{e:?}");
        }
        assert!(in_layout("s", &r("BUSY", &[])).is_err());
        assert_eq!(adopt(r("ADOPTED", &[3])).unwrap(), Some(3));
        assert_eq!(adopt(r("DONE", &[])).unwrap(), None);
        assert!(adopt(r("BUSY", &[])).is_err());
        assert!(in_layout("s", &r("SETTLED", &[0])).is_ok());
        assert!(in_layout("s", &r("BUSY", &[1])).is_ok(), "only the bare code");
        for e in [
            release(r("LAYOUT", &[])).unwrap_err(),
            intent(r("LAYOUT", &[])).unwrap_err(),
            move_out(r("LAYOUT", &[])).unwrap_err(),
            move_done(r("LAYOUT", &[])).unwrap_err(),
            move_back(r("LAYOUT", &[])).unwrap_err(),
            move_in(r("LAYOUT", &[])).unwrap_err(),
        ] {
            assert!(e.message.contains("raised since") && e.busy, "{e:?}");
        }
        assert!(intent(r("LOGGED", &[])).unwrap());
        assert!(!intent(r("CLOSED", &[])).unwrap());
        assert!(either("t", "TAKEN", "HELD", r("TAKEN", &[])).unwrap());
        assert!(!either("t", "TAKEN", "HELD", r("HELD", &[])).unwrap());
        assert_eq!(relog(relogged(b"101"), 3).unwrap(), vec![true, false, true]);
        assert_eq!(snapshot(r("CACHED", &[5, 2, 0, 16])).unwrap(), (Some(5), 2, 0, 16));
        assert_eq!(snapshot(r("MISSING", &[3, 1, 0])).unwrap(), (None, 3, 1, 0));
        assert_eq!(budget(r("WITHIN", &[])).unwrap(), None);
        let simple = Value::Array(vec![Value::SimpleString("WITHIN".into())]);
        assert_eq!(budget(simple).unwrap(), None, "a status reply's code too (RESP3)");
        assert_eq!(budget(r("SPENT", &[250])).unwrap(), Some(250));
        assert_eq!(budget(r("SPENT", &[0])).unwrap(), Some(1), "a window ending now still waits");
    }

    #[test]
    fn an_unexpected_reply_is_an_error_naming_the_script() {
        for e in [
            deduct(r("WHAT", &[]), 0).unwrap_err(),
            deduct(r("REPLAY_X", &[0]), 0).unwrap_err(),
            deduct(r("REPLAY_C", &[0]), 0).unwrap_err(),
            deduct(r("REPLAY_P", &[]), 0).unwrap_err(),
            deduct(r("SOLDOUT", &[0]), 0).unwrap_err(),
            deduct(r("BUDGET", &[-1]), 0).unwrap_err(),
            deduct(r("BUDGET", &[]), 0).unwrap_err(),
            deduct(Value::Array(vec![]), 0).unwrap_err(),
            deduct(Value::Array(vec![Value::Int(1)]), 0).unwrap_err(),
            deduct(Value::Nil, 0).unwrap_err(),
            release(r("RETURNED", &[-1])).unwrap_err(),
            release(r("GONE", &[])).unwrap_err(),
            release(r("ALREADY", &[0])).unwrap_err(),
            rebuild(Value::Int(1)).unwrap_err(),
            rebuild(r("SET", &[])).unwrap_err(),
            count("redis settle.lua", "SETTLED", r("TRIMMED", &[1])).unwrap_err(),
            count("redis settle.lua", "SETTLED", r("SETTLED", &[1, 0])).unwrap_err(),
            count("redis settle.lua", "SETTLED", r("SETTLED", &[-1])).unwrap_err(),
            intent(r("INTENT", &[1])).unwrap_err(),
            intent(r("LOGGED", &[1])).unwrap_err(),
            either("redis turn.lua", "TAKEN", "HELD", r("GIVEN", &[])).unwrap_err(),
            either("redis turn.lua", "TAKEN", "HELD", r("HELD", &[0])).unwrap_err(),
            relog(relogged(b"10"), 3).unwrap_err(),
            relog(relogged(b"1x1"), 3).unwrap_err(),
            relog(Value::BulkString(b"101".to_vec()), 3).unwrap_err(),
            relog(r("RELOGGED", &[1]), 1).unwrap_err(),
            snapshot(r("CACHED", &[5, 2, 0])).unwrap_err(),
            snapshot(r("MISSING", &[5, 2, 0, 16])).unwrap_err(),
            snapshot(r("MISSING", &[5, 2, -1])).unwrap_err(),
            budget(r("SPENT", &[-1])).unwrap_err(),
            budget(r("SPENT", &[])).unwrap_err(),
            budget(r("WITHIN", &[0])).unwrap_err(),
            budget(Value::Int(0)).unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(text.contains("redis"), "{text}");
            assert!(text.contains("unexpected reply"), "{text}");
        }
    }
}
