-- reserve.lua: take stock for one order, atomically and idempotently (the Try hot path).
--
-- KEYS (all share the collection's hash tag {<prefix>:c:<collectionId>}):
--   KEYS[1] stock   STRING units Redis may still sell; missing = cache not ready
--   KEYS[2] orders  HASH   "<orderId>:<userId>" (the buyer-scoped order) ->
--                          "<state>|<qty>|<acceptedAtMs>|<userId>",
--                          state P pending, S settled (durable), C cancelled, F failed
--   KEYS[3] log     ZSET   order (as in orders) scored by time: deductions (or cancels) not yet known durable
--   KEYS[4] users   HASH   userId -> units held (per-user limit)
--   KEYS[5] meta    HASH   ver = bumped whenever an entry leaves the log or stock is set (a
--                          compare-and-set version for drift repair); not touched here
--   KEYS[6] done    ZSET   (not used here)
-- ARGV: [1] order ("<orderId>:<userId>") [2] userId [3] qty [4] nowMs [5] perUserLimit (0 = none)
--       [6] staleBeforeMs: a pending entry logged before this may be under reconciliation's
--           decision (older than its threshold)
-- Returns {code, a, b}:
--   {"OK", stockLeft, 0}            taken now
--   {"REPLAY_<state>", acceptedAt, 0} same order id, same user and qty, seen before
--   {"REPLAY_STALE", acceptedAt, 0} a replay of a pending entry reconciliation may be deciding:
--                                   the caller re-publishes but must not promise the order
--   A fresh replay of a pending entry re-logs it at nowMs: its re-published message gets a whole
--   threshold to arrive before reconciliation looks at it. A stale one is left as it is, so every
--   later replay stays unconfirmed until reconciliation has decided (it may have written the
--   tombstone already).
--   {"CANCELLED", 0, 0}             the order id has a cancel tombstone (anti-hanging)
--   {"MISMATCH", 0, 0}              this buyer's order id seen with another qty
--   {"NOCACHE", 0, 0}               stock key missing: refuse until warm-up, never "sold out"
--   {"SOLDOUT", 0, 0} | {"INSUFFICIENT", stock, 0} | {"LIMIT", held, 0}
-- An order id seen before answers from its entry, whatever the stock (replays after a sell-out).
local function seen(e)
  local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
  if st == 'C' then return {'CANCELLED', 0, 0} end
  if u ~= ARGV[2] or q ~= ARGV[3] then return {'MISMATCH', 0, 0} end
  if st == 'P' then
    local logged = redis.call('ZSCORE', KEYS[3], ARGV[1])
    if logged and tonumber(logged) < tonumber(ARGV[6]) then return {'REPLAY_STALE', tonumber(at), 0} end
    redis.call('ZADD', KEYS[3], 'XX', ARGV[4], ARGV[1])
  end
  return {'REPLAY_' .. st, tonumber(at), 0}
end
local q = tonumber(ARGV[3])
local s = redis.call('GET', KEYS[1])
s = s and tonumber(s)
if not s or s < q then
  -- Refused unless seen before: the read comes after the stock check, off the accepting path.
  local e = redis.call('HGET', KEYS[2], ARGV[1])
  if e then return seen(e) end
  if not s then return {'NOCACHE', 0, 0} end
  if s <= 0 then return {'SOLDOUT', 0, 0} end
  return {'INSUFFICIENT', s, 0}
end
-- Enough stock: claim the order id (HSETNX is the idempotency check and the write at once).
if redis.call('HSETNX', KEYS[2], ARGV[1], 'P|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[2]) == 0 then
  return seen(redis.call('HGET', KEYS[2], ARGV[1]))
end
-- The per-user counter is raised first and lowered again on the (rare) refusal: one call on the
-- hot path instead of a read and a write.
local held = redis.call('HINCRBY', KEYS[4], ARGV[2], q)
local lim = tonumber(ARGV[5])
if lim > 0 and held > lim then
  if redis.call('HINCRBY', KEYS[4], ARGV[2], -q) <= 0 then redis.call('HDEL', KEYS[4], ARGV[2]) end
  redis.call('HDEL', KEYS[2], ARGV[1])
  return {'LIMIT', held - q, 0}
end
redis.call('DECRBY', KEYS[1], q)
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
-- meta is not touched: the pending sum is counted from the log when needed (snapshot.lua),
-- and ver need not move, since a Try always leaves a log entry, drift repair refuses while the
-- log is not empty, and whatever removes the entry later (settle, release) bumps ver.
return {'OK', s - q, 0}
