//! [`ShardMoves`]: Redis's side of a shard move — the donor's record and take (`move_out.lua`),
//! the recipient's add at most once (`move_in.lua`), and the open records reconciliation finishes.

use super::keys::secs;
use super::{RedisCache, err, replies};
use crate::domain::{CacheShard, CollectionId};
use crate::ports::{InfraResult, MoveBack, MoveIn, MoveOut, OpenMove, ShardLevel, ShardMoves};

/// How long a recipient remembers the moves it added: far longer than any mover or recovery
/// lives, so none can add one twice.
const REMEMBER_MOVES_S: i64 = 86_400;

impl ShardMoves for RedisCache {
    async fn shard_levels(&self, collection: &CollectionId, shards: u32) -> InfraResult<Vec<ShardLevel>> {
        // One script call per shard, each on its own slot, sent at once.
        let reads = (0..shards).map(|r| {
            let k = self.keys(collection, r);
            async move {
                let reply = self
                    .invoke("redis shard_level.lua", &self.scripts.shard_level, vec![k.stock(shards), k.meta()], vec![])
                    .await?;
                replies::shard_level(reply)
            }
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }

    async fn move_out(
        &self,
        collection: &CollectionId,
        from: CacheShard,
        to: u32,
        id: &str,
        wanted: i64,
        least: i64,
        now_ms: i64,
    ) -> InfraResult<MoveOut> {
        let k = self.keys(collection, from.index);
        let args = [
            "out".to_owned(),
            id.to_owned(),
            to.to_string(),
            wanted.to_string(),
            least.to_string(),
            secs(now_ms).to_string(),
            from.count.max(1).to_string(),
        ];
        let reply = self
            .invoke(
                "redis move_out.lua",
                &self.scripts.move_out,
                vec![k.stock(from.count), k.meta(), k.moves()],
                bytes(&args),
            )
            .await?;
        replies::move_out(reply)
    }

    async fn move_in(
        &self,
        collection: &CollectionId,
        to: CacheShard,
        id: &str,
        units: i64,
        now_ms: i64,
    ) -> InfraResult<MoveIn> {
        let k = self.keys(collection, to.index);
        let now = secs(now_ms);
        let args = [
            id.to_owned(),
            units.to_string(),
            now.to_string(),
            (now - REMEMBER_MOVES_S).to_string(),
            to.count.max(1).to_string(),
        ];
        let reply = self
            .invoke(
                "redis move_in.lua",
                &self.scripts.move_in,
                vec![k.stock(to.count), k.meta(), k.moved_in()],
                bytes(&args),
            )
            .await?;
        replies::move_in(reply)
    }

    async fn move_done(&self, collection: &CollectionId, from: CacheShard, id: &str) -> InfraResult<bool> {
        replies::move_done(self.on_record(collection, from, "done", id).await?)
    }

    async fn move_back(&self, collection: &CollectionId, from: CacheShard, id: &str) -> InfraResult<MoveBack> {
        replies::move_back(self.on_record(collection, from, "back", id).await?)
    }

    async fn open_moves(&self, collection: &CollectionId, from: u32) -> InfraResult<Vec<OpenMove>> {
        let mut con = self.con.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys(collection, from).moves())
            .query_async(&mut con)
            .await
            .map_err(err("redis open moves"))?;
        all.into_iter()
            .map(|(id, rec)| {
                let mut f = rec.split(',').map(str::parse::<i64>);
                match (f.next(), f.next(), f.next(), f.next()) {
                    (Some(Ok(to)), Some(Ok(units)), Some(Ok(at)), None) if to >= 0 && units > 0 => {
                        Ok(OpenMove { id, from, to: to as u32, units, taken_at_ms: at * 1000 })
                    }
                    _ => {
                        Err(crate::ports::InfraError::new("redis open moves", format!("unreadable record {id}: {rec}")))
                    }
                }
            })
            .collect()
    }
}

impl RedisCache {
    /// `move_out.lua` in `mode` (`done` or `back`) on the donor's record of move `id`.
    async fn on_record(
        &self,
        collection: &CollectionId,
        from: CacheShard,
        mode: &str,
        id: &str,
    ) -> InfraResult<redis::Value> {
        let k = self.keys(collection, from.index);
        let args = [mode.to_owned(), id.to_owned(), from.count.max(1).to_string()];
        let keys = vec![k.stock(from.count), k.meta(), k.moves()];
        self.invoke("redis move_out.lua", &self.scripts.move_out, keys, bytes(&args)).await
    }
}

fn bytes(args: &[String]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}
