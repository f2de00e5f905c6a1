-- trim.lua: forget orders settled long ago, so the records stay bounded. Replays of such old
-- orders are then answered from DynamoDB's record (persist refuses a second deduction). Never
-- forgets an order that is pending or has a cancel intent, nor, with `keep`, a durable one (its
-- units count toward the buyer's per-user limit). A budget record whose window ended before the
-- cutoff is dropped too (not counted: it is no order).
--
-- KEYS: [1..] buckets
-- ARGV: [1] changed-before s [2] "1" to keep durable (S) records, or ""
-- Returns {"TRIMMED", n}: how many records were dropped.
local cutoff, keep = tonumber(ARGV[1]), ARGV[2] == '1'
local n = 0
for _, bucket in ipairs(KEYS) do
  local all = redis.call('HGETALL', bucket)
  for j = 1, #all, 2 do
    local v, out, i = all[j + 1], {}, 1
    while i <= #v do
      local k = string.byte(v, i)
      local ol = (k == 0) and 17 or (1 + k)
      local st = string.sub(v, i + ol, i + ol)
      local old = d4(v, i + ol + 6) < cutoff
      if old and st == 'B' then
        -- a spent window's count
      elseif old and (st == 'C' or st == 'F' or (st == 'S' and not keep)) then
        n = n + 1
      else
        out[#out + 1] = string.sub(v, i, i + ol + 9)
      end
      i = i + ol + 10
    end
    if #out == 0 then
      redis.call('HDEL', bucket, all[j])
    elseif #table.concat(out) ~= #v then
      redis.call('HSET', bucket, all[j], table.concat(out))
    end
  end
end
return {'TRIMMED', n}
