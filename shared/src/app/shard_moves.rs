//! Shard moves: when a buyer's cache shard runs dry while others still hold stock, units move to
//! it before the Try is refused, so a buyer is answered SOLD_OUT only when every shard is empty
//! (docs/DESIGN.md#shard-moves). A move is four steps on three stores, each idempotent: the
//! donor shard takes the units with a record of the move (`move_out`); one DynamoDB transaction
//! carries them between the two shards' stock buckets with the move's own item; the recipient
//! adds them once per move id (`move_in`); the donor forgets its record (`move_done`). A mover
//! that dies leaves the record, and reconciliation finishes the move from the item: there, it
//! happened (add, forget); absent, it is called off for good (`ABORTED` written where no item is,
//! so the transaction can never commit later) and the units go back to the donor.

use super::{App, AppError, backoff};
use crate::domain::buckets::{shard_donors, shard_move_units, shard_recipient};
use crate::domain::{CacheShard, CollectionId};
use crate::ports::{
    Catalog, ItemFailure, MoveBack, MoveLog, MoveOut, MoveState, OpenMove, ShardLevel, ShardMoves, WriteError,
};

/// Attempts of a move's transaction against conflicting writers before it is called off.
/// How long a mover may still be carrying the move it took (its DynamoDB transaction, retried
/// with backoff, and its two Redis steps): a Try leaves a younger open move to it.
const MOVER_LIFE_MS: i64 = 1_000;
/// How long a Try that found only a live mover's units waits before it looks again.
const LIVE_MOVE_WAIT: std::time::Duration = std::time::Duration::from_millis(25);

const MOVE_ATTEMPTS: u32 = 4;
/// Looks at the shards' stock one refill takes (a donor drained from under it is read again).
const REFILL_ROUNDS: u32 = 4;

/// What bringing units to a buyer's shard came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardRefill {
    /// Units moved in (or were there already): deduct again.
    Moved,
    /// Every shard is empty.
    Empty,
    /// No other shard holds any, and this one fewer than the order needs: what it holds.
    Short(i64),
    /// A shard's stock key is missing, or moves kept meeting others or were called off: the
    /// buyer retries shortly.
    Busy,
}

/// How a move ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveEnd {
    /// The units are in the recipient, in both stores.
    Moved,
    /// Called off: the units are back in the donor (or its lost stock is rebuilt with them).
    CalledOff,
}

