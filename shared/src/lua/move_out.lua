-- move_out.lua: the donor's side of a shard move (units carried from one of a collection's cache
-- shards to another, docs/DESIGN.md#shard-moves): take them with a record of the move, forget the
-- record once the recipient has them, or give them back when the move is called off. One call on
-- the donor shard's slot.
--
-- KEYS (all share the donor shard's hash tag {<prefix>:c:<collectionId>[:<shard>]}):
--   KEYS[1] stock  STRING units + STOCK_BIAS (see deduct.lua); missing = cache not ready
--   KEYS[2] meta   HASH   ver is bumped whenever stock or a record changes here (a rebuild's
--                         guard); mo counts the moves taken from this shard (a Try's guard
--                         against units hopping between shards while it looks: shard_level.lua)
--   KEYS[3] moves  HASH   move id -> "<to shard>,<units>,<taken at s>": moves taken from this
--                         shard and not yet known to be in the recipient (rebuild.lua refuses
--                         while any is open)
-- ARGV[1] mode, ARGV[2] move id, then for "out": ARGV[3] the recipient shard, ARGV[4] units
--   wanted, ARGV[5] the least units worth moving, ARGV[6] now (s); last, every mode: the
--   caller's cache shard count.
-- Returns:
--   out:  {"OUT", units} took min(wanted, stock) (at least the least), recorded the move and
--         counted it in mo
--         | {"SHORT", stock} fewer than the least here, nothing taken | {"NOCACHE"}
--   done: {"DONE"} the record forgotten, ver bumped (a rebuild that read this shard's stock before
--         and DynamoDB after the move committed must not go ahead) | {"ABSENT"} (forgotten before)
--   back: {"BACK", units} given back and forgotten | {"ABSENT"} | {"FORGOTTEN"} the stock key
--         is missing: the record is forgotten, nothing given (a rebuild counts the units, which
--         never left the donor's buckets in DynamoDB)
--   any:  {"LAYOUT"} the caller routes by a cache shard count raised since (meta.cs, set when a
--         raise ends, is another): nothing changed
local mode, id = ARGV[1], ARGV[2]
local cs = redis.call('HGET', KEYS[2], 'cs')
if cs and cs ~= ARGV[#ARGV] then return {'LAYOUT'} end
if mode == 'out' then
  local s = redis.call('GET', KEYS[1])
  if not s then return {'NOCACHE'} end
  s = tonumber(s) - STOCK_BIAS
  local least = tonumber(ARGV[5])
  if s < least then return {'SHORT', s} end
  local units = math.min(tonumber(ARGV[4]), s)
  redis.call('DECRBY', KEYS[1], units)
  redis.call('HSET', KEYS[3], id, ARGV[3] .. ',' .. units .. ',' .. ARGV[6])
  redis.call('HINCRBY', KEYS[2], 'ver', 1)
  redis.call('HINCRBY', KEYS[2], 'mo', 1)
  return {'OUT', units}
end
local rec = redis.call('HGET', KEYS[3], id)
if not rec then return {'ABSENT'} end
redis.call('HDEL', KEYS[3], id)
redis.call('HINCRBY', KEYS[2], 'ver', 1)
if mode == 'done' then return {'DONE'} end
-- back
if redis.call('EXISTS', KEYS[1]) == 0 then return {'FORGOTTEN'} end
local units = tonumber(string.match(rec, '^%d+,(%d+),'))
redis.call('INCRBY', KEYS[1], units)
return {'BACK', units}
