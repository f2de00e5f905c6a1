-- adopt.lua: a raise of a collection's cache shards copies each buyer whose home shard changed
-- into the new one (docs/DESIGN.md#raising-cacheshards), while both shards are fenced
-- (fence.lua). One call on the receiving shard's slot, for a batch of its buyers; run again, it
-- changes nothing.
--
-- KEYS (all share the receiving shard's hash tag {<prefix>:c:<collectionId>[:<shard>]}):
--   KEYS[1] meta    HASH   nb, the shard's buyer bucket count (set by the caller before); fence
--   KEYS[2] slices  ZSET   the time slices that exist, by number
--   KEYS[3] slice   STRING the current time slice: lists the buckets of buyers with unsettled
--                          entries (their loggedAt was set to now by the caller, so this slice
--                          is where the time index finds them)
--   KEYS[4..] the buyer buckets written ("…:u:<n>")
-- ARGV[1] the current slice's number, ARGV[2] the count raised to, then per buyer four
--   arguments: the index of its bucket
--   in KEYS, the buyer as stored, its value (records.lua), and its bucket's 2-byte number when
--   it has a P or I entry (else "").
-- A buyer already here (a cancel's budget.lua or an empty rollback's tombstone, written by a
-- function that routed by the new layout before the fence, or budget.lua, which takes no fence,
-- during it) keeps what is here: the copy adds
-- only the records of orders not here, and the budget record here wins.
-- Returns {"ADOPTED", n}: the buyers written or merged; {"DONE"}: the shard is not fenced for
-- this raise (another finisher ended it), nothing written.
local function split(v)
  if string.sub(v, 1, 2) == '\1\0' then return string.sub(v, 1, 12), string.sub(v, 13) end
  return '', v
end
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then return {'DONE'} end
local n = 0
for j = 3, #ARGV, 4 do
  local bucket, u, v, b = KEYS[tonumber(ARGV[j])], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  local here = redis.call('HGET', bucket, u)
  if here ~= v then
    if here then
      local hh, hb = split(here)
      local vh, vb = split(v)
      local out, i = hb, 1
      while i <= #vb do
        local k = string.byte(vb, i)
        local ol = (k == 0) and 17 or (1 + k)
        if not find(hb, string.sub(vb, i, i + ol - 1)) then out = out .. string.sub(vb, i, i + ol + 9) end
        i = i + ol + 10
      end
      v = ((hh ~= '') and hh or vh) .. out
    end
    redis.call('HSET', bucket, u, v)
    n = n + 1
  end
  if b ~= '' then logged(KEYS[3], KEYS[2], ARGV[1], b) end
end
return {'ADOPTED', n}
