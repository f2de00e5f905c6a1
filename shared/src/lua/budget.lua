-- budget.lua: spend one request of a buyer's budget on a cancel (a Try spends its request in
-- deduct.lua, in the same call that takes stock). The count lives with the buyer's records on
-- the collection (the budget record, first in the buyer's value: records.lua), so a buyer's
-- Tries and cancels on one collection share one fixed window, counted in the buyer's bucket.
--
-- KEYS[1] bucket  HASH  the buyer's bucket "{…}:u:<n>"
-- ARGV[1] the buyer, as stored
-- ARGV[2] the budget record of the current window counting 1 (12 bytes: its number and end)
-- ARGV[3] the budget: requests per window
-- ARGV[4] ms until the window ends
-- Returns {"WITHIN"} when the request is within the budget (counted), else {"SPENT", ms until
-- the window ends} (nothing changed).
local v = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local function d4(x, i)
  local b1, b2, b3, b4 = string.byte(x, i, i + 3)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end
-- The stored window, when it is this one or a later one (this instance's clock lags behind the
-- one that wrote it), counts on; an earlier one is over.
local nb, n, w = ARGV[2], 1, string.sub(ARGV[2], 5)
if string.sub(v, 1, 2) == '\1\0' then
  if d4(v, 5) >= d4(nb, 5) then n, w = string.byte(v, 4) + 1, string.sub(v, 5, 12) end
  v = string.sub(v, 13)
end
if n > tonumber(ARGV[3]) then return {'SPENT', tonumber(ARGV[4])} end
redis.call('HSET', KEYS[1], ARGV[1], '\1\0B' .. string.char(n) .. w .. v)
return {'WITHIN'}
