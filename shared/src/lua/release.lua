-- release.lua: return one order's share to Redis, at most once (which also frees it from the
-- buyer's per-user limit: held units are counted from the records). Never returns more than the
-- order took, and never creates a missing stock key.
--
-- KEYS: [1] stock [2] meta [3] the buyer's bucket
-- ARGV: [1] order (a byte with the stored buyer's length minus one, the buyer, the order) [2] nowS
--       [3] "1" to write a tombstone where there is no record (a late Try of this buyer's order
--       is then refused), or "" [4] the caller's cache shard count
-- Returns one of:
--   {"RETURNED", qty}  given back now     {"ALREADY"}  given back before
--   {"FAILED"}         a FAILED order: its deduction is not returned blindly
--   {"ABSENT"}         no record (one was written as a tombstone when asked)
--   {"BUSY"}          the collection's cache shards are being raised (meta has fence): nothing
--                         changed; retry once the raise is done
--   {"LAYOUT"}        the caller routes by a cache shard count raised since (meta.cs, set when
--                         a raise ends, is another): nothing changed
--   {"UNLOGGED"}       a settled order with no cancel intent: not returned here. Every return
--                         goes through the time index, and drift repair only runs while it is
--                         empty, so the two can never both count the same units.
local m = redis.call('HMGET', KEYS[2], 'fence', 'cs')
if m[1] then return {'BUSY'} end
if m[2] and m[2] ~= ARGV[4] then return {'LAYOUT'} end
local u, okey = ident(ARGV[1])
local now = tonumber(ARGV[2])
local v = redis.call('HGET', KEYS[3], u)
local i, ol = find(v, okey)
if not i then
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], u, (v or '') .. rec(okey, 'C', 0, now, now)) end
  return {'ABSENT'}
end
local st = string.sub(v, i + ol, i + ol)
if st == 'C' then return {'ALREADY'} end
if st == 'F' then return {'FAILED'} end
if st == 'S' then return {'UNLOGGED'} end
local q = string.byte(v, i + ol + 1)
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], q) end
redis.call('HSET', KEYS[3], u, put(v, i, ol, rec(okey, 'C', q, d4(v, i + ol + 2), now)))
redis.call('HINCRBY', KEYS[2], 'ver', 1)
return {'RETURNED', q}
