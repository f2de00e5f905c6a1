-- turn.lua: a stock bucket's write turn: one DynamoDB transaction at a time on the bucket's item
-- (a persist consumer's chunk, a move, a tally, a cancel of RESERVED orders: one, or a timer
-- batch), the others wait for it.
-- Only a throughput aid: DynamoDB's conditional writes stay the guarantee, so a
-- turn that expires under its holder costs transaction conflicts (retried), never correctness.
--
-- KEYS[1] turn   STRING  "{…}:turn:<k>" (stock bucket k): the holder's id, expiring after the turn's time
-- ARGV[1] "take" (take it if free, or renew it if ours) | "give" (drop it if ours)
-- ARGV[2] the holder's id
-- ARGV[3] the turn's time, ms (take)
-- Returns, for take, {"TAKEN"} (the caller holds it) or {"HELD"} (another does); for give,
-- {"GIVEN"} or {"NOT_HELD"} (it was not the caller's).
local h = redis.call('GET', KEYS[1])
if ARGV[1] == 'give' then
  if h == ARGV[2] then redis.call('DEL', KEYS[1]); return {'GIVEN'} end
  return {'NOT_HELD'}
end
if not h then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return {'TAKEN'}
end
if h == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'TAKEN'}
end
return {'HELD'}
