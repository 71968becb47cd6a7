#!lua
-- Every write to a session, login included (flightcache.patterns.session).
-- region: write
-- KEYS[1]   the session hash
-- ARGV[1]   "new": create the session (nothing written if the key exists);
--           "existing": change it (nothing written if it is gone: expired or logged out)
-- ARGV[2]   the session's lifetime in ms: PEXPIRE after every write (the sliding expiry)
-- ARGV[3]   page views to add (HINCRBY page_views), "0" for none
-- ARGV[4]   a device to add to the comma-separated field `devices` and to set as
--           `last_device`, "" for none
-- ARGV[5]   that device's browser fingerprint, added to the comma-separated field
--           `session_fingerprint` (the fingerprints this session accepts), "" for none
-- ARGV[6..] field, value pairs to HSET
-- Returns the page views after the write, or nil when nothing was written.
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[1] == 'new') == exists then return nil end
if #ARGV > 5 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
local function add(field, item)
  local list = redis.call('HGET', KEYS[1], field) or ''
  for x in string.gmatch(list, '[^,]+') do
    if x == item then return end
  end
  redis.call('HSET', KEYS[1], field, (list == '' and item) or (list .. ',' .. item))
end
if ARGV[4] ~= '' then
  add('devices', ARGV[4])
  redis.call('HSET', KEYS[1], 'last_device', ARGV[4])
end
if ARGV[5] ~= '' then add('session_fingerprint', ARGV[5]) end
local views = redis.call('HINCRBY', KEYS[1], 'page_views', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return views
-- endregion: write