impl<C: ShardMoves, L: Catalog + MoveLog, Q> App<C, L, Q> {
    /// Brings units to shard `to`, `need` short, from the richest other shard (half of its stock,
    /// at least what is missing or all it has). With no other shard holding any, it finishes the
    /// moves open on every shard and looks again: units in flight between two shards are in
    /// neither's stock, and their mover may have died. Finishing is safe alongside a live mover
    /// (every step is idempotent; a move not yet committed is called off for good first). Units
    /// leave a shard's stock only by a deduction or by a move, which counts itself in the same
    /// call (`ShardLevel::moves_out`), so a second look with every count unchanged is sure: the
    /// collection is empty (or short) then.
    pub(crate) async fn refill_shard(
        &self,
        id: &CollectionId,
        shards: u32,
        to: u32,
        need: i64,
        now_ms: i64,
    ) -> Result<ShardRefill, AppError> {
        let mut first: Option<Vec<ShardLevel>> = None;
        for _ in 0..REFILL_ROUNDS {
            let levels = self.cache.shard_levels(id, shards).await?;
            let stock = |r: u32| levels.get(r as usize).and_then(|l| l.stock);
            let Some(here) = stock(to).map(|s| s.max(0)) else { return Ok(ShardRefill::Busy) };
            if here >= need {
                return Ok(ShardRefill::Moved);
            }
            let missing = need - here;
            let donor = (0..shards)
                .filter(|&r| r != to)
                .filter_map(|r| stock(r).map(|s| (r, s)))
                .filter(|&(_, s)| s > 0)
                .max_by_key(|&(r, s)| (s, std::cmp::Reverse(r)));
            if let Some((from, has)) = donor {
                let move_id = ulid::Ulid::new().to_string();
                let (wanted, least) = (shard_move_units(has, missing), missing.min(has));
                match self
                    .cache
                    .move_out(id, CacheShard::new(from, shards), to, &move_id, wanted, least, now_ms)
                    .await?
                {
                    MoveOut::Taken(units) => {
                        let m = OpenMove { id: move_id, from, to, units, taken_at_ms: now_ms };
                        return Ok(match self.carry(id, shards, &m, now_ms).await? {
                            MoveEnd::Moved => ShardRefill::Moved,
                            MoveEnd::CalledOff => ShardRefill::Busy,
                        });
                    }
                    // Taken from under us meanwhile: look again.
                    MoveOut::Short(_) | MoveOut::NoCache => first = None,
                }
                continue;
            }
            match &first {
                Some(before) if before.iter().zip(&levels).all(|(a, b)| a.moves_out == b.moves_out) => {
                    // A lost shard may hold units: not sure of anything until it is rebuilt.
                    if levels.iter().any(|l| l.stock.is_none()) {
                        return Ok(ShardRefill::Busy);
                    }
                    return Ok(if here == 0 { ShardRefill::Empty } else { ShardRefill::Short(here) });
                }
                _ => {
                    // A live mover's units land soon: look again after a moment (and answer 503
                    // if they have not by the last round), never SOLD_OUT.
                    if self.finish_open_moves(id, shards, now_ms).await? {
                        tokio::time::sleep(LIVE_MOVE_WAIT).await;
                        first = None;
                        continue;
                    }
                    first = Some(levels);
                }
            }
        }
        Ok(ShardRefill::Busy)
    }

    /// Finishes the moves open on the collection's shards whose mover has had its time
    /// ([`Self::finish_move`]). True when a younger one is open: its units are in flight, and
    /// calling it off would only send them back for the next mover (near sell-out, Tries doing
    /// that to each other kept buyers at 503 for seconds: BENCHMARKS.md section 12).
    async fn finish_open_moves(&self, id: &CollectionId, shards: u32, now_ms: i64) -> Result<bool, AppError> {
        let mut live = false;
        for from in CacheShard::all(shards) {
            live |= self.finish_moves_from(id, from, now_ms - MOVER_LIFE_MS + 1, now_ms, &mut 0).await?;
        }
        Ok(live)
    }

    /// Finishes the moves open from shard `from` that were taken before `taken_before_ms`
    /// (reconciliation's: those whose mover is dead), counting each in `finished`. True when a
    /// move taken since is open.
    pub(crate) async fn finish_moves_from(
        &self,
        id: &CollectionId,
        from: CacheShard,
        taken_before_ms: i64,
        now_ms: i64,
        finished: &mut u32,
    ) -> Result<bool, AppError> {
        let mut younger = false;
        for m in self.cache.open_moves(id, from.index).await? {
            if m.taken_at_ms >= taken_before_ms {
                younger = true;
                continue;
            }
            let end = self.finish_move(id, from.count, &m, now_ms).await?;
            tracing::warn!(collection = %id, move_id = %m.id, ?end, "open shard move finished");
            *finished += 1;
        }
        Ok(younger)
    }

