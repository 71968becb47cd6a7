-- Count one booking (or take it back) on every period key of one board.
--
-- KEYS[1]      the set of event ids already applied to the board
-- KEYS[2..]    the board's period keys (one hash tag, so one slot on a cluster)
-- ARGV[1]      the member (an airport's IATA code)
-- ARGV[2]      the increment: 1 for a booking, -1 for a cancellation
-- ARGV[3]      the event id, or '' for write-through, which is never redelivered
-- ARGV[2 + i]  the TTL of KEYS[i] in seconds, for i >= 2 (0: no TTL)
--
-- Returns, per period key, its new score, or false for a key that does not exist;
-- or false alone for an event id seen before (a consumer that crashed before XACK
-- gets its events redelivered: they count once). A period key that does not exist is
-- left alone: an increment must not create a board of one member; the next read
-- rebuilds that board from the database, this booking included.
-- region: apply
if ARGV[3] ~= '' then
  if redis.call('SADD', KEYS[1], ARGV[3]) == 0 then return false end
  redis.call('EXPIRE', KEYS[1], 604800)
end
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    local score = redis.call('ZINCRBY', key, ARGV[2], ARGV[1])
    if tonumber(score) <= 0 then redis.call('ZREM', key, ARGV[1]) end
    local ttl = tonumber(ARGV[2 + i])
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    out[i - 1] = score
  else
    out[i - 1] = false
  end
end
return out
-- endregion: apply
