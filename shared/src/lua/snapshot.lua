-- snapshot.lua: read one collection's counters atomically.
--
-- KEYS: [1] stock (units + STOCK_BIAS, see deduct.lua) [2] meta [3] slices
-- ARGV: none
-- Returns {"CACHED", stock, ver, open, nb} or, with no stock key, {"MISSING", ver, open, nb}:
-- ver, the registered (open) time slices, the bucket count (0: unknown). The units
-- still pending are counted from the open slices by the caller, off the hot shard's script time.
local s = redis.call('GET', KEYS[1])
local m = redis.call('HMGET', KEYS[2], 'ver', 'nb')
local ver, open, nb = tonumber(m[1] or '0'), redis.call('ZCARD', KEYS[3]), tonumber(m[2] or '0')
if not s then return {'MISSING', ver, open, nb} end
return {'CACHED', tonumber(s) - STOCK_BIAS, ver, open, nb}
