-- prune.lua: drop a time slice that reconciliation found holding no pending order and no cancel
-- intent logged in it — unless it grew since it was read (an order was logged in it meanwhile).
-- Only slices that ended well before reconciliation's cutoff are pruned: no writer logs there
-- any more, so a slice cannot be dropped, re-created at the same length and dropped again by a
-- second, concurrent run that read it before.
--
-- KEYS: [1] slices [2] the slice
-- ARGV: [1] slice number [2] its length when read
-- Returns {"PRUNED"} when dropped, {"GREW"} when it grew since it was read (left alone).
if redis.call('STRLEN', KEYS[2]) ~= tonumber(ARGV[2]) then return {'GREW'} end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return {'PRUNED'}
