//! The Redis side of a raise of a collection's cache shards (docs/DESIGN.md#raising-cacheshards):
//! every shard of the new layout fenced, each old shard's buyers whose home shard changed copied
//! to it and forgotten where they were, the fence lifted. The stock is then rebuilt from DynamoDB.

use std::future::Future;

use super::InfraResult;
use crate::domain::CollectionId;

/// What one call splitting an old shard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Buyers copied to their new home shard and forgotten on the old one.
    pub buyers_moved: u32,
    /// Buyers whose stored id could not be read (left where they are, and logged).
    pub unreadable: u32,
    /// The buyer bucket the next call starts from (`None`: the shard is done).
    pub next: Option<u32>,
    /// Another finisher ended the raise (the receiving shard is no longer fenced for it):
    /// nothing was written.
    pub ended_elsewhere: bool,
}

pub trait CacheRaise: Send + Sync + 'static {
    /// Fences shard `shard` of the layout of `to` shards (`fence.lua`): its records are not
    /// changed and no stock is set there until [`Self::unfence`]; its stock key of the layout of
    /// `from` shards is deleted. False: the raise ended on this shard already, nothing done.
    fn fence(
        &self,
        collection: &CollectionId,
        shard: u32,
        from: u32,
        to: u32,
    ) -> impl Future<Output = InfraResult<bool>> + Send;
    /// Copies the buyers of shard `shard`'s buyer buckets from `from_bucket` on (a bounded number
    /// per call) whose home shard in a layout of `to` shards is another one there (`adopt.lua`:
    /// unsettled entries listed in its time slice of `now_ms`), then forgets them here.
    /// `quantities[r]`: the units shard r holds in the new layout (sizes its buyer buckets the
    /// first time). Run again, it moves what is left.
    fn split(
        &self,
        collection: &CollectionId,
        shard: u32,
        to: u32,
        quantities: &[i64],
        from_bucket: u32,
        now_ms: i64,
    ) -> impl Future<Output = InfraResult<Split>> + Send;
    /// Lifts the fence of shard `shard`, which is in the layout of `to` shards from now on (a
    /// caller routing by another count is refused there).
    fn unfence(&self, collection: &CollectionId, shard: u32, to: u32) -> impl Future<Output = InfraResult<()>> + Send;
}
