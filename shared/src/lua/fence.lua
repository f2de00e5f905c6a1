-- fence.lua: the first Redis step of a raise of a collection's cache shards
-- (docs/DESIGN.md#raising-cacheshards), on every shard of the layout raised to: while its buyers
-- are copied to their new home shards, nothing may change their records, and no stock may be
-- sold from the layout being left. One call on the shard's slot; run again, it changes nothing
-- more than the first time.
--
-- KEYS (all share the shard's hash tag {<prefix>:c:<collectionId>[:<shard>]}):
--   KEYS[1] stock  STRING the shard's stock key in the layout being left (named by its shard
--                         count; a shard new in the raise has none): deleted, so a Try routed
--                         by that layout answers NOCACHE, and the new layout's key is rebuilt
--                         from DynamoDB once the copy is done
--   KEYS[2] meta   HASH   fence: the shard count raised to, while the raise is under way
--                         (release.lua, settle.lua, intent.lua and rebuild.lua refuse while it
--                         is set); ver is bumped (a rebuild that read the shard before must not
--                         go ahead); cs: the shard count of the layout the shard is in, set
--                         when a raise ends there
-- ARGV[1] the shard count raised to
-- Returns {"FENCED"} | {"DONE"}: the raise ended here already (meta.cs, which unfencing sets, is
-- the count raised to or more): nothing changed, so a finisher that lags behind another never
-- fences a shard that sells again
local cs = redis.call('HGET', KEYS[2], 'cs')
if cs and tonumber(cs) >= tonumber(ARGV[1]) then return {'DONE'} end
redis.call('HSET', KEYS[2], 'fence', ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'ver', 1)
return {'FENCED'}
