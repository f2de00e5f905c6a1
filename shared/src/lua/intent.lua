-- intent.lua: a cancel of a durable (RESERVED) order is about to change DynamoDB. The order goes
-- (back) into the time index as I, so that the release after DynamoDB returns its share exactly
-- once and reconciliation finishes the Redis side if the cancel dies half-way.
--
-- KEYS: [1] stock [2] meta [3] the buyer's bucket [4] the current time slice [5] slices
-- ARGV: [1] order (a byte with the stored buyer's length minus one, the buyer, the order) [2] nowS and, from
--       DynamoDB's record of the order, [3] qty [4] acceptedAt s; [5] the current slice number
--       [6] the bucket's number (2 bytes) [7] the caller's cache shard count
-- Returns {"LOGGED"}, or {"CLOSED"} when there is nothing to give back (the order is cancelled
-- or failed); {"BUSY"} (nothing changed) while the collection's cache shards are being raised
-- (meta has fence); {"LAYOUT"} (nothing changed) when the caller routes by a cache shard count
-- raised since (meta.cs, set when a raise ends, is another).
--
-- The record is written (again) from DynamoDB's: the caller read the durable record, so the
-- deduction is durable. A settle that arrives later (persist finishing, reconciliation) then
-- finds nothing pending and cannot take the order out of the index under the cancel. Redis may
-- have forgotten the order (trimmed after the retention): the record comes back. And the record
-- may be another deduction of the same order (a replay after Redis forgot it: its acceptedAt is
-- not DynamoDB's): if still pending, that deduction's units go back first, since DynamoDB never
-- took them.
local m = redis.call('HMGET', KEYS[2], 'fence', 'cs')
if m[1] then return {'BUSY'} end
if m[2] and m[2] ~= ARGV[7] then return {'LAYOUT'} end
local u, okey = ident(ARGV[1])
local now, q, at = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local v = redis.call('HGET', KEYS[3], u)
local i, ol = find(v, okey)
local r = rec(okey, 'I', q, at, now)
if i then
  local st = string.sub(v, i + ol, i + ol)
  if st == 'C' or st == 'F' then return {'CLOSED'} end
  if st == 'P' and d4(v, i + ol + 2) ~= at and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('INCRBY', KEYS[1], string.byte(v, i + ol + 1))
  end
  redis.call('HSET', KEYS[3], u, put(v, i, ol, r))
else
  redis.call('HSET', KEYS[3], u, (v or '') .. r)
end
logged(KEYS[4], KEYS[5], ARGV[5], ARGV[6])
redis.call('HINCRBY', KEYS[2], 'ver', 1)
return {'LOGGED'}
