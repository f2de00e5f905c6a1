-- rebuild.lua: set one cache shard's stock from its stock buckets in DynamoDB, compare-and-set on the version read in a
-- snapshot taken before DynamoDB was read, so no concurrent settle or cancel is overwritten. Only
-- while the time index is empty: with a deduction or a cancel intent unsettled, DynamoDB's
-- saleable may or may not include it yet (persist commits before it settles, a cancel returns in
-- DynamoDB before Redis), so no stock computed from it is right. While the stock key is missing
-- only replays and cancels add to the index, so it empties within a reconciliation pass or two.
--
-- The caller's snapshot read the registered time slices and found some of them drained (nothing
-- unsettled logged there): those, unchanged, are all that may be registered now. Anything logged
-- since grew a slice or registered a new one.
--
-- Mode "unsettled" sets a missing stock key with unsettled entries: the caller read DynamoDB in one
-- transaction with their records and held back what each still moves. New slices may have been
-- registered since (a replay or relog.lua re-logging an entry changes no units; while the key is
-- missing a Try adds nothing; a settle, intent or release bumps ver), but every drained slice the
-- snapshot read must still be there, unchanged: one pruned under the snapshot's scan may have
-- hidden an unsettled entry that was re-logged elsewhere meanwhile. Its stock may be set below 0
-- (saleable less what is held back, when Redis had drifted high before the key was lost): the
-- give-backs to come then land exactly.
--
-- A shard move open from this shard (move_out.lua's record) has taken units that DynamoDB may not
-- have moved yet: no stock computed from DynamoDB is right until it is finished or called off.
-- While the collection's cache shards are being raised (meta has fence, fence.lua), the shard's
-- buyers may not all be here yet: no stock is set.
--
-- KEYS: [1] stock (units + STOCK_BIAS, see deduct.lua) [2] meta (HASH: ver, nb = the shard's
--       buyer bucket count; fence while a raise is under way) [3] slices [4] moves (move_out.lua's records) [5..] the drained slices
-- ARGV: [1] expected ver [2] stock to set (negative counts as 0, but for "unsettled") [3] mode:
--       "missing" (warm-up: leave a live stock key alone), "unsettled" (the same, unsettled
--       entries held back by the caller: new slices allowed, the drained ones still checked) or
--       "force" (repair drift) [4] bucket count
--       [5..] for each drained slice: "<number>:<length as read>"
-- Returns {"SET", stock} | {"LIVE", stock} (a live key left alone) | {"RACE"} | {"BUSY"} (slices,
-- an open move, or a raise under way)
redis.call('HSETNX', KEYS[2], 'nb', ARGV[4])
if (redis.call('HGET', KEYS[2], 'ver') or '0') ~= ARGV[1] then return {'RACE'} end
local live = redis.call('GET', KEYS[1])
if ARGV[3] ~= 'force' and live then return {'LIVE', tonumber(live) - STOCK_BIAS} end
if redis.call('HLEN', KEYS[4]) > 0 then return {'BUSY'} end
if redis.call('HEXISTS', KEYS[2], 'fence') == 1 then return {'BUSY'} end
if ARGV[3] ~= 'unsettled' and redis.call('ZCARD', KEYS[3]) ~= #KEYS - 4 then return {'BUSY'} end
for j = 5, #KEYS do
  local n, len = string.match(ARGV[j], '^(%-?%d+):(%d+)$')
  if not redis.call('ZSCORE', KEYS[3], n) or redis.call('STRLEN', KEYS[j]) ~= tonumber(len) then
    return {'BUSY'}
  end
end
local s = tonumber(ARGV[2])
if s < 0 and ARGV[3] ~= 'unsettled' then s = 0 end
redis.call('SET', KEYS[1], s + STOCK_BIAS)
redis.call('HINCRBY', KEYS[2], 'ver', 1)
return {'SET', s}
