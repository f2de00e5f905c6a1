//! Every script's reply, decoded strictly in one place: a reply of an unexpected shape or code is
//! an error naming the script and what came back, never a default. Most scripts answer
//! `{code, a, b}`; the Try answers its stock left as a plain integer when it takes (the hot path's
//! cheapest reply), the budget and the write turn a number, relog a string of flags, snapshot its
//! five counters.

use redis::Value;

use super::codec::state_of;
use super::keys::secs;
use crate::ports::{DeductOutcome, InfraError, InfraResult, Rebuild, Released};

fn unexpected(script: &'static str, v: &Value) -> InfraError {
    InfraError::new(script, format!("unexpected reply {v:?}"))
}

/// A `{code, a, b}` reply.
pub(super) fn triple(script: &'static str, v: Value) -> InfraResult<(String, i64, i64)> {
    redis::from_redis_value::<(String, i64, i64)>(v.clone()).map_err(|_| unexpected(script, &v))
}

/// `{code, n, 0}` with this code: the count.
pub(super) fn count(script: &'static str, code: &str, v: Value) -> InfraResult<u32> {
    match triple(script, v.clone())? {
        (c, n, 0) if c == code => u32::try_from(n).map_err(|_| unexpected(script, &v)),
        _ => Err(unexpected(script, &v)),
    }
}

/// `deduct.lua`: the stock left when taken now (a whole second of acceptance), or a refusal.
pub(super) fn deduct(v: Value, now_ms: i64) -> InfraResult<DeductOutcome> {
    const S: &str = "redis deduct.lua";
    if let Value::Int(left) = v {
        return Ok(DeductOutcome::Accepted { stock_left: left, accepted_at_ms: secs(now_ms) * 1000 });
    }
    let (code, a, _) = triple(S, v.clone())?;
    Ok(match code.as_str() {
        "CANCELLED" => DeductOutcome::Cancelled,
        "MISMATCH" => DeductOutcome::Mismatch,
        "NOCACHE" => DeductOutcome::NoCache,
        "SOLDOUT" => DeductOutcome::SoldOut,
        "INSUFFICIENT" => DeductOutcome::Insufficient { available: a },
        "LIMIT" => DeductOutcome::LimitExceeded { held: a },
        "REPLAY_STALE" => DeductOutcome::ReplayStale { accepted_at_ms: a * 1000 },
        other => match other.strip_prefix("REPLAY_").map(str::as_bytes) {
            Some(&[b]) if let Some(state) = state_of(b) => DeductOutcome::Replay { state, accepted_at_ms: a * 1000 },
            _ => return Err(unexpected(S, &v)),
        },
    })
}

/// `release.lua`.
pub(super) fn release(v: Value) -> InfraResult<Released> {
    const S: &str = "redis release.lua";
    let (code, q, _) = triple(S, v.clone())?;
    Ok(match code.as_str() {
        "RETURNED" => Released::Returned(u32::try_from(q).map_err(|_| unexpected(S, &v))?),
        "ALREADY" => Released::Already,
        "FAILED" => Released::WasFailed,
        "UNLOGGED" => Released::Unlogged,
        "ABSENT" => Released::Absent,
        _ => return Err(unexpected(S, &v)),
    })
}

/// `rebuild.lua`.
pub(super) fn rebuild(v: Value) -> InfraResult<Rebuild> {
    const S: &str = "redis rebuild.lua";
    let (code, s, _) = triple(S, v.clone())?;
    Ok(match code.as_str() {
        "SET" => Rebuild::Set(s),
        "LIVE" => Rebuild::Live(s),
        "BUSY" => Rebuild::Busy,
        "RACE" => Rebuild::Race,
        _ => return Err(unexpected(S, &v)),
    })
}

/// `intent.lua`: whether the intent was logged (false: nothing to give back).
pub(super) fn intent(v: Value) -> InfraResult<bool> {
    const S: &str = "redis intent.lua";
    match count(S, "INTENT", v.clone())? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(unexpected(S, &v)),
    }
}

/// `relog.lua`: a flag per order, exactly `n` of them.
pub(super) fn relog(v: Value, n: usize) -> InfraResult<Vec<bool>> {
    const S: &str = "redis relog.lua";
    let flags: Vec<u8> = redis::from_redis_value(v.clone()).map_err(|_| unexpected(S, &v))?;
    if flags.len() != n || flags.iter().any(|f| !matches!(f, b'0' | b'1')) {
        return Err(unexpected(S, &v));
    }
    Ok(flags.into_iter().map(|f| f == b'1').collect())
}

/// `snapshot.lua`: (stock if any, version, open slices, bucket count).
pub(super) fn snapshot(v: Value) -> InfraResult<(Option<i64>, i64, i64, u32)> {
    const S: &str = "redis snapshot.lua";
    match redis::from_redis_value::<(i64, i64, i64, i64, u32)>(v.clone()) {
        Ok((has @ (0 | 1), stock, version, open, nb)) => Ok(((has == 1).then_some(stock), version, open, nb)),
        _ => Err(unexpected(S, &v)),
    }
}

