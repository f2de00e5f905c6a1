-- deduct.lua: take stock for one order, atomically and idempotently, and spend one request of
-- the buyer's budget (the Try hot path: the Try's one Redis call). One call on the collection's
-- slot; everything Redis keeps about an order and its buyer is in that slot.
--
-- KEYS (all share the collection's hash tag {<prefix>:c:<collectionId>}):
--   KEYS[1] stock    STRING units Redis may still sell, plus STOCK_BIAS (a take on a missing
--                           key, which Redis starts from 0, lands below 0 and is told from a
--                           sold-out one); missing = cache not ready. STOCK_BIAS is defined
--                           once, in the adapter (scripts.rs), which prepends it to every script
--   KEYS[2] bucket   HASH   the buyer's bucket "…:u:<n>": buyer -> the buyer's value, packed
--                           records (the format, budget record included, is in records.lua)
--   KEYS[3] slice    STRING the current time slice "…:t:<now / 10 s>": the 2-byte numbers of
--                           the buckets whose buyers logged an order in it (the time index
--                           reconciliation reads)
--   KEYS[4] slices   ZSET   the time slices that exist, by number
-- ARGV[1], packed by the adapter: a byte ul - 1, a byte vl, the bucket's number (2 bytes), the
--   buyer (ul bytes: up to 256, a 255-character subject and its length byte), a new buyer's
--   value (vl bytes: with a budget, the budget record of this window counting 1, then this
--   order's new record: state P, qty, acceptedAt = loggedAt = now), then
--   "<limit>,<budget>,<wait ms>,<staleBefore s>,<slice>" (limit 0 = none; budget = requests per
--   window, 0 = none; wait = ms until the window ends; a pending order accepted before
--   staleBefore may be under reconciliation's give-up; a younger one it only re-sends).
-- Returns (the reply convention is in replies.rs): stockLeft, a bare integer, when taken now (the
-- hot path's cheapest reply, the one exception to {code, values...}); or else
--   {"BUDGET", wait ms}                 the buyer's budget for this window is spent (nothing else
--                                       is looked at or changed)
--   {"REPLAY_<P|S|F>", acceptedAt s}    this buyer's order id with the same qty, seen before
--   {"REPLAY_STALE", acceptedAt s}      a replay of a pending order reconciliation may be giving
--                                       up: the caller re-sends but must not promise the order
--   A fresh replay of a pending order is logged again now (its re-sent message gets a
--   whole threshold before reconciliation looks at it); a stale one is left as it is.
--   {"CANCELLED"}                       this buyer's order id has a cancel tombstone
--   {"MISMATCH"}                        this buyer's order id seen with another qty
--   {"NOCACHE"} | {"SOLDOUT"} | {"INSUFFICIENT", stock} | {"LIMIT", held}
-- The accepting path for a buyer's first order is DECRBY, HSETNX, APPEND: stock is taken first
-- and given back on the rare refusal, the budget record is written with the order (its first
-- request), and the per-user limit needs no call there (the caller refuses qty > limit before
-- calling; held is otherwise counted from the buyer's records). A known buyer's is DECRBY,
-- HSETNX, HGET, APPEND, HSET: a take that left enough stock is kept while the records are read
-- and given back unless a new order is taken (a replay gives it back too). Redis does not undo a
-- script's writes on an error: a runtime error after a kept take (only a malformed stored value
-- could cause one; no script writes one) would leave Redis low by qty, an undersell, never an
-- oversell, until drift repair. A known buyer's Try spends a
-- request first, whatever it is answered; one of a buyer Redis holds nothing for and who is
-- refused for stock (or no cache) writes nothing and spends nothing. An order seen before
-- answers from its record, whatever the stock.
local a = ARGV[1]
local ul, vl = string.byte(a, 1, 2)
ul = ul + 1
local u = string.sub(a, 5, 4 + ul)
local r = string.sub(a, 5 + ul, 4 + ul + vl)
local q = string.byte(r, vl - 8)
local t = redis.call('DECRBY', KEYS[1], q)
if t >= STOCK_BIAS and redis.call('HSETNX', KEYS[2], u, r) == 1 then
  if redis.call('APPEND', KEYS[3], string.sub(a, 3, 4)) == 2 then
    local slice = string.match(a, ',(%d+)$', 5 + ul + vl)
    redis.call('ZADD', KEYS[4], slice, slice)
  end
  return t - STOCK_BIAS
end
-- s is the stock before the take (nil when the key was missing). A take that left enough (the
-- buyer is known: HSETNX found the buyer) is kept until the answer is known; any other is given
-- back now.
local s, kept
if t < 0 then
  redis.call('DEL', KEYS[1])
elseif t < STOCK_BIAS then
  s = redis.call('INCRBY', KEYS[1], q) - STOCK_BIAS
else
  s, kept = t - STOCK_BIAS + q, true
end
-- Not the first order of this buyer, or not enough stock: read the buyer's records.
local v = redis.call('HGET', KEYS[2], u)
if not v then
  -- An unknown buyer here was refused for stock (with enough, HSETNX above took it).
  if not s then return {'NOCACHE'} end
  if s <= 0 then return {'SOLDOUT'} end
  return {'INSUFFICIENT', s}
end
local lim, budget, wait, stale, slice =
  string.match(string.sub(a, 5 + ul + vl), '^(%d+),(%d+),(%d+),(%d+),(%d+)$')
local b = string.sub(a, 3, 4)
-- The budget record (12 bytes, first in a value when there is one): the new one of this window,
-- and the buyer's stored one, taken off v; r becomes the order's record alone.
local head, nb = '', ''
if string.sub(r, 1, 2) == '\1\0' then nb = string.sub(r, 1, 12); r = string.sub(r, 13) end
if string.sub(v, 1, 2) == '\1\0' then head = string.sub(v, 1, 12); v = string.sub(v, 13) end
local rl = #r
local function d4(x, i)
  local b1, b2, b3, b4 = string.byte(x, i, i + 3)
  return ((b1 * 256 + b2) * 256 + b3) * 256 + b4
end
local spent = false
-- Answers, giving a kept take back unless the order is taken, and writing the buyer's value
-- back: nv when it changed, else the spent budget alone (head and spent as they are by then).
local function answer(reply, nv, taken)
  if kept and not taken then redis.call('INCRBY', KEYS[1], q) end
  if nv or spent then redis.call('HSET', KEYS[2], u, head .. (nv or v)) end
  return reply
end
if tonumber(budget) > 0 then
  -- The stored window, when it is this one or a later one (this instance's clock lags behind the
  -- one that wrote it), counts on; an earlier one is over.
  local n, w = 1, string.sub(nb, 5)
  if head ~= '' and d4(head, 5) >= d4(nb, 5) then n, w = string.byte(head, 4) + 1, string.sub(head, 5) end
  if n > tonumber(budget) then return answer({'BUDGET', tonumber(wait)}) end
  head = '\1\0B' .. string.char(n) .. w
  spent = true
end
local okey = string.sub(r, 1, rl - 10)
local held = 0
do
  local i = 1
  while i <= #v do
    local k = string.byte(v, i)
    local n = (k == 0) and 17 or (1 + k)
    local st = string.sub(v, i + n, i + n)
    local rq = string.byte(v, i + n + 1)
    if n == #okey and string.sub(v, i, i + n - 1) == okey then
      if st == 'C' then return answer({'CANCELLED'}) end
      if rq ~= q then return answer({'MISMATCH'}) end
      local at = d4(v, i + n + 2)
      if st == 'P' then
        if at < tonumber(stale) then return answer({'REPLAY_STALE', at}) end
        -- log it again now: the new record's loggedAt is now
        if redis.call('APPEND', KEYS[3], b) == 2 then redis.call('ZADD', KEYS[4], slice, slice) end
        return answer({'REPLAY_P', at}, string.sub(v, 1, i + n + 5) .. string.sub(r, rl - 3) .. string.sub(v, i + n + 10))
      end
      if st == 'I' then st = 'S' end
      return answer({'REPLAY_' .. st, at})
    end
    if st == 'P' or st == 'S' or st == 'I' then held = held + rq end
    i = i + n + 10
  end
end
if not s then return answer({'NOCACHE'}) end
if s <= 0 then return answer({'SOLDOUT'}) end
if s < q then return answer({'INSUFFICIENT', s}) end
lim = tonumber(lim)
if lim > 0 and held + q > lim then return answer({'LIMIT', held}) end
-- Taken, by the kept take: a take that left too little was given back and refused above.
if redis.call('APPEND', KEYS[3], b) == 2 then redis.call('ZADD', KEYS[4], slice, slice) end
return answer(s - q, v .. r, true)
