-- shard_level.lua: one cache shard's stock and its count of moves taken from it, read together
-- (a Try looking at every shard before it answers SOLD_OUT: units leave a shard's stock only by
-- a deduction or by a move, which counts itself here in the same call, so a count unchanged
-- between two looks means no unit of this shard went into a move in between). Read only.
--
-- KEYS (the shard's hash tag {<prefix>:c:<collectionId>[:<shard>]}):
--   KEYS[1] stock  STRING units + STOCK_BIAS (see deduct.lua); missing = cache not ready
--   KEYS[2] meta   HASH   mo: the moves taken from this shard (move_out.lua)
-- ARGV: none
-- Returns {"LEVEL", stock, mo} | {"NOCACHE", mo}
local mo = tonumber(redis.call('HGET', KEYS[2], 'mo') or '0')
local s = redis.call('GET', KEYS[1])
if not s then return {'NOCACHE', mo} end
return {'LEVEL', tonumber(s) - STOCK_BIAS, mo}
