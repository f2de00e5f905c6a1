-- settle.lua: record what DynamoDB decided for pending orders.
--
-- KEYS: [1] stock [2] meta (HASH: ver) [3..] the bucket of each order, in ARGV's order
-- ARGV: [1] nowS
--       [2] target: "S" durable; "F" refused by DynamoDB (the Redis deduction is kept: Redis had
--           drifted high, reconciliation re-syncs it); "SR" / "FR" the same, and this deduction's
--           units go back (DynamoDB decided the order from an earlier deduction: a replay after
--           Redis forgot it)
--       [3] clear-intents cutoff s, or 0: also settle an order whose cancel intent was logged
--           before the cutoff (the intent of a cancel that died before DynamoDB; a live
--           cancel's intent is younger than reconciliation's threshold and stays)
--       [4] the caller's cache shard count
--       [5..] orders: a byte with the stored buyer's length minus one, the buyer, the order
-- Returns {"SETTLED", n}: how many pending orders changed state; {"BUSY"} (nothing changed) while
-- the collection's cache shards are being raised (meta has fence); {"LAYOUT"} (nothing changed)
-- when the caller routes by a cache shard count raised since (meta.cs is another).
local m = redis.call('HMGET', KEYS[2], 'fence', 'cs')
if m[1] then return {'BUSY'} end
if m[2] and m[2] ~= ARGV[4] then return {'LAYOUT'} end
local now = tonumber(ARGV[1])
local state = string.sub(ARGV[2], 1, 1)
local giveback = string.sub(ARGV[2], 2, 2) == 'R'
local cutoff = tonumber(ARGV[3])
local n, changed = 0, false
for j = 5, #ARGV do
  local bucket = KEYS[j - 2]
  local u, okey = ident(ARGV[j])
  local v = redis.call('HGET', bucket, u)
  local i, ol = find(v, okey)
  if i then
    local st = string.sub(v, i + ol, i + ol)
    local q = string.byte(v, i + ol + 1)
    local at = d4(v, i + ol + 2)
    if st == 'P' then
      if giveback and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], q) end
      redis.call('HSET', bucket, u, put(v, i, ol, rec(okey, state, q, at, now)))
      n = n + 1
      changed = true
    elseif st == 'I' and cutoff > 0 and d4(v, i + ol + 6) < cutoff then
      redis.call('HSET', bucket, u, put(v, i, ol, rec(okey, 'S', q, at, now)))
      changed = true
    end
  end
end
if changed then redis.call('HINCRBY', KEYS[2], 'ver', 1) end
return {'SETTLED', n}
