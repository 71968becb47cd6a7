#!lua
-- Write-behind: accept one booking (flightcache.patterns.write_behind, WriteBehind.book).
-- KEYS[1] the shard's queue (stream), KEYS[2] the flight's counter (hash); one hash tag
-- ARGV[1] flight id, ARGV[2] seats booked
-- Returns {entry id, seats booked on the flight so far}.
-- The queue entry goes first: should HINCRBY fail (a wrong type, say), the booking
-- still reaches the database; the other order would show readers seats that never
-- arrive. The shebang (first line) makes Valkey refuse the whole script up front when
-- it is out of memory, instead of failing between the two writes.
-- region: book
local id = redis.call('XADD', KEYS[1], '*', 'flight', ARGV[1], 'seats', ARGV[2])
local booked = redis.call('HINCRBY', KEYS[2], 'seats', ARGV[2])
return {id, booked}
-- endregion: book
