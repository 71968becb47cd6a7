-- The stampede lock's renewal (flightcache/patterns/lock.py): only its owner extends it.
-- region: renew
-- KEYS[1]: the lock key.
-- ARGV[1]: the caller's owner token.
-- ARGV[2]: the new lease, ms from now.
-- Returns 1 if it renewed the lease, 0 if the lock is gone or holds another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
-- endregion: renew