    /// DynamoDB's half of a move the donor has taken, then the recipient's and the donor's
    /// records; a transaction that does not commit sends the move to [`Self::finish_move`].
    async fn carry(&self, id: &CollectionId, shards: u32, m: &OpenMove, now_ms: i64) -> Result<MoveEnd, AppError> {
        let rec = match self.ledger.collection(id).await {
            Ok(Some(rec)) => rec,
            // Nothing committed: the move is called off now rather than left to a helper.
            Ok(None) | Err(_) => return self.finish_move(id, shards, m, now_ms).await,
        };
        let saleable: Vec<i64> = rec.buckets.iter().map(|b| b.saleable).collect();
        let from = shard_donors(&saleable, m.from, shards, m.units);
        let to = shard_recipient(&saleable, m.to, shards);
        for attempt in 1..=MOVE_ATTEMPTS {
            if from.is_empty() {
                break;
            }
            match self.ledger.move_between_shards(id, &m.id, &from, to, now_ms).await {
                Ok(()) => {
                    tracing::info!(collection = %id, from = m.from, to = m.to, units = m.units, "stock moved between shards");
                    // Committed here: the item need not be read back.
                    return self.complete_move(id, shards, m, now_ms).await;
                }
                Err(WriteError::Cancelled(r))
                    if r.iter().all(|f| matches!(f, ItemFailure::None | ItemFailure::Retryable)) =>
                {
                    backoff(attempt).await;
                }
                Err(e) => {
                    tracing::info!(collection = %id, move_id = %m.id, error = %e, "shard move not committed");
                    break;
                }
            }
        }
        self.finish_move(id, shards, m, now_ms).await
    }

    /// Ends an open move from DynamoDB's item (a mover's own end, and reconciliation's for a
    /// mover that died): committed, the recipient adds the units and the donor forgets; never
    /// committed, it is called off for good and the units go back to the donor.
    pub async fn finish_move(
        &self,
        id: &CollectionId,
        shards: u32,
        m: &OpenMove,
        now_ms: i64,
    ) -> Result<MoveEnd, AppError> {
        let mut state = None;
        for attempt in 1..=MOVE_ATTEMPTS {
            state = self.ledger.move_state(id, &m.id).await?;
            if state.is_some() {
                break;
            }
            if self.ledger.abort_move(id, &m.id, now_ms).await? {
                state = Some(MoveState::Aborted);
                break;
            }
            // The transaction committed between the two reads, or holds the item right now.
            backoff(attempt).await;
        }
        match state {
            Some(MoveState::Moved) => self.complete_move(id, shards, m, now_ms).await,
            Some(MoveState::Aborted) => {
                if let MoveBack::Returned(u) =
                    self.on_layout(id, self.cache.move_back(id, CacheShard::new(m.from, shards), &m.id).await)?
                {
                    tracing::info!(collection = %id, shard = m.from, units = u, "shard move called off; units back");
                    self.sold_out.clear(id);
                }
                Ok(MoveEnd::CalledOff)
            }
            None => Err(AppError::Unavailable(format!("shard move {} of {id} neither committed nor called off", m.id))),
        }
    }

    /// The Redis steps of a committed move: the recipient adds the units, the donor forgets its
    /// record. Only while that record is open: a finisher working from a list read earlier must
    /// not add a move finished since (the recipient may have lost its memory of move ids with its
    /// stock, and been rebuilt with these units).
    async fn complete_move(
        &self,
        id: &CollectionId,
        shards: u32,
        m: &OpenMove,
        now_ms: i64,
    ) -> Result<MoveEnd, AppError> {
        if self.cache.open_moves(id, m.from).await?.iter().any(|o| o.id == m.id) {
            self.on_layout(id, self.cache.move_in(id, CacheShard::new(m.to, shards), &m.id, m.units, now_ms).await)?;
            self.on_layout(id, self.cache.move_done(id, CacheShard::new(m.from, shards), &m.id).await)?;
        }
        Ok(MoveEnd::Moved)
    }

    /// Whether a move into shard `to` is open on another shard: a rebuild of `to` from DynamoDB
    /// read before this may count units the recipient is still to add, and waits.
    pub(crate) async fn moves_into(&self, id: &CollectionId, shards: u32, to: u32) -> Result<bool, AppError> {
        for from in (0..shards).filter(|&r| r != to) {
            if self.cache.open_moves(id, from).await?.iter().any(|m| m.to == to) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
