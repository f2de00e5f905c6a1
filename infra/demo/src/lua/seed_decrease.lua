-- seed_decrease.lua: the REFERENCE the Try is measured against (benchmarks only, never deployed):
-- a rendering of the seed design's Redis decrease as it is described there — a per-item stock
-- string and a per-item deduction-log hash with one JSON entry per order.
--
-- KEYS: [1] the item's stock (STRING) [2] the item's deduction log (HASH orderId -> JSON entry)
-- ARGV: [1] orderId [2] quantity [3] userId
-- Returns {"OK", stockLeft} | {"REPLAY", 0} | {"SOLDOUT", stock}
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {'REPLAY', 0} end
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
local q = tonumber(ARGV[2])
if s < q then return {'SOLDOUT', s} end
redis.call('SET', KEYS[1], s - q)
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({
  action = 'decrease', from = s, to = s - q, change = q, by = ARGV[3],
  timestamp = t[1] * 1000 + math.floor(t[2] / 1000),
}))
return {'OK', s - q}
