-- undo.lua: give back a just-taken order whose reservation message could not be published, and
-- forget it entirely so that the client's retry is a fresh Try.
--
-- KEYS: the collection's six keys, as in try.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] orderId [2] acceptedAtMs of the take being undone
-- Returns {code, qty, 0}: {"UNDONE", qty, 0}, or {"KEPT", 0, 0} when the entry is not that
-- pending take (already settled, cancelled, or replaced).
local e = redis.call('HGET', KEYS[2], ARGV[1])
if not e then return {'KEPT', 0, 0} end
local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
if st ~= 'P' or at ~= ARGV[2] then return {'KEPT', 0, 0} end
q = tonumber(q)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], q) end
if redis.call('HINCRBY', KEYS[4], u, -q) <= 0 then redis.call('HDEL', KEYS[4], u) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'UNDONE', q, 0}
