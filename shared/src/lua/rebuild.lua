-- rebuild.lua: set a collection's stock from DynamoDB, compare-and-set on the version read in a
-- snapshot taken before DynamoDB was read, so no concurrent settle or cancel is overwritten. Only
-- while the log is empty: with a deduction or a cancel intent in flight, DynamoDB's saleable may
-- or may not include it yet (persist commits before it settles, a cancel returns in DynamoDB
-- before Redis), so no stock computed from it is right. No Try can add to the log while the stock
-- key is missing, so the log empties within one persist or reconciliation pass.
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: [1] expected ver [2] stock to set (negative counts as 0) [3] mode: "missing" (warm-up:
--       leave a live stock key alone) or "force" (repair drift)
-- Returns {code, stock, 0}: {"SET", stock, 0} | {"LIVE", stock, 0} | {"RACE", 0, 0} | {"BUSY", 0, 0}
if (redis.call('HGET', KEYS[5], 'ver') or '0') ~= ARGV[1] then return {'RACE', 0, 0} end
local live = redis.call('GET', KEYS[1])
if ARGV[3] == 'missing' and live then return {'LIVE', tonumber(live), 0} end
if redis.call('ZCARD', KEYS[3]) > 0 then return {'BUSY', 0, 0} end
local s = tonumber(ARGV[2])
if s < 0 then s = 0 end
redis.call('SET', KEYS[1], s)
redis.call('HINCRBY', KEYS[5], 'ver', 1)
return {'SET', s, 0}
