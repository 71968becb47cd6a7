-- Every write of an airline row to Valkey (flightcache/patterns/write_through.py):
-- a reader's fill after a miss, and a writer's write after its COMMIT.
-- region: fill
-- KEYS[1]   the airline hash
-- KEYS[2]   its version counter (same hash tag: one slot)
-- ARGV[1]   the version the caller saw: a reader's before its SELECT, a writer's INCR
--           before its COMMIT
-- ARGV[2]   "1" for a writer: INCR the version too, so that a reader that saw the
--           writer's version (it read the row before the COMMIT) cannot fill after this
-- ARGV[3]   the hash's TTL in seconds
-- ARGV[4..] field, value pairs: the row
-- Returns 1 if it wrote the row; 0 if the version moved since the caller saw it: a
-- writer came after, and the caller's row may be older than what is committed now.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('INCR', KEYS[2]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
-- endregion: fill
