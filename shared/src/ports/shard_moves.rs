//! The shard move ports: units carried from one of a collection's cache shards to another when a
//! buyer's shard runs dry (docs/DESIGN.md#shard-moves). Redis's side ([`ShardMoves`]) takes the
//! units from the donor with a record, adds them to the recipient once per move id, and forgets
//! or gives back; DynamoDB's side ([`MoveLog`]) moves the same units between the shards' stock
//! buckets in one transaction with the move's own item, which decides whether the move happened.

use std::future::Future;

use super::{InfraResult, WriteError};
use crate::domain::{CacheShard, CollectionId};

/// A move taken from a donor shard and not yet known to be in its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMove {
    pub id: String,
    pub from: u32,
    pub to: u32,
    pub units: i64,
    pub taken_at_ms: i64,
}

/// One cache shard's stock and its count of moves taken from it, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLevel {
    /// `None`: the stock key is missing.
    pub stock: Option<i64>,
    /// Moves taken from this shard so far: unchanged between two looks, none of its units went
    /// into a move in between.
    pub moves_out: i64,
}

/// The donor's answer to taking units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveOut {
    /// Took this many (at least the least asked) and recorded the move.
    Taken(i64),
    /// Fewer than the least asked: nothing taken.
    Short(i64),
    /// The donor's stock key is missing.
    NoCache,
}

/// The recipient's answer to adding a move's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveIn {
    Added,
    /// Added before (a retried or recovered move).
    Already,
    /// The recipient's stock key is missing: recorded as added, nothing added (a rebuild counts
    /// the units from DynamoDB).
    NoCache,
}

/// A donor's record, called off: what happened to the units taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveBack {
    /// Given back to the donor.
    Returned(i64),
    /// No record (finished or called off before).
    Absent,
    /// The donor's stock key is missing: the record forgotten, nothing given (a rebuild counts
    /// the units, which never left the donor's buckets in DynamoDB).
    Forgotten,
}

/// What DynamoDB's move item says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveState {
    /// The move transaction committed: the units are in the recipient's buckets.
    Moved,
    /// Called off: no move transaction can commit any more.
    Aborted,
}

/// Redis's side of shard moves.
pub trait ShardMoves: Send + Sync + 'static {
    /// Each of the collection's cache shards' level, shard 0 first (one call per shard, at once).
    fn shard_levels(
        &self,
        collection: &CollectionId,
        shards: u32,
    ) -> impl Future<Output = InfraResult<Vec<ShardLevel>>> + Send;
    /// Takes up to `wanted` units (at least `least`) from shard `from` for shard `to`, recording
    /// move `id` and counting it in the donor's level.
    #[allow(clippy::too_many_arguments)]
    fn move_out(
        &self,
        collection: &CollectionId,
        from: CacheShard,
        to: u32,
        id: &str,
        wanted: i64,
        least: i64,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<MoveOut>> + Send;
    /// Adds move `id`'s units to shard `to`, at most once.
    fn move_in(
        &self,
        collection: &CollectionId,
        to: CacheShard,
        id: &str,
        units: i64,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<MoveIn>> + Send;
    /// Forgets the donor's record of a move its recipient has: true if it was there.
    fn move_done(
        &self,
        collection: &CollectionId,
        from: CacheShard,
        id: &str,
    ) -> impl Future<Output = InfraResult<bool>> + Send;
    /// Calls a move off on the donor: its units back, its record forgotten.
    fn move_back(
        &self,
        collection: &CollectionId,
        from: CacheShard,
        id: &str,
    ) -> impl Future<Output = InfraResult<MoveBack>> + Send;
    /// The moves open from shard `from` (recorded, not yet done or called off).
    fn open_moves(
        &self,
        collection: &CollectionId,
        from: u32,
    ) -> impl Future<Output = InfraResult<Vec<OpenMove>>> + Send;
}

/// DynamoDB's side of shard moves.
pub trait MoveLog: Send + Sync + 'static {
    /// One transaction: `units` of saleable stock, with their share of the quantity, from the
    /// donor buckets (`(bucket, units)`, each conditional on having them) to bucket `to`, and the
    /// move's item (condition: none yet), which says `Moved` from then on.
    fn move_between_shards(
        &self,
        collection: &CollectionId,
        id: &str,
        from: &[(u32, i64)],
        to: u32,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    /// The move's item (`None`: no transaction committed it, nor was it called off).
    fn move_state(
        &self,
        collection: &CollectionId,
        id: &str,
    ) -> impl Future<Output = InfraResult<Option<MoveState>>> + Send;
    /// Writes the move's item as `Aborted` where none is: true if written (the move transaction
    /// can never commit now), false if one was there first.
    fn abort_move(
        &self,
        collection: &CollectionId,
        id: &str,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<bool>> + Send;
}
