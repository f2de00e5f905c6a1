-- snapshot.lua: read one collection's counters atomically.
--
-- KEYS: the collection's six keys, as in try.lua (stock, orders, log, users, meta, done).
-- ARGV: none
-- Returns {hasStock (0/1), stock, pending, ver, logLength}.
local s = redis.call('GET', KEYS[1])
local m = redis.call('HMGET', KEYS[5], 'pending', 'ver')
return {s and 1 or 0, tonumber(s or '0'), tonumber(m[1] or '0'), tonumber(m[2] or '0'),
  redis.call('ZCARD', KEYS[3])}
