//! The packed formats the scripts read and write: stored ids (a length byte, then a canonical
//! UUID or ULID as 16 bytes, or the id as given), the order argument, an order's record in its
//! buyer's value (`records.lua` documents it) and a time slice's list of buckets.

use std::collections::BTreeSet;

use crate::domain::{BudgetWindow, OrderId, OrderKey, UserId};
use crate::ports::{CacheEntry, CacheState};

/// A buyer as stored: a byte k, then 16 bytes of a canonical UUID (k = 0) or k bytes as given.
pub fn buyer_bytes(user: &UserId) -> Vec<u8> {
    let s = user.as_str();
    if let Ok(u) = uuid::Uuid::try_parse(s)
        && u.hyphenated().to_string() == s
    {
        let mut v = vec![0u8];
        v.extend_from_slice(u.as_bytes());
        return v;
    }
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// An order id as stored: a byte k, then 16 bytes of a canonical ULID (k = 0) or k bytes as given.
pub fn order_bytes(order: &OrderId) -> Vec<u8> {
    let s = order.as_str();
    if let Ok(u) = ulid::Ulid::from_string(s)
        && u.to_string() == s
    {
        let mut v = vec![0u8];
        v.extend_from_slice(&u.to_bytes());
        return v;
    }
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// Reads one stored id at the start of `b`: (the id's text, bytes used).
pub(super) fn read_id(b: &[u8], canonical: fn(&[u8]) -> Option<String>) -> Option<(String, usize)> {
    let k = *b.first()? as usize;
    if k == 0 {
        Some((canonical(b.get(1..17)?)?, 17))
    } else {
        Some((String::from_utf8(b.get(1..1 + k)?.to_vec()).ok()?, 1 + k))
    }
}

pub(super) fn uuid_text(b: &[u8]) -> Option<String> {
    Some(uuid::Uuid::from_slice(b).ok()?.hyphenated().to_string())
}

pub(super) fn ulid_text(b: &[u8]) -> Option<String> {
    Some(ulid::Ulid::from_bytes(b.try_into().ok()?).to_string())
}

/// An order as the scripts take it: a byte with the stored buyer's length minus one (a 255-byte
/// subject is stored in 256), the buyer, the order.
pub(super) fn ident(key: &OrderKey) -> Vec<u8> {
    let u = buyer_bytes(&key.user);
    let mut v = vec![(u.len() - 1) as u8];
    v.extend_from_slice(&u);
    v.extend_from_slice(&order_bytes(&key.order));
    v
}

/// The budget record of `window` counting 1 (its layout is in `records.lua`): the first request
/// of a window, as a new buyer's value opens with it and as the scripts count from.
pub(super) fn budget_record(window: &BudgetWindow) -> [u8; 12] {
    let mut b = [1, 0, b'B', 1, 0, 0, 0, 0, 0, 0, 0, 0];
    b[4..8].copy_from_slice(&window.number.to_be_bytes());
    b[8..].copy_from_slice(&e4(window.ends_ms.div_euclid(1000)));
    b
}

/// A 4-byte big-endian number (seconds), clamped to its range.
pub(super) fn e4(n: i64) -> [u8; 4] {
    (n.clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes()
}

fn d4(b: &[u8]) -> i64 {
    b.try_into().map_or(0, |a: [u8; 4]| i64::from(u32::from_be_bytes(a)))
}

/// One order record read back from a buyer's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub order: Vec<u8>,
    pub state: u8,
    pub quantity: u32,
    pub accepted_s: i64,
    pub logged_s: i64,
}

/// Splits a buyer's value into records (stops at anything malformed).
pub(super) fn records(v: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let k = v[i] as usize;
        let n = if k == 0 { 17 } else { 1 + k };
        let Some(r) = v.get(i..i + n + 10) else { break };
        out.push(Record {
            order: r[..n].to_vec(),
            state: r[n],
            quantity: u32::from(r[n + 1]),
            accepted_s: d4(&r[n + 2..n + 6]),
            logged_s: d4(&r[n + 6..n + 10]),
        });
        i += n + 10;
    }
    out
}

/// A buyer's value with every unsettled (`P` or `I`) record logged again at `now_s`, and whether
/// it has one (a raise's copy lists it in the receiving shard's current time slice, where the
/// time index then finds it). The budget record and settled records are left as they are.
pub(super) fn relogged(v: &[u8], now_s: i64) -> (Vec<u8>, bool) {
    let mut out = v.to_vec();
    let mut unsettled = false;
    let mut i = 0;
    while i < out.len() {
        let k = out[i] as usize;
        let n = if k == 0 { 17 } else { 1 + k };
        if i + n + 10 > out.len() {
            break;
        }
        if matches!(out[i + n], b'P' | b'I') {
            out[i + n + 6..i + n + 10].copy_from_slice(&e4(now_s));
            unsettled = true;
        }
        i += n + 10;
    }
    (out, unsettled)
}

/// The buckets listed in a time slice.
pub(super) fn slice_buckets(b: &[u8]) -> BTreeSet<u32> {
    b.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).collect()
}

