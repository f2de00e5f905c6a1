-- release.lua: return one order's share to Redis, at most once, and release its per-user limit.
-- Never returns more than the order took, and never creates a missing stock key.
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] order ("<orderId>:<userId>") [2] nowMs [3] tombstone userId, or "" (when given, an absent entry becomes a
--       cancelled one so that a late Try on this collection is refused)
-- Returns {code, qty, 0}:
--   {"RETURNED", qty, 0}  given back now     {"ALREADY", 0, 0}  given back before
--   {"FAILED", 0, 0}      a FAILED order: its deduction is not returned blindly
--   {"ABSENT", 0, 0}      no entry (one was written as a tombstone when asked)
--   {"UNLOGGED", 0, 0}    a settled entry with no cancel intent in the log: not returned here.
--                         Every return goes through the log, and drift repair only runs while the
--                         log is empty, so the two can never both count the same units.
local e = redis.call('HGET', KEYS[2], ARGV[1])
if not e then
  redis.call('ZREM', KEYS[3], ARGV[1])
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[1], 'C|0|' .. ARGV[2] .. '|' .. ARGV[3])
    redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
  end
  return {'ABSENT', 0, 0}
end
local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
if st == 'C' then redis.call('ZREM', KEYS[3], ARGV[1]); return {'ALREADY', 0, 0} end
if st == 'F' then redis.call('ZREM', KEYS[3], ARGV[1]); return {'FAILED', 0, 0} end
if st == 'S' and not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return {'UNLOGGED', 0, 0} end
local n = tonumber(q)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], n) end
if redis.call('HINCRBY', KEYS[4], u, -n) <= 0 then redis.call('HDEL', KEYS[4], u) end
redis.call('HSET', KEYS[2], ARGV[1], 'C|' .. q .. '|' .. at .. '|' .. u)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'RETURNED', n, 0}
