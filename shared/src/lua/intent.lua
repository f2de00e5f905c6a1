-- intent.lua: a cancel is about to change DynamoDB; put the order back in the log so that
-- reconciliation finishes the Redis side if the cancel dies half-way.
--
-- KEYS: the collection's six keys, as in try.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] orderId [2] nowMs
-- Returns {"INTENT", 1, 0} when logged, {"INTENT", 0, 0} when there is nothing to give back.
local e = redis.call('HGET', KEYS[2], ARGV[1])
if not e then return {'INTENT', 0, 0} end
local st = string.sub(e, 1, 1)
if st ~= 'P' and st ~= 'S' then return {'INTENT', 0, 0} end
if st == 'S' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'INTENT', 1, 0}