/// `turn.lua`'s 0/1 answer.
pub(super) fn flag(script: &'static str, v: Value) -> InfraResult<bool> {
    match v {
        Value::Int(0) => Ok(false),
        Value::Int(1) => Ok(true),
        other => Err(unexpected(script, &other)),
    }
}

/// `budget.lua`: milliseconds to wait (0 = within the budget).
pub(super) fn budget(v: Value) -> InfraResult<u64> {
    match v {
        Value::Int(ms) if ms >= 0 => Ok(ms as u64),
        other => Err(unexpected("redis budget.lua", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::CacheState;

    fn t(code: &str, a: i64) -> Value {
        Value::Array(vec![Value::BulkString(code.as_bytes().to_vec()), Value::Int(a), Value::Int(0)])
    }

    #[test]
    fn every_known_reply_decodes() {
        assert_eq!(
            deduct(Value::Int(7), 12_345).unwrap(),
            DeductOutcome::Accepted { stock_left: 7, accepted_at_ms: 12_000 }
        );
        assert_eq!(
            deduct(t("REPLAY_P", 9), 0).unwrap(),
            DeductOutcome::Replay { state: CacheState::Pending, accepted_at_ms: 9_000 }
        );
        assert_eq!(deduct(t("INSUFFICIENT", 2), 0).unwrap(), DeductOutcome::Insufficient { available: 2 });
        assert_eq!(release(t("RETURNED", 3)).unwrap(), Released::Returned(3));
        assert_eq!(release(t("ABSENT", 0)).unwrap(), Released::Absent);
        assert_eq!(rebuild(t("RACE", 0)).unwrap(), Rebuild::Race);
        assert_eq!(count("s", "SETTLED", t("SETTLED", 4)).unwrap(), 4);
        assert!(intent(t("INTENT", 1)).unwrap());
        assert_eq!(relog(Value::BulkString(b"101".to_vec()), 3).unwrap(), vec![true, false, true]);
        let snap = Value::Array([1, 5, 2, 0, 16].map(Value::Int).to_vec());
        assert_eq!(snapshot(snap).unwrap(), (Some(5), 2, 0, 16));
        assert!(flag("t", Value::Int(1)).unwrap());
        assert_eq!(budget(Value::Int(250)).unwrap(), 250);
    }

    #[test]
    fn every_code_of_every_script_decodes_to_its_outcome() {
        assert_eq!(deduct(t("REPLAY_STALE", 7), 0).unwrap(), DeductOutcome::ReplayStale { accepted_at_ms: 7_000 });
        assert_eq!(
            deduct(t("REPLAY_S", 8), 0).unwrap(),
            DeductOutcome::Replay { state: CacheState::Durable, accepted_at_ms: 8_000 }
        );
        for (code, want) in [
            ("CANCELLED", DeductOutcome::Cancelled),
            ("MISMATCH", DeductOutcome::Mismatch),
            ("NOCACHE", DeductOutcome::NoCache),
            ("SOLDOUT", DeductOutcome::SoldOut),
            ("LIMIT", DeductOutcome::LimitExceeded { held: 4 }),
        ] {
            assert_eq!(deduct(t(code, 4), 0).unwrap(), want, "{code}");
        }
        for (code, want) in [
            ("ALREADY", Released::Already),
            ("FAILED", Released::WasFailed),
            ("UNLOGGED", Released::Unlogged),
            ("ABSENT", Released::Absent),
        ] {
            assert_eq!(release(t(code, 0)).unwrap(), want, "{code}");
        }
        for (code, want) in
            [("SET", Rebuild::Set(5)), ("LIVE", Rebuild::Live(5)), ("BUSY", Rebuild::Busy), ("RACE", Rebuild::Race)]
        {
            assert_eq!(rebuild(t(code, 5)).unwrap(), want, "{code}");
        }
        assert!(!intent(t("INTENT", 0)).unwrap());
        assert_eq!(snapshot(Value::Array([0, 0, 3, 1, 0].map(Value::Int).to_vec())).unwrap(), (None, 3, 1, 0));
    }

    #[test]
    fn an_unexpected_reply_is_an_error_naming_the_script() {
        for e in [
            deduct(t("WHAT", 0), 0).unwrap_err(),
            deduct(t("REPLAY_X", 0), 0).unwrap_err(),
            release(t("RETURNED", -1)).unwrap_err(),
            release(t("GONE", 0)).unwrap_err(),
            rebuild(Value::Int(1)).unwrap_err(),
            count("redis settle.lua", "SETTLED", t("TRIMMED", 1)).unwrap_err(),
            intent(t("INTENT", 2)).unwrap_err(),
            relog(Value::BulkString(b"10".to_vec()), 3).unwrap_err(),
            relog(Value::BulkString(b"1x1".to_vec()), 3).unwrap_err(),
            snapshot(Value::Array([2, 5, 2, 0, 16].map(Value::Int).to_vec())).unwrap_err(),
            flag("redis turn.lua", Value::Int(2)).unwrap_err(),
            budget(Value::Int(-1)).unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(text.contains("redis") && text.contains("unexpected reply"), "{text}");
        }
    }
}
