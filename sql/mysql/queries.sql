-- Named queries, MySQL/MariaDB dialect. The same names exist in
-- sql/postgres/queries.sql. Parameters are %(name)s.

-- name: meta_get
SELECT name, value FROM flightcache_meta;

-- name: meta_set
INSERT INTO flightcache_meta (name, value) VALUES (%(name)s, %(value)s)
ON DUPLICATE KEY UPDATE value = VALUES(value);

-- name: meta_delete
DELETE FROM flightcache_meta WHERE name = %(name)s;

-- name: airline_route_analysis
-- The workshop's expensive query: airlines by the number of routes they fly.
-- 001 joins a `route` table and a `flight.from_airport` column that FlughafenDB
-- does not have. On the real schema a route is a distinct (`from`, `to`) pair of
-- the flights an airline operates, and the third table joined is airport_geo,
-- which adds how many countries each airline reaches.
SELECT
    al.airlinename AS airline_name,
    al.iata AS airline_code,
    COUNT(DISTINCT f.`from`, f.`to`) AS total_routes,
    COUNT(DISTINCT f.`to`) AS destinations,
    COUNT(DISTINCT g.country) AS countries,
    COUNT(*) AS flights
FROM airline al
JOIN flight f ON f.airline_id = al.airline_id
JOIN airport_geo g ON g.airport_id = f.`to`
WHERE al.iata IS NOT NULL
GROUP BY al.airline_id, al.airlinename, al.iata
ORDER BY total_routes DESC, al.iata
LIMIT 10;

-- name: flight_search
-- Flights on one route and one day, with seats left and the cheapest fare paid.
SELECT
    f.flight_id,
    f.flightno,
    al.iata AS airline,
    a1.iata AS origin,
    a2.iata AS destination,
    f.departure,
    f.arrival,
    ap.capacity,
    COUNT(b.booking_id) AS booked,
    ap.capacity - COUNT(b.booking_id) AS free_seats,
    MIN(b.price) AS lowest_price
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
JOIN airline al ON al.airline_id = f.airline_id
JOIN airplane ap ON ap.airplane_id = f.airplane_id
LEFT JOIN booking b ON b.flight_id = f.flight_id
WHERE a1.iata = %(origin)s
  AND a2.iata = %(destination)s
  AND f.departure >= %(day)s
  AND f.departure < %(day)s + INTERVAL 1 DAY
GROUP BY f.flight_id, f.flightno, al.iata, a1.iata, a2.iata, f.departure, f.arrival, ap.capacity
ORDER BY f.departure, f.flight_id;

-- name: passenger_bookings
-- One passenger's booking history, newest flight first.
SELECT
    b.booking_id,
    f.flightno,
    a1.iata AS origin,
    a2.iata AS destination,
    f.departure,
    b.seat,
    b.price
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE b.passenger_id = %(passenger_id)s
ORDER BY f.departure DESC, b.booking_id;

-- name: top_airports_daily
-- The ten airports with the most bookings on flights departing on one day.
SELECT
    a.iata,
    a.name,
    COUNT(*) AS bookings,
    COUNT(DISTINCT f.flight_id) AS flights
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN airport a ON a.airport_id = f.`from`
WHERE f.departure >= %(day)s
  AND f.departure < %(day)s + INTERVAL 1 DAY
GROUP BY a.airport_id, a.iata, a.name
ORDER BY bookings DESC, a.iata
LIMIT 10;

-- name: sample_route_day
-- Default parameters for flight_search: the route and day of the first flight.
SELECT a1.iata AS origin, a2.iata AS destination, CAST(f.departure AS DATE) AS day
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE a1.iata IS NOT NULL AND a2.iata IS NOT NULL
ORDER BY f.flight_id
LIMIT 1;

-- name: sample_passenger
-- Default parameter for passenger_bookings: the passenger of the first booking.
SELECT passenger_id FROM booking ORDER BY booking_id LIMIT 1;

-- name: flight_ids
-- Every flight id, for a request stream over real ids (flightcache hit-ratio).
SELECT flight_id FROM flight ORDER BY flight_id;

-- name: flight_by_id
-- One flight row: the cheap query behind a cache-aside read by id.
SELECT flight_id, flightno, `from`, `to`, departure, arrival, airline_id, airplane_id
FROM flight
WHERE flight_id = %(flight_id)s;

