-- trim.lua: forget orders settled long ago, so the per-order entries stay bounded. Replays of
-- such old orders are then answered from DynamoDB's record (persist refuses a second deduction).
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] settled-before ms [2] limit
-- Returns {"TRIMMED", n, 0}.
local ids = redis.call('ZRANGE', KEYS[6], '-inf', '(' .. ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local e = redis.call('HGET', KEYS[2], id)
  -- never forget an entry that is back in the log (a cancel in flight)
  if redis.call('ZSCORE', KEYS[3], id) == false then
    if e then redis.call('HDEL', KEYS[2], id) end
    redis.call('ZREM', KEYS[6], id)
  end
end
return {'TRIMMED', #ids, 0}
