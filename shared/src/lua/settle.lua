-- settle.lua: record what DynamoDB decided for pending orders and drop them from the log.
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] nowMs
--       [2] target: "S" durable; "F" refused by DynamoDB (the Redis deduction is kept: Redis had
--           drifted high, reconciliation re-syncs it); "SR" / "FR" the same, and this deduction's
--           units and the buyer's counter go back (DynamoDB decided the order from an earlier
--           deduction: a replay after Redis forgot it)
--       [3] clear-intents cutoff ms, or 0: also drop from the log an already-settled order logged
--           before the cutoff (the intent of a cancel that died before DynamoDB; a live cancel's
--           intent is younger than reconciliation's threshold and stays)
--       [4..] orders ("<orderId>:<userId>")
-- Returns {"SETTLED", n, 0}: how many pending entries changed state.
local n = 0
local changed = false
local state = string.sub(ARGV[2], 1, 1)
local giveback = string.sub(ARGV[2], 2, 2) == 'R'
local cutoff = tonumber(ARGV[3])
for i = 4, #ARGV do
  local id = ARGV[i]
  local e = redis.call('HGET', KEYS[2], id)
  if e then
    local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
    if st == 'P' then
      redis.call('HSET', KEYS[2], id, state .. '|' .. q .. '|' .. at .. '|' .. u)
      if giveback and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], q) end
      if (state == 'F' or giveback) and redis.call('HINCRBY', KEYS[4], u, -tonumber(q)) <= 0 then
        redis.call('HDEL', KEYS[4], u)
      end
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZADD', KEYS[6], ARGV[1], id)
      n = n + 1
      changed = true
    elseif cutoff > 0 then
      local logged = redis.call('ZSCORE', KEYS[3], id)
      if logged and tonumber(logged) < cutoff then
        redis.call('ZREM', KEYS[3], id)
        changed = true
      end
    end
  end
end
if changed then redis.call('HINCRBY', KEYS[5], 'ver', 1) end
return {'SETTLED', n, 0}