-- name: booking_records
-- The first bookings with their flight and passenger name: one cache value each
-- (flightcache eviction).
SELECT
    b.booking_id, b.flight_id, b.seat, b.price, b.passenger_id,
    p.firstname, p.lastname, f.flightno, f.`from`, f.`to`, f.departure
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN passenger p ON p.passenger_id = b.passenger_id
ORDER BY b.booking_id
LIMIT %(limit)s;

-- name: ttl_reference_airports
-- Reference data (TTL 24 h): airports with their city; changes a few times a year.
SELECT a.iata, a.name, g.city, g.country
FROM airport a
JOIN airport_geo g ON g.airport_id = a.airport_id
WHERE a.iata IS NOT NULL
ORDER BY a.airport_id
LIMIT %(limit)s;

-- name: ttl_popular_routes
-- Business data (TTL 1 h): the routes with the most flights.
SELECT s.iata AS origin, d.iata AS destination, COUNT(*) AS flights
FROM flight f
JOIN airport s ON s.airport_id = f.`from`
JOIN airport d ON d.airport_id = f.`to`
GROUP BY s.iata, d.iata
ORDER BY flights DESC, origin, destination
LIMIT %(limit)s;

-- name: ttl_recent_delays
-- Operational data (TTL 5 min): the latest delays from the flight change log.
SELECT l.flightno_new AS flightno, l.departure_old AS scheduled,
       l.departure_new AS expected,
       TIMESTAMPDIFF(MINUTE, l.departure_old, l.departure_new) AS delay_min
FROM flight_log l
WHERE l.departure_new > l.departure_old
ORDER BY l.log_date DESC, l.flight_id DESC
LIMIT %(limit)s;

-- name: ttl_current_weather
-- Real-time data (TTL 60 s): the newest reading of every weather station.
SELECT w.station, w.log_date, w.`time`, w.temp, w.humidity, w.wind, w.weather
FROM weatherdata w
WHERE (w.log_date, w.`time`) = (
    SELECT log_date, `time` FROM weatherdata ORDER BY log_date DESC, `time` DESC LIMIT 1
)
ORDER BY w.station;

-- name: memory_flight_count
SELECT COUNT(*) AS flights FROM flight;

-- name: memory_flights
-- The first `limit` flights with their seats: capacity and bookings so far.
SELECT f.flight_id, f.flightno, f.departure, f.arrival,
       COALESCE(p.capacity, 0) AS capacity, COUNT(b.booking_id) AS booked
FROM (
    SELECT flight_id, flightno, departure, arrival, airplane_id
    FROM flight ORDER BY flight_id LIMIT %(limit)s
) f
LEFT JOIN airplane p ON p.airplane_id = f.airplane_id
LEFT JOIN booking b ON b.flight_id = f.flight_id
GROUP BY f.flight_id, f.flightno, f.departure, f.arrival, p.capacity
ORDER BY f.flight_id;

-- name: memory_booked_seats
SELECT flight_id, seat
FROM booking
WHERE flight_id BETWEEN %(first)s AND %(last)s AND seat IS NOT NULL
ORDER BY flight_id, seat;

-- name: airline_by_id
SELECT airline_id, iata, airlinename, base_airport FROM airline WHERE airline_id = %(airline_id)s;

-- name: airline_by_iata
SELECT airline_id, iata, airlinename, base_airport FROM airline WHERE iata = %(iata)s;

-- name: airline_some_codes
-- A few codes to suggest when an --airline matches nothing.
SELECT iata FROM airline ORDER BY airline_id LIMIT 5;

-- name: airline_ids_by_iata
SELECT airline_id, iata FROM airline WHERE iata IN %(codes)s;

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
JOIN airport src ON src.airport_id = f.`from`
JOIN airport dst ON dst.airport_id = f.`to`
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
SELECT LAST_INSERT_ID() AS id;

-- name: booking_remove
DELETE FROM booking WHERE booking_id = %(booking_id)s;

-- name: booking_remove_ids
-- what a killed `leaderboard simulate --cleanup` left: one batch's bookings, by id
DELETE FROM booking WHERE booking_id IN %(booking_ids)s;

-- Write-behind (flightcache write-behind). flightcache's own tables, created on
-- first use: the seats booked per flight through a queue, and every stream entry
-- already applied, so that a redelivered entry is applied once. `queue` is the
-- Valkey key prefix of the queue, so runs with different prefixes keep apart.

