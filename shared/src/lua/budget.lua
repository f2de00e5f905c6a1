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
local nb, n = ARGV[2], 1
if string.sub(v, 1, 2) == '\1\0' then
  if string.sub(v, 5, 8) == string.sub(nb, 5, 8) then n = string.byte(v, 4) + 1 end
  v = string.sub(v, 13)
end
if n > tonumber(ARGV[3]) then return {'SPENT', tonumber(ARGV[4])} end
redis.call('HSET', KEYS[1], ARGV[1], string.sub(nb, 1, 3) .. string.char(n) .. string.sub(nb, 5) .. v)
return {'WITHIN'}
