-- settle.lua: record what DynamoDB decided for pending orders and drop them from the log.
--
-- KEYS: the collection's six keys, as in try.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] nowMs [2] target: "S" (durable) or "F" (refused by DynamoDB; the Redis deduction is
--       kept, since Redis had drifted high) [3] clearIntents "1"/"0": also drop the log entry of an
--       already settled order (a cancel intent whose cancel never reached DynamoDB) [4..] orderIds
-- Returns {"SETTLED", n, 0}: how many entries changed state.
local n = 0
local changed = false
for i = 4, #ARGV do
  local id = ARGV[i]
  local e = redis.call('HGET', KEYS[2], id)
  if e then
    local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
    if st == 'P' then
      redis.call('HSET', KEYS[2], id, ARGV[2] .. '|' .. q .. '|' .. at .. '|' .. u)
      if ARGV[2] == 'F' and redis.call('HINCRBY', KEYS[4], u, -tonumber(q)) <= 0 then
        redis.call('HDEL', KEYS[4], u)
      end
      redis.call('ZREM', KEYS[3], id)
      redis.call('ZADD', KEYS[6], ARGV[1], id)
      n = n + 1
      changed = true
    elseif ARGV[3] == '1' and redis.call('ZREM', KEYS[3], id) == 1 then
      changed = true
    end
  end
end
if changed then redis.call('HINCRBY', KEYS[5], 'ver', 1) end
return {'SETTLED', n, 0}