-- name: write_behind_create_applied
CREATE TABLE IF NOT EXISTS flightcache_wb_applied (
  queue varchar(100) NOT NULL,
  shard smallint NOT NULL,
  entry_id varchar(41) NOT NULL,
  PRIMARY KEY (queue, shard, entry_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name: write_behind_create_seats
CREATE TABLE IF NOT EXISTS flightcache_wb_seats (
  queue varchar(100) NOT NULL,
  flight_id int NOT NULL,
  seats bigint NOT NULL,
  PRIMARY KEY (queue, flight_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name: write_behind_applied_among
-- Which of these entry ids are applied already (PyMySQL expands a list to (a, b, ...)).
-- PostgreSQL does this and the insert below in one statement, write_behind_applied_claim.
SELECT entry_id FROM flightcache_wb_applied
WHERE queue = %(queue)s AND shard = %(shard)s AND entry_id IN %(ids)s;

-- name: write_behind_applied_insert
INSERT INTO flightcache_wb_applied (queue, shard, entry_id)
VALUES (%(queue)s, %(shard)s, %(entry_id)s);

-- name: write_behind_seats_add
INSERT INTO flightcache_wb_seats (queue, flight_id, seats)
VALUES (%(queue)s, %(flight_id)s, %(seats)s)
ON DUPLICATE KEY UPDATE seats = seats + VALUES(seats);

-- name: write_behind_total
SELECT COALESCE(SUM(seats), 0) AS seats FROM flightcache_wb_seats WHERE queue = %(queue)s;

-- name: write_behind_flight_seats
SELECT COALESCE(SUM(seats), 0) AS seats FROM flightcache_wb_seats
WHERE queue = %(queue)s AND flight_id = %(flight_id)s;

-- name: write_behind_applied_count
SELECT COUNT(*) AS entries FROM flightcache_wb_applied WHERE queue = %(queue)s;

-- name: write_behind_forget_seats
DELETE FROM flightcache_wb_seats WHERE queue = %(queue)s;

-- name: write_behind_forget_applied
DELETE FROM flightcache_wb_applied WHERE queue = %(queue)s;

-- name: write_behind_flight_ids
SELECT flight_id FROM flight;

-- name: write_behind_flights_among
SELECT flight_id FROM flight WHERE flight_id IN %(ids)s;

-- name: write_behind_first_flight
SELECT flight_id, flightno FROM flight ORDER BY flight_id LIMIT 1;

-- Leaderboards (flightcache leaderboard). Every board query returns (member, score)
-- for flights departing in [start, end), ordered by score, then member; the sorted set
-- of the board is rebuilt from it, and the SQL side of `leaderboard compare` is it too.
-- name: leaderboard_clock
-- The dataset's clock: the latest departure; time windows end there.
SELECT MAX(departure) AS latest FROM flight;

-- name: leaderboard_airport_bookings
-- Bookings on flights departing from each airport.
SELECT a.iata AS member, COUNT(*) AS score
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN airport a ON a.airport_id = f.`from`
WHERE f.departure >= %(start)s AND f.departure < %(end)s AND a.iata IS NOT NULL
GROUP BY a.iata
ORDER BY score DESC, member;

-- name: leaderboard_airport_bookings_top
-- The same, cut at N: what `leaderboard compare` times against ZREVRANGE.
SELECT a.iata AS member, COUNT(*) AS score
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN airport a ON a.airport_id = f.`from`
WHERE f.departure >= %(start)s AND f.departure < %(end)s AND a.iata IS NOT NULL
GROUP BY a.iata
ORDER BY score DESC, member
LIMIT %(limit)s;

-- name: leaderboard_airline_ontime
-- On-time percentage per airline: a flight is on time unless the change log moved
-- its departure more than 15 minutes later.
SELECT al.iata AS member,
       ROUND(100.0 * SUM(CASE WHEN l.expected IS NULL
                               OR l.expected <= f.departure + INTERVAL 15 MINUTE
                              THEN 1 ELSE 0 END) / COUNT(*), 2) AS score
FROM flight f
JOIN airline al ON al.airline_id = f.airline_id
LEFT JOIN (SELECT flight_id, MAX(departure_new) AS expected FROM flight_log GROUP BY flight_id) l
       ON l.flight_id = f.flight_id
WHERE f.departure >= %(start)s AND f.departure < %(end)s
GROUP BY al.iata
ORDER BY score DESC, member;

-- name: leaderboard_airport_delay
-- Average departure delay in minutes per airport (a flight without a log entry left on time).
SELECT a.iata AS member,
       ROUND(AVG(CASE WHEN l.expected > f.departure
                      THEN TIMESTAMPDIFF(SECOND, f.departure, l.expected) / 60
                      ELSE 0 END), 2) AS score
FROM flight f
JOIN airport a ON a.airport_id = f.`from`
LEFT JOIN (SELECT flight_id, MAX(departure_new) AS expected FROM flight_log GROUP BY flight_id) l
       ON l.flight_id = f.flight_id
WHERE f.departure >= %(start)s AND f.departure < %(end)s AND a.iata IS NOT NULL
GROUP BY a.iata
ORDER BY score DESC, member;

-- name: leaderboard_passenger_points
-- Loyalty points: one point per whole unit of price paid.
SELECT CAST(b.passenger_id AS CHAR(12)) AS member, FLOOR(SUM(b.price)) AS score
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
WHERE f.departure >= %(start)s AND f.departure < %(end)s
GROUP BY b.passenger_id
ORDER BY score DESC, member;

-- name: leaderboard_passenger_flights
-- Flights booked per passenger (001's "passengers with most flights").
SELECT CAST(b.passenger_id AS CHAR(12)) AS member, COUNT(*) AS score
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
WHERE f.departure >= %(start)s AND f.departure < %(end)s
GROUP BY b.passenger_id
ORDER BY score DESC, member;

-- name: leaderboard_airport_passengers
-- Passengers through each airport, departing or arriving (001's "airports with most passengers").
SELECT a.iata AS member, SUM(x.n) AS score
FROM (SELECT f.`from` AS airport_id, COUNT(*) AS n
      FROM booking b JOIN flight f ON f.flight_id = b.flight_id
      WHERE f.departure >= %(start)s AND f.departure < %(end)s
      GROUP BY f.`from`
      UNION ALL
      SELECT f.`to` AS airport_id, COUNT(*) AS n
      FROM booking b JOIN flight f ON f.flight_id = b.flight_id
      WHERE f.departure >= %(start)s AND f.departure < %(end)s
      GROUP BY f.`to`) x
JOIN airport a ON a.airport_id = x.airport_id
WHERE a.iata IS NOT NULL
GROUP BY a.iata
ORDER BY score DESC, member;

-- name: leaderboard_routes_domestic
-- Flights per route whose two airports lie in the same country (airport_geo.country).
SELECT CONCAT(s.iata, ':', d.iata) AS member, COUNT(*) AS score
FROM flight f
JOIN airport s ON s.airport_id = f.`from`
JOIN airport d ON d.airport_id = f.`to`
JOIN airport_geo gs ON gs.airport_id = f.`from`
JOIN airport_geo gd ON gd.airport_id = f.`to`
WHERE f.departure >= %(start)s AND f.departure < %(end)s
  AND s.iata IS NOT NULL AND d.iata IS NOT NULL AND gs.country = gd.country
GROUP BY s.iata, d.iata
ORDER BY score DESC, member;

-- name: leaderboard_routes_international
-- Flights per route between two countries.
SELECT CONCAT(s.iata, ':', d.iata) AS member, COUNT(*) AS score
FROM flight f
JOIN airport s ON s.airport_id = f.`from`
JOIN airport d ON d.airport_id = f.`to`
JOIN airport_geo gs ON gs.airport_id = f.`from`
JOIN airport_geo gd ON gd.airport_id = f.`to`
WHERE f.departure >= %(start)s AND f.departure < %(end)s
  AND s.iata IS NOT NULL AND d.iata IS NOT NULL AND gs.country <> gd.country
GROUP BY s.iata, d.iata
ORDER BY score DESC, member;

-- name: leaderboard_booking_flight
-- What a new booking changes on the boards: its flight's departure and origin airport.
SELECT f.flight_id, f.departure, a.iata
FROM flight f
JOIN airport a ON a.airport_id = f.`from`
WHERE f.flight_id = %(flight_id)s;

-- name: passenger_by_id
SELECT passenger_id FROM passenger WHERE passenger_id = %(passenger_id)s;

-- name: leaderboard_latest_flight
-- The demo's booking goes on the latest flight from an airport with an IATA code.
SELECT f.flight_id FROM flight f
JOIN airport a ON a.airport_id = f.`from`
WHERE a.iata IS NOT NULL
ORDER BY f.departure DESC, f.flight_id DESC
LIMIT 1;

-- Live leaderboard (flightcache leaderboard simulate): the flights and passengers the
-- simulator books, and one booking inserted with its id.
-- name: leaderboard_candidate_flights
SELECT f.flight_id, a.iata, f.departure
FROM flight f
JOIN airport a ON a.airport_id = f.`from`
WHERE a.iata IS NOT NULL AND a.iata <> ''
ORDER BY f.flight_id
LIMIT %(limit)s;

-- name: leaderboard_candidate_flights_on
SELECT f.flight_id, a.iata, f.departure
FROM flight f
JOIN airport a ON a.airport_id = f.`from`
WHERE a.iata IS NOT NULL AND a.iata <> ''
  AND f.departure >= %(day)s
  AND f.departure < %(day)s + INTERVAL 1 DAY
ORDER BY f.flight_id
LIMIT %(limit)s;

-- name: candidate_passengers
SELECT passenger_id FROM passenger ORDER BY passenger_id LIMIT %(limit)s;

-- name: leaderboard_booking_insert
INSERT INTO booking (flight_id, seat, passenger_id, price)
VALUES (%(flight_id)s, NULL, %(passenger_id)s, %(price)s);

-- Universal caching (flightcache universal): what the fake external APIs know, the
-- airports a route distance is computed from, and 001's daily booking statistics.
-- name: universal_api_airports
-- The airports the fake APIs answer for, with how many scheduled flights use each.
SELECT a.iata, a.name, g.city, g.country, g.latitude, g.longitude,
       COALESCE(t.flights, 0) AS flights
FROM airport a
LEFT JOIN airport_geo g ON g.airport_id = a.airport_id
LEFT JOIN (SELECT airport_id, COUNT(*) AS flights
           FROM (SELECT `from` AS airport_id FROM flightschedule
                 UNION ALL
                 SELECT `to` AS airport_id FROM flightschedule) s
           GROUP BY airport_id) t ON t.airport_id = a.airport_id
WHERE a.iata IS NOT NULL AND a.iata <> ''
ORDER BY a.airport_id;

-- name: universal_api_flights
-- The weekly schedule the fake flight-tracking API follows; times as minutes after midnight.
SELECT s.flightno, al.iata AS airline, a1.iata AS origin, a2.iata AS destination,
       TIME_TO_SEC(s.departure) DIV 60 AS departure_min,
       TIME_TO_SEC(s.arrival) DIV 60 AS arrival_min
FROM flightschedule s
JOIN airport a1 ON a1.airport_id = s.`from`
JOIN airport a2 ON a2.airport_id = s.`to`
LEFT JOIN airline al ON al.airline_id = s.airline_id
ORDER BY s.flightno;

-- name: universal_airport_coords
-- The two airports of a route with their coordinates (the input of the distance).
SELECT a.iata, a.name, g.city, g.country, g.latitude, g.longitude
FROM airport a
JOIN airport_geo g ON g.airport_id = a.airport_id
WHERE a.iata IN (%(origin)s, %(destination)s)
ORDER BY a.iata;

-- name: universal_airport_some_codes
-- A few codes to suggest when an airport code matches nothing.
SELECT iata FROM airport WHERE iata IS NOT NULL AND iata <> '' ORDER BY airport_id LIMIT 5;

-- name: universal_daily_bookings
-- 001's stats:daily:bookings: bookings on flights departing one day, split by whether
-- the two airports lie in one country (airport_geo.country); a flight with an airport
-- missing from airport_geo counts in the total only.
SELECT COUNT(*) AS total,
       COALESCE(SUM(CASE WHEN gs.country = gd.country THEN 1 ELSE 0 END), 0) AS domestic,
       COALESCE(SUM(CASE WHEN gs.country <> gd.country THEN 1 ELSE 0 END), 0) AS international,
       COUNT(DISTINCT f.flight_id) AS flights
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
LEFT JOIN airport_geo gs ON gs.airport_id = f.`from`
LEFT JOIN airport_geo gd ON gd.airport_id = f.`to`
WHERE f.departure >= %(day)s
  AND f.departure < %(day)s + INTERVAL 1 DAY;
-- Sessions (flightcache session): the passenger who logs in, a free seat to hold,
-- and the database side of the comparison, flightcache_session (in flightcache.sql).

-- name: session_passenger
SELECT p.passenger_id, p.firstname, p.lastname, d.emailaddress
FROM passenger p
LEFT JOIN passengerdetails d ON d.passenger_id = p.passenger_id
WHERE p.passenger_id = %(passenger_id)s;

-- name: session_passenger_range
SELECT MIN(passenger_id) AS lowest, MAX(passenger_id) AS highest FROM passenger;

-- name: session_other_passengers
SELECT passenger_id FROM passenger
WHERE passenger_id <> %(passenger_id)s
ORDER BY passenger_id
LIMIT %(n)s;

-- name: session_booked_seats
SELECT seat FROM booking WHERE flight_id = %(flight_id)s AND seat IS NOT NULL;

-- name: session_booking_add
-- The checkout's last step: the booking with the seat the session held. The
-- UNIQUE (flight_id, seat) refuses a seat someone else booked meanwhile.
INSERT INTO booking (flight_id, seat, passenger_id, price)
VALUES (%(flight_id)s, %(seat)s, %(passenger_id)s, %(price)s);

-- name: session_db_insert
INSERT INTO flightcache_session (token, user_id, data, expires_at)
VALUES (%(token)s, %(user_id)s, %(data)s, %(expires_at)s);

-- name: session_db_read
-- A web framework's session read: one row by primary key, an expired row ignored.
SELECT user_id, data, expires_at FROM flightcache_session
WHERE token = %(token)s AND expires_at > %(now)s;

-- name: session_db_slide
-- The sliding expiry, database side: the session written back with a new expiry.
UPDATE flightcache_session SET data = %(data)s, expires_at = %(expires_at)s
WHERE token = %(token)s;

-- name: session_db_delete
DELETE FROM flightcache_session WHERE token = %(token)s;
-- Exercises (flightcache exercise check). The write-through check renames an airline
-- of the run's scratch copy of `airline`, dropped with the run's database role.
-- name: exercise_airline_codes
SELECT iata FROM airline;

-- Stampede prevention (flightcache stampede): the one expensive key a herd of
-- clients rebuilds. The real work is the ten airlines with the largest fleets,
-- with their base airport and seats in service; SLEEP makes every rebuild last
-- %(seconds)s longer, so the rebuild time is known and the same on every dataset.
-- The one-row derived table is read once (a constant table), so the sleep runs once.
-- name: stampede_rebuild
SELECT al.iata AS airline, al.airlinename AS airline_name, ap.iata AS base,
       COUNT(p.airplane_id) AS airplanes, COALESCE(SUM(p.capacity), 0) AS seats
FROM (SELECT SLEEP(%(seconds)s) AS slept) slow
CROSS JOIN airline al
LEFT JOIN airport ap ON ap.airport_id = al.base_airport
LEFT JOIN airplane p ON p.airline_id = al.airline_id
GROUP BY al.airline_id, al.iata, al.airlinename, ap.iata
ORDER BY airplanes DESC, al.iata
LIMIT 10;
-- Invalidation (flightcache invalidation): a flight with several passengers, what a
-- cached result depends on (the flights it shows), and the changes whose cached
-- copies must go.
-- name: invalidation_busy_flight
-- The first flight between two airports with IATA codes that at least three
-- passengers booked.
SELECT f.flight_id
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
JOIN booking b ON b.flight_id = f.flight_id
WHERE a1.iata IS NOT NULL AND a2.iata IS NOT NULL
GROUP BY f.flight_id
HAVING COUNT(DISTINCT b.passenger_id) >= 3
ORDER BY f.flight_id
LIMIT 1;

-- name: invalidation_flight
SELECT f.flight_id, f.flightno, a1.iata AS origin, a2.iata AS destination,
       f.departure, f.arrival, f.`from` AS from_id, f.`to` AS to_id
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE f.flight_id = %(flight_id)s;

-- name: invalidation_flight_passengers
SELECT DISTINCT passenger_id FROM booking
WHERE flight_id = %(flight_id)s
ORDER BY passenger_id
LIMIT %(limit)s;

-- name: invalidation_other_passenger
-- A passenger with bookings, none of them on the flight.
SELECT MIN(passenger_id) AS passenger_id FROM booking
WHERE passenger_id NOT IN (SELECT passenger_id FROM booking WHERE flight_id = %(flight_id)s);

-- name: invalidation_other_flight
-- The first flight on another route than (from_id, to_id), between IATA airports.
SELECT f.flight_id
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE a1.iata IS NOT NULL AND a2.iata IS NOT NULL
  AND NOT (f.`from` = %(from_id)s AND f.`to` = %(to_id)s)
ORDER BY f.flight_id
LIMIT 1;

-- name: invalidation_passenger_bookings
-- 001's user:12345:bookings: one passenger's bookings, newest flight first, with
-- the flight id each row depends on.
SELECT b.booking_id, f.flight_id, f.flightno, a1.iata AS origin, a2.iata AS destination,
       f.departure, b.seat, b.price
FROM booking b
JOIN flight f ON f.flight_id = b.flight_id
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE b.passenger_id = %(passenger_id)s
ORDER BY f.departure DESC, b.booking_id;

-- name: invalidation_flight_move
UPDATE flight SET departure = %(departure)s, arrival = %(arrival)s
WHERE flight_id = %(flight_id)s;
-- Benchmarks (flightcache bench): the keyspaces the scenarios draw keys from, and
-- how many connections the server takes (one per bench client).
-- name: bench_route_days
SELECT a1.iata AS origin, a2.iata AS destination, CAST(f.departure AS DATE) AS day
FROM flight f
JOIN airport a1 ON a1.airport_id = f.`from`
JOIN airport a2 ON a2.airport_id = f.`to`
WHERE a1.iata IS NOT NULL AND a2.iata IS NOT NULL
GROUP BY a1.iata, a2.iata, CAST(f.departure AS DATE)
ORDER BY MIN(f.flight_id)
LIMIT %(limit)s;

-- name: bench_flights
SELECT f.flight_id, f.departure, a.iata
FROM flight f
JOIN airport a ON a.airport_id = f.`from`
WHERE a.iata IS NOT NULL AND a.iata <> ''
ORDER BY f.flight_id
LIMIT %(limit)s;

-- name: bench_airline_ids
SELECT airline_id, airlinename FROM airline ORDER BY airline_id LIMIT %(limit)s;

-- The server's process: its pid file (one process serves every connection).
-- name: bench_server_process
SELECT @@pid_file AS pid_file;

-- name: bench_max_connections
SELECT @@max_connections AS max_connections;

-- After a scenario that wrote: what autovacuum (PostgreSQL) or the purge and
-- statistics threads (MariaDB) would do in time, done now, so that the next
-- scenario and the next run start from the same state (dead rows gone, pages
-- all-visible again for index-only scans).
-- name: bench_settle_booking
ANALYZE TABLE booking;

-- name: bench_settle_airline
ANALYZE TABLE airline;

-- name: bench_settle_write_behind_seats
ANALYZE TABLE flightcache_wb_seats;

-- What a bench run writes, marked as its own so that a run killed before its teardown
-- is swept by the next (each is recorded as an undo before the change; flightcache.undo).
-- The leaderboard scenario books as a passenger of its own (passportno FCB + run id):
-- name: bench_passenger_add
INSERT INTO passenger (passportno, firstname, lastname)
VALUES (%(passportno)s, 'flightcache', 'bench');

-- name: bench_passenger_id
SELECT passenger_id FROM passenger WHERE passportno = %(passportno)s;

-- name: bench_passenger_bookings_remove
DELETE FROM booking
WHERE passenger_id = (SELECT p.passenger_id FROM passenger p
                      WHERE p.passportno = %(passportno)s);

-- name: bench_passenger_remove
DELETE FROM passenger WHERE passportno = %(passportno)s;

-- The user-sessions scenario's rows: their tokens begin with the run's own mark.
-- name: bench_sessions_remove
DELETE FROM flightcache_session WHERE token LIKE %(pattern)s;

-- name: room_register
-- The room: an attendee being added (see flightcache/room/registry.py).
INSERT IGNORE INTO flightcache_room (name) VALUES (%(name)s);

-- name: room_ready
UPDATE flightcache_room SET ready = true WHERE name = %(name)s;

-- name: room_unregister
DELETE FROM flightcache_room WHERE name = %(name)s;

-- name: room_attendees
SELECT name, created_at, ready FROM flightcache_room ORDER BY name;
