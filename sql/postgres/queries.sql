-- Named queries, PostgreSQL dialect. The same names exist in
-- sql/mysql/queries.sql. Parameters are %(name)s.

-- name: meta_get
SELECT name, value FROM flightcache_meta;

-- name: meta_set
INSERT INTO flightcache_meta (name, value) VALUES (%(name)s, %(value)s)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;

-- name: meta_delete
DELETE FROM flightcache_meta WHERE name = %(name)s;

-- name: airline_route_analysis
-- The workshop's expensive query: airlines by the number of routes they fly.
-- 001 joins a `route` table and a `flight.from_airport` column that FlughafenDB
-- does not have. On the real schema a route is a distinct ("from", "to") pair of
-- the flights an airline operates, and the third table joined is airport_geo,
-- which adds how many countries each airline reaches.
SELECT
    al.airlinename AS airline_name,
    al.iata AS airline_code,
    COUNT(DISTINCT (f."from", f."to")) AS total_routes,
    COUNT(DISTINCT f."to") AS destinations,
    COUNT(DISTINCT g.country) AS countries,
    COUNT(*) AS flights
FROM airline al
JOIN flight f ON f.airline_id = al.airline_id
JOIN airport_geo g ON g.airport_id = f."to"
WHERE al.iata IS NOT NULL
GROUP BY al.airline_id, al.airlinename, al.iata
ORDER BY total_routes DESC, al.iata
LIMIT 10;

-- name: flight_ids
-- Every flight id, for a request stream over real ids (flightcache hit-ratio).
SELECT flight_id FROM flight ORDER BY flight_id;

-- name: flight_by_id
-- One flight row: the cheap query behind a cache-aside read by id.
SELECT flight_id, flightno, "from", "to", departure, arrival, airline_id, airplane_id
FROM flight
WHERE flight_id = %(flight_id)s;

-- name: booking_records
-- The first bookings with their flight and passenger name: one cache value each
-- (flightcache eviction).
SELECT
    b.booking_id, b.flight_id, b.seat, b.price, b.passenger_id,
    p.firstname, p.lastname, f.flightno, f."from", f."to", f.departure
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN passenger p ON p.passenger_id = b.passenger_id
ORDER BY b.booking_id
LIMIT %(limit)s;
