-- budget.lua: spend one request of a buyer's budget (a fixed window, shared by every instance).
--
-- KEYS[1] budget  STRING  "<prefix>:b:<buyer>": requests made in the current window; it expires
--                         when the window ends (one key alone: Redis Cluster safe as it is)
-- ARGV[1] the budget: requests per window
-- ARGV[2] the window, in milliseconds
-- Returns {"WITHIN"} when the request is within the budget, else {"SPENT", ms until the window
-- ends}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return {'WITHIN'} end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  -- a counter without an expiry (it cannot stay one): start its window now
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {'SPENT', left}
