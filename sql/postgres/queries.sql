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

-- name: airline_by_id
SELECT airline_id, iata, airlinename, base_airport FROM airline WHERE airline_id = %(airline_id)s;

-- name: airline_by_iata
SELECT airline_id, iata, airlinename, base_airport FROM airline WHERE iata = %(iata)s;

-- name: airline_some_codes
-- A few codes to suggest when an --airline matches nothing.
SELECT iata FROM airline ORDER BY airline_id LIMIT 5;

-- name: airline_ids_by_iata
SELECT airline_id, iata FROM airline WHERE iata = ANY(%(codes)s);

-- name: airline_rename
UPDATE airline SET airlinename = %(name)s WHERE airline_id = %(airline_id)s;

-- name: airline_detail
-- One airline with its base airport and the size of its fleet.
SELECT
    al.airline_id,
    al.iata,
    al.airlinename,
    ap.iata AS base_iata,
    ap.name AS base_airport,
    g.city AS base_city,
    g.country AS base_country,
    (SELECT COUNT(*) FROM airplane p WHERE p.airline_id = al.airline_id) AS fleet
FROM airline al
JOIN airport ap ON ap.airport_id = al.base_airport
LEFT JOIN airport_geo g ON g.airport_id = al.base_airport
WHERE al.airline_id = %(airline_id)s;

-- name: flight_default
-- A flight worth looking at: the first one with a delay in flight_log, else the first.
SELECT COALESCE((SELECT MIN(flight_id) FROM flight_log), (SELECT MIN(flight_id) FROM flight))
    AS flight_id;

-- name: flight_id_range
SELECT MIN(flight_id) AS lowest, MAX(flight_id) AS highest FROM flight;

-- name: flight_aircraft
-- Nested doll, static layer: the airplane that flies the flight.
SELECT
    f.airplane_id,
    p.capacity,
    t.identifier AS aircraft_type,
    t.description,
    al.iata AS operator_code,
    al.airlinename AS operator
FROM flight f
LEFT JOIN airplane p ON p.airplane_id = f.airplane_id
LEFT JOIN airplane_type t ON t.type_id = p.type_id
LEFT JOIN airline al ON al.airline_id = p.airline_id
WHERE f.flight_id = %(flight_id)s;

-- name: flight_schedule
-- Nested doll, semi-static layer: the flight and the weekly schedule it belongs to.
SELECT
    f.flightno,
    f.departure,
    f.arrival,
    src.iata AS from_iata,
    src.name AS from_airport,
    dst.iata AS to_iata,
    dst.name AS to_airport,
    al.iata AS airline_code,
    al.airlinename AS airline,
    fs.monday, fs.tuesday, fs.wednesday, fs.thursday, fs.friday, fs.saturday, fs.sunday
FROM flight f
JOIN airport src ON src.airport_id = f."from"
JOIN airport dst ON dst.airport_id = f."to"
JOIN airline al ON al.airline_id = f.airline_id
LEFT JOIN flightschedule fs ON fs.flightno = f.flightno
WHERE f.flight_id = %(flight_id)s;

-- name: flight_seats
-- Nested doll, dynamic layer: seats booked against the airplane's capacity.
SELECT
    p.capacity,
    (SELECT COUNT(*) FROM booking b WHERE b.flight_id = f.flight_id) AS booked
FROM flight f
LEFT JOIN airplane p ON p.airplane_id = f.airplane_id
WHERE f.flight_id = %(flight_id)s;

-- name: flight_status
-- Nested doll, real-time layer: the latest change logged for the flight, if any.
SELECT f.departure, l.departure_new, l.log_date, l.comment
FROM flight f
LEFT JOIN flight_log l ON l.flight_id = f.flight_id
WHERE f.flight_id = %(flight_id)s
ORDER BY l.log_date DESC
LIMIT 1;

-- name: passenger_first
SELECT MIN(passenger_id) AS passenger_id FROM passenger;

-- name: booking_add
INSERT INTO booking (flight_id, seat, passenger_id, price)
VALUES (%(flight_id)s, NULL, %(passenger_id)s, %(price)s);

-- name: last_insert_id
SELECT lastval() AS id;

-- name: booking_remove
DELETE FROM booking WHERE booking_id = %(booking_id)s;
