-- records.lua: prepended to the scripts that read records (settle, relog, intent, release, trim,
-- adopt;
-- deduct.lua reads them on its own, off a first order's accepting path). A buyer's orders on a collection are packed records, concatenated in one field of one
-- bucket hash: KEYS[...] "{…}:u:<bucket>", field = the buyer (a byte k, then 16 bytes of a
-- canonical UUID when k = 0, else k bytes of the id as given), value = records, each
--   order  a byte k, then 16 bytes of a canonical ULID when k = 0, else k bytes as given
--   state  1 byte: P pending (in the time index), I settled with a cancel intent (in the time
--          index), S settled (durable), C cancelled or a tombstone, F failed
--   qty    1 byte (0 for a tombstone)
--   at     4 bytes, big-endian: accepted, epoch seconds
--   lg     4 bytes, big-endian: last change, epoch seconds (for P and I: when it entered the
--          time index, so the time slice "{…}:t:<lg / 10>" lists its bucket)
-- A value may open with the buyer's budget record, in the same layout (12 bytes) so that every
-- walk over the records steps over it: order "\1\0" (no order id is a NUL byte), state B, qty =
-- the requests made in the window (1-255), at = the window's number, lg = when it ends, epoch
-- seconds. deduct.lua and budget.lua keep it first; trim.lua drops it once its window is old.
local function d4(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local function e4(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end
-- The record of order `okey` in `v`: its start and the length of its order part.
local function find(v, okey)
  if not v then return nil end
  local i = 1
  while i <= #v do
    local k = string.byte(v, i)
    local n = (k == 0) and 17 or (1 + k)
    if n == #okey and string.sub(v, i, i + n - 1) == okey then return i, n end
    i = i + n + 10
  end
end
local function rec(okey, st, q, at, lg)
  return okey .. st .. string.char(q) .. e4(at) .. e4(lg)
end
local function put(v, i, n, r)
  return string.sub(v, 1, i - 1) .. r .. string.sub(v, i + n + 10)
end
-- An order argument: a byte with the stored buyer's length minus one (it may be 256), the buyer,
-- then the order.
local function ident(a)
  local ul = string.byte(a, 1) + 1
  return string.sub(a, 2, 1 + ul), string.sub(a, 2 + ul)
end
-- Lists a bucket (its 2-byte number) in the time slice, registering the slice when this made it.
local function logged(slice_key, slices_key, slice, b)
  if redis.call('APPEND', slice_key, b) == 2 then redis.call('ZADD', slices_key, slice, slice) end
end
