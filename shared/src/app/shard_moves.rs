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
use crate::domain::CollectionId;
use crate::domain::buckets::{shard_donors, shard_move_units, shard_recipient};
use crate::ports::{Catalog, ItemFailure, MoveBack, MoveLog, MoveOut, MoveState, OpenMove, ShardMoves, WriteError};

/// Attempts of a move's transaction against conflicting writers before it is called off.
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
    /// Fewer units than the order needs in any one donor: the most this buyer could get.
    Short(i64),
    /// A shard's stock key is missing, or the move was taken from under it or called off: the
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
    /// at least what is missing). Before it calls the collection empty (or short), it finishes
    /// the moves open on any shard and reads the stocks again: units in flight between two
    /// shards are in neither's stock, and their mover may have died. Finishing is safe alongside a live mover (every step is
    /// idempotent, and a move not yet committed is called off for good first).
    pub(crate) async fn refill_shard(
        &self,
        id: &CollectionId,
        shards: u32,
        to: u32,
        need: i64,
        now_ms: i64,
    ) -> Result<ShardRefill, AppError> {
        let mut finished_open = false;
        let mut begun = self.cache.moves_begun(id).await?;
        for _ in 0..REFILL_ROUNDS {
            let Some(stocks) = self.cache.shard_stocks(id, shards).await?.into_iter().collect::<Option<Vec<i64>>>()
            else {
                return Ok(ShardRefill::Busy);
            };
            let here = stocks.get(to as usize).copied().unwrap_or(0).max(0);
            if here >= need {
                return Ok(ShardRefill::Moved);
            }
            let missing = need - here;
            let donor = (0..shards).filter(|&r| r != to).max_by_key(|&r| (stocks[r as usize], std::cmp::Reverse(r)));
            let Some((from, has)) = donor.map(|r| (r, stocks[r as usize])).filter(|&(_, has)| has >= missing) else {
                // Looked at again after the open moves, even with none: one that ended between the
                // two reads has put its units in its recipient by then. And no move may have
                // begun since the first look: units given back to a donor can be taken into a new
                // move between two reads and be in neither.
                if !finished_open {
                    self.finish_open_moves(id, shards, now_ms).await?;
                    finished_open = true;
                    continue;
                }
                let now_begun = self.cache.moves_begun(id).await?;
                if now_begun != begun {
                    (begun, finished_open) = (now_begun, false);
                    continue;
                }
                let best = donor.map_or(0, |r| stocks[r as usize].max(0));
                return Ok(if here + best == 0 { ShardRefill::Empty } else { ShardRefill::Short(here + best) });
            };
            let move_id = ulid::Ulid::new().to_string();
            let wanted = shard_move_units(has, missing);
            match self.cache.move_out(id, from, to, &move_id, wanted, missing, now_ms).await? {
                MoveOut::Taken(units) => {
                    let m = OpenMove { id: move_id, from, to, units, taken_at_ms: now_ms };
                    return Ok(match self.carry(id, shards, &m, now_ms).await? {
                        MoveEnd::Moved => ShardRefill::Moved,
                        MoveEnd::CalledOff => ShardRefill::Busy,
                    });
                }
                // Taken from under us meanwhile: look again.
                MoveOut::Short(_) => {}
                MoveOut::NoCache => return Ok(ShardRefill::Busy),
            }
        }
        Ok(ShardRefill::Busy)
    }

    /// Finishes every move open on the collection's shards ([`Self::finish_move`]): how many.
    pub async fn finish_open_moves(&self, id: &CollectionId, shards: u32, now_ms: i64) -> Result<u32, AppError> {
        let mut n = 0;
        for from in 0..shards {
            for m in self.cache.open_moves(id, from).await? {
                self.finish_move(id, &m, now_ms).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// DynamoDB's half of a move the donor has taken, then the recipient's and the donor's
    /// records; a transaction that does not commit sends the move to [`Self::finish_move`].
    async fn carry(&self, id: &CollectionId, shards: u32, m: &OpenMove, now_ms: i64) -> Result<MoveEnd, AppError> {
        let rec = self.ledger.collection(id).await?.ok_or(AppError::CollectionNotFound)?;
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
                    return self.finish_move(id, m, now_ms).await;
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
        self.finish_move(id, m, now_ms).await
    }

    /// Ends an open move from DynamoDB's item (a mover's own end, and reconciliation's for a
    /// mover that died): committed, the recipient adds the units and the donor forgets; never
    /// committed, it is called off for good and the units go back to the donor.
    pub async fn finish_move(&self, id: &CollectionId, m: &OpenMove, now_ms: i64) -> Result<MoveEnd, AppError> {
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
            Some(MoveState::Moved) => {
                self.cache.move_in(id, m.to, &m.id, m.units, now_ms).await?;
                self.cache.move_done(id, m.from, &m.id).await?;
                Ok(MoveEnd::Moved)
            }
            Some(MoveState::Aborted) => {
                if let MoveBack::Returned(u) = self.cache.move_back(id, m.from, &m.id).await? {
                    tracing::info!(collection = %id, shard = m.from, units = u, "shard move called off; units back");
                    self.sold_out.clear(id);
                }
                Ok(MoveEnd::CalledOff)
            }
            None => Err(AppError::Unavailable(format!("shard move {} of {id} neither committed nor called off", m.id))),
        }
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