/// A record's state byte as the port's state (`S` durable, `I` durable with a cancel intent).
pub(super) fn state_of(b: u8) -> Option<CacheState> {
    Some(match b {
        b'P' => CacheState::Pending,
        b'S' | b'I' => CacheState::Durable,
        b'C' => CacheState::Cancelled,
        b'F' => CacheState::Failed,
        _ => return None,
    })
}

pub(super) fn entry_of(r: &Record, user: &UserId) -> Option<CacheEntry> {
    Some(CacheEntry {
        state: state_of(r.state)?,
        quantity: r.quantity,
        accepted_at_ms: r.accepted_s * 1000,
        user: user.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relogged_moves_only_unsettled_records_to_now() {
        let rec = |st: u8, logged: i64| {
            let mut r = vec![2, b'o', b'1', st, 1];
            r.extend_from_slice(&e4(100));
            r.extend_from_slice(&e4(logged));
            r
        };
        let budget = [1u8, 0, b'B', 3, 0, 0, 0, 9, 0, 0, 0, 50];
        let mut v = budget.to_vec();
        v.extend(rec(b'S', 100));
        v.extend(rec(b'P', 101));
        v.extend(rec(b'I', 102));
        let (out, unsettled) = relogged(&v, 500);
        assert!(unsettled);
        let rs = records(&out);
        assert_eq!(rs.iter().map(|r| r.logged_s).collect::<Vec<_>>(), vec![50, 100, 500, 500]);
        assert_eq!(&out[..12], &budget, "the budget record is not a record to relog");
        assert!(!relogged(&[&budget[..], &rec(b'C', 7)[..]].concat(), 500).1);
        assert_eq!(relogged(&[], 500), (vec![], false));
    }

    #[test]
    fn a_budget_record_is_laid_out_as_a_record_of_its_own() {
        let w = BudgetWindow { number: 0x0102_0304, ends_ms: 1_765_000_000_999 };
        let b = budget_record(&w);
        assert_eq!(&b[..4], &[1, 0, b'B', 1], "order \\x01\\x00, state B, a count of 1");
        assert_eq!(&b[4..8], &[1, 2, 3, 4], "the window's number");
        assert_eq!(d4(&b[8..]), 1_765_000_000, "when it ends, whole seconds");
        let r = records(&b);
        assert_eq!((r.len(), r[0].state, r[0].quantity), (1, b'B', 1), "walks as one record");
    }

    #[test]
    fn canonical_ids_are_stored_as_16_bytes_and_read_back() {
        let uuid = "0b6f3c2e-8f0a-4d1e-9c3b-2a7e5f1d4c6b";
        let ulid = "01JDZQ7X8KQ3V5M2N4P6R8T0W1";
        assert_eq!(buyer_bytes(&UserId::parse(uuid).unwrap()).len(), 17);
        assert_eq!(order_bytes(&OrderId::parse(ulid).unwrap()).len(), 17);
        // Anything else is kept as given (an upper-case UUID is not canonical: it stays text).
        for u in ["auth0:5f7c", "0B6F3C2E-8F0A-4D1E-9C3B-2A7E5F1D4C6B", "u"] {
            let b = buyer_bytes(&UserId::parse(u).unwrap());
            assert_eq!(read_id(&b, uuid_text), Some((u.to_owned(), b.len())), "{u}");
        }
        let b = buyer_bytes(&UserId::parse(uuid).unwrap());
        assert_eq!(read_id(&b, uuid_text), Some((uuid.to_owned(), 17)));
        let b = order_bytes(&OrderId::parse(ulid).unwrap());
        assert_eq!(read_id(&b, ulid_text), Some((ulid.to_owned(), 17)));
        let lower = "01jdzq7x8kq3v5m2n4p6r8t0w1";
        let b = order_bytes(&OrderId::parse(lower).unwrap());
        assert_eq!(read_id(&b, ulid_text), Some((lower.to_owned(), 27)), "a lower-case ULID stays text");
    }

    #[test]
    fn records_and_slices_parse() {
        let order = OrderId::parse("o-1").unwrap();
        let mut v = order_bytes(&order);
        v.extend_from_slice(b"P\x02");
        v.extend_from_slice(&e4(1_700_000_000));
        v.extend_from_slice(&e4(1_700_000_005));
        let r = records(&v);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].state, r[0].quantity, r[0].accepted_s, r[0].logged_s),
            (b'P', 2, 1_700_000_000, 1_700_000_005)
        );
        // A truncated record is dropped, not misread.
        assert_eq!(records(&v[..v.len() - 1]), vec![]);
        assert_eq!(slice_buckets(&[0, 7, 1, 0, 0, 7]), BTreeSet::from([7, 256]));
    }

    #[test]
    fn a_buyers_records_follow_each_other_and_read_as_entries() {
        let mut v = Vec::new();
        for (order, state, q) in [("o-1", b'P', 1u8), ("01JDZQ7X8KQ3V5M2N4P6R8T0W1", b'S', 2), ("o-3", b'C', 3)] {
            v.extend(order_bytes(&OrderId::parse(order).unwrap()));
            v.extend([state, q]);
            v.extend(e4(1_700_000_000 + i64::from(q)));
            v.extend(e4(1_700_000_100));
        }
        let r = records(&v);
        assert_eq!(r.iter().map(|r| (r.state, r.quantity)).collect::<Vec<_>>(), vec![(b'P', 1), (b'S', 2), (b'C', 3)]);
        assert_eq!(r[1].order.len(), 17, "a canonical ULID as 16 bytes");
        let user = UserId::parse("bob").unwrap();
        let e = entry_of(&r[1], &user).unwrap();
        assert_eq!((e.state, e.quantity, e.accepted_at_ms), (CacheState::Durable, 2, 1_700_000_002_000));
        let states = [b'P', b'S', b'I', b'C', b'F', b'X'].map(state_of);
        assert_eq!(
            states,
            [
                Some(CacheState::Pending),
                Some(CacheState::Durable),
                Some(CacheState::Durable),
                Some(CacheState::Cancelled),
                Some(CacheState::Failed),
                None
            ]
        );
    }

    #[test]
    fn the_order_argument_carries_the_buyers_length_minus_one() {
        let key = OrderKey::new(
            crate::domain::CollectionId::parse("c").unwrap(),
            UserId::parse("bob").unwrap(),
            OrderId::parse("o").unwrap(),
        );
        // "bob" is stored as 4 bytes (its length byte and 3): the argument's first byte is 3.
        assert_eq!(ident(&key), b"\x03\x03bob\x01o".to_vec());
    }
}
