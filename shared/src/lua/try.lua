-- try.lua: take stock for one order, atomically and idempotently (the Try hot path).
--
-- KEYS (all share the collection's hash tag {<prefix>:c:<collectionId>}):
--   KEYS[1] stock   STRING units Redis may still sell; missing = cache not ready
--   KEYS[2] orders  HASH   orderId -> "<state>|<qty>|<acceptedAtMs>|<userId>",
--                          state P pending, S settled (durable), C cancelled, F failed
--   KEYS[3] log     ZSET   orderId scored by time: deductions (or cancels) not yet known durable
--   KEYS[4] users   HASH   userId -> units held (per-user limit)
--   KEYS[5] meta    HASH   pending = sum of qty in state P; ver = bumped on every stock/log change
--   KEYS[6] done    ZSET   (not used here)
-- ARGV: [1] orderId [2] userId [3] qty [4] nowMs [5] perUserLimit (0 = none)
-- Returns {code, a, b}:
--   {"OK", stockLeft, 0}            taken now
--   {"REPLAY_<state>", acceptedAt, 0} same order id, same user and qty, seen before
--   {"CANCELLED", 0, 0}             the order id has a cancel tombstone (anti-hanging)
--   {"MISMATCH", 0, 0}              same order id with another user or qty
--   {"NOCACHE", 0, 0}               stock key missing: refuse until warm-up, never "sold out"
--   {"SOLDOUT", 0, 0} | {"INSUFFICIENT", stock, 0} | {"LIMIT", held, 0}
local e = redis.call('HGET', KEYS[2], ARGV[1])
if e then
  local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
  if st == 'C' then return {'CANCELLED', 0, 0} end
  if u ~= ARGV[2] or q ~= ARGV[3] then return {'MISMATCH', 0, 0} end
  return {'REPLAY_' .. st, tonumber(at), 0}
end
local s = redis.call('GET', KEYS[1])
if not s then return {'NOCACHE', 0, 0} end
s = tonumber(s)
local q = tonumber(ARGV[3])
if s <= 0 then return {'SOLDOUT', 0, 0} end
if s < q then return {'INSUFFICIENT', s, 0} end
local lim = tonumber(ARGV[5])
if lim > 0 then
  local held = tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0')
  if held + q > lim then return {'LIMIT', held, 0} end
end
redis.call('DECRBY', KEYS[1], q)
redis.call('HINCRBY', KEYS[4], ARGV[2], q)
redis.call('HSET', KEYS[2], ARGV[1], 'P|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'pending', q)
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'OK', s - q, 0}
