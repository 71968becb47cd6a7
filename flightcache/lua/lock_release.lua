-- The stampede lock's release (flightcache/patterns/lock.py): only its owner deletes it.
-- region: release
-- KEYS[1]: the lock key.
-- ARGV[1]: the caller's owner token.
-- Returns 1 if it deleted the lock, 0 if the lock is gone or holds another token:
-- a client whose lease ran out cannot delete the lock another client took after it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
-- endregion: release
