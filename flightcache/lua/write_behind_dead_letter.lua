-- Write-behind: set a poison entry aside (flightcache.patterns.write_behind_dead_letters).
-- KEYS[1] the shard's queue (stream), KEYS[2] the shard's dead letters (stream); one hash tag
-- ARGV[1] consumer group, ARGV[2] entry id, ARGV[3] dead letters kept (MAXLEN ~),
-- ARGV[4..] the dead letter's field, value pairs
-- Returns 1 when the entry was pending and is now a dead letter, 0 when another
-- worker had acked it already (then nothing is added: one dead letter per entry).
-- region: dead-letter
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
end
return acked
-- endregion: dead-letter
