-- snapshot.lua: read one collection's counters atomically.
--
-- KEYS: the collection's six keys, as in reserve.lua (stock, orders, log, users, meta, done).
-- ARGV: none
-- Returns {hasStock (0/1), stock, pending, ver, logLength}; pending = units of the orders still
-- in state P, counted from the log (every P entry is in it), so the Try path keeps no counter.
local s = redis.call('GET', KEYS[1])
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
local pending = 0
for i = 1, #ids, 1000 do
  local es = redis.call('HMGET', KEYS[2], unpack(ids, i, math.min(i + 999, #ids)))
  for _, e in ipairs(es) do
    if e and string.sub(e, 1, 2) == 'P|' then pending = pending + tonumber(string.match(e, '^P|(%d+)|')) end
  end
end
return {s and 1 or 0, tonumber(s or '0'), pending, tonumber(redis.call('HGET', KEYS[5], 'ver') or '0'), #ids}
