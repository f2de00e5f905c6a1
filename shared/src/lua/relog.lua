-- relog.lua: reconciliation is re-sending the messages of pending orders DynamoDB has no
-- record of. Each is logged again at logAt (now, or later to defer the next look at it: that
-- comes a whole threshold after logAt); an order a concurrent run or a replay re-logged
-- meanwhile, or that settled, is left alone (and not re-sent twice).
--
-- KEYS: [1] the time slice of logAt [2] slices [3..] the bucket of each order, in ARGV's order
-- ARGV: [1] logAt s [2] cutoff s: only an order last logged before it is re-logged
--       [3] logAt's slice number
--       [4..] per order: its bucket's number (2 bytes), then a byte with the stored buyer's length minus one, the
--             buyer, the order
-- Returns {"RELOGGED", flags}: flags is a string of a byte per order, "1" re-logged (pending, logged before the cutoff),
-- "0" not (settled, cancelled, unknown, or logged since).
local now, cutoff = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for j = 4, #ARGV do
  local bucket = KEYS[j - 1]
  local u, okey = ident(string.sub(ARGV[j], 3))
  local v = redis.call('HGET', bucket, u)
  local i, ol = find(v, okey)
  local done = '0'
  if i and string.sub(v, i + ol, i + ol) == 'P' and d4(v, i + ol + 6) < cutoff then
    redis.call('HSET', bucket, u, string.sub(v, 1, i + ol + 5) .. e4(now) .. string.sub(v, i + ol + 10))
    logged(KEYS[1], KEYS[2], ARGV[3], string.sub(ARGV[j], 1, 2))
    done = '1'
  end
  out[#out + 1] = done
end
return {'RELOGGED', table.concat(out)}
