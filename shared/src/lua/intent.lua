-- intent.lua: a cancel of a durable (RESERVED) order is about to change DynamoDB. The entry goes
-- (back) into the log, so that the release after DynamoDB returns the order's share exactly once
-- and reconciliation finishes the Redis side if the cancel dies half-way.
--
-- KEYS: the collection's six keys, as in try.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] orderId [2] nowMs [3] qty [4] acceptedAtMs [5] userId (DynamoDB's record: used to
--       write the entry again when Redis has forgotten it, e.g. trimmed after the retention)
-- Returns {"INTENT", 1, 0} when logged, {"INTENT", 0, 0} when there is nothing to give back
-- (the entry is cancelled or failed).
--
-- A pending entry becomes settled here: the caller read DynamoDB's record, so the deduction is
-- durable. A settle that arrives later (persist finishing, reconciliation) then finds nothing
-- pending and cannot take the entry out of the log under the cancel: settle.lua only settles P
-- entries and only clears intents older than reconciliation's threshold.
local e = redis.call('HGET', KEYS[2], ARGV[1])
local st, q, at, u = 'S', ARGV[3], ARGV[4], ARGV[5]
if e then
  st, q, at, u = string.match(e, '^(%u)|(%d+)|(%d+)|(.*)$')
  if st ~= 'P' and st ~= 'S' then return {'INTENT', 0, 0} end
end
if st ~= 'S' or not e then
  redis.call('HSET', KEYS[2], ARGV[1], 'S|' .. q .. '|' .. at .. '|' .. u)
  redis.call('ZADD', KEYS[6], 'NX', ARGV[2], ARGV[1])
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'INTENT', 1, 0}
