-- move_in.lua: the recipient's side of a shard move (docs/DESIGN.md#shard-moves): add the units
-- DynamoDB has already moved into this shard's stock buckets, once per move id. One call on the
-- recipient shard's slot.
--
-- KEYS (all share the recipient shard's hash tag {<prefix>:c:<collectionId>[:<shard>]}):
--   KEYS[1] stock     STRING units + STOCK_BIAS (see deduct.lua); missing = cache not ready
--   KEYS[2] meta      HASH   ver is bumped whenever stock changes here (a rebuild's guard)
--   KEYS[3] moved_in  ZSET   move ids applied here, by when (s); those older than ARGV[4] are
--                            dropped (no mover or recovery is alive that long)
-- ARGV[1] move id, ARGV[2] units, ARGV[3] now (s), ARGV[4] forget ids applied before (s),
--   ARGV[5] the caller's cache shard count
-- Returns {"IN", stock} added now | {"ALREADY"} added before | {"NOCACHE"} the stock key is
-- missing: the id is recorded as applied, nothing added (a rebuild from DynamoDB counts the
-- units, which are in this shard's buckets there already). Both of the first and the last bump
-- ver: a rebuild that read DynamoDB before the move committed must not go ahead. {"LAYOUT"}:
-- the caller routes by a cache shard count raised since (meta.cs is another), nothing changed.
local cs = redis.call('HGET', KEYS[2], 'cs')
if cs and cs ~= ARGV[5] then return {'LAYOUT'} end
local id = ARGV[1]
if redis.call('ZSCORE', KEYS[3], id) then return {'ALREADY'} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], id)
redis.call('HINCRBY', KEYS[2], 'ver', 1)
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOCACHE'} end
local s = redis.call('INCRBY', KEYS[1], ARGV[2])
return {'IN', s - STOCK_BIAS}
