-- intent.lua: a cancel of a durable (RESERVED) order is about to change DynamoDB. The entry goes
-- (back) into the log, so that the release after DynamoDB returns the order's share exactly once
-- and reconciliation finishes the Redis side if the cancel dies half-way.
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] order ("<orderId>:<userId>") [2] nowMs and, from DynamoDB's record of the order, [3] qty [4] acceptedAtMs
--       [5] userId
-- Returns {"INTENT", 1, 0} when logged, {"INTENT", 0, 0} when there is nothing to give back
-- (the entry is cancelled or failed).
--
-- The entry is written (again) from the record, as settled: the caller read the durable record,
-- so the deduction is durable. A settle that arrives later (persist finishing, reconciliation)
-- then finds nothing pending and cannot take the entry out of the log under the cancel
-- (settle.lua only settles P entries and only clears intents older than reconciliation's
-- threshold). Redis may have forgotten the order (trimmed after the retention): the entry comes
-- back from the record. And the entry may be another deduction of the same order id (a replay
-- after Redis forgot it: its acceptedAt is not the record's): if still pending, that deduction's
-- units and its buyer's counter go back first, since DynamoDB never took them.
local e = redis.call('HGET', KEYS[2], ARGV[1])
if e then
  local st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
  if st ~= 'P' and st ~= 'S' then return {'INTENT', 0, 0} end
  if st == 'P' and at ~= ARGV[4] then
    if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], q) end
    if redis.call('HINCRBY', KEYS[4], u, -tonumber(q)) <= 0 then redis.call('HDEL', KEYS[4], u) end
  end
end
redis.call('HSET', KEYS[2], ARGV[1], 'S|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5])
redis.call('ZADD', KEYS[6], 'NX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'INTENT', 1, 0}
