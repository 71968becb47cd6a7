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

-- Write-behind (flightcache write-behind). flightcache's own tables, created on
-- first use: the seats booked per flight through a queue, and every stream entry
-- already applied, so that a redelivered entry is applied once. `queue` is the
-- Valkey key prefix of the queue, so runs with different prefixes keep apart.

-- name: wb_create_applied
CREATE TABLE IF NOT EXISTS flightcache_wb_applied (
  queue varchar(100) NOT NULL,
  shard smallint NOT NULL,
  entry_id varchar(41) NOT NULL,
  PRIMARY KEY (queue, shard, entry_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name: wb_create_seats
CREATE TABLE IF NOT EXISTS flightcache_wb_seats (
  queue varchar(100) NOT NULL,
  flight_id int NOT NULL,
  seats bigint NOT NULL,
  PRIMARY KEY (queue, flight_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name: wb_applied_among
-- Which of these entry ids are applied already (PyMySQL expands a list to (a, b, ...)).
-- PostgreSQL does this and the insert below in one statement, wb_applied_claim.
SELECT entry_id FROM flightcache_wb_applied
WHERE queue = %(queue)s AND shard = %(shard)s AND entry_id IN %(ids)s;

-- name: wb_applied_insert
INSERT INTO flightcache_wb_applied (queue, shard, entry_id)
VALUES (%(queue)s, %(shard)s, %(entry_id)s);

-- name: wb_seats_add
INSERT INTO flightcache_wb_seats (queue, flight_id, seats)
VALUES (%(queue)s, %(flight_id)s, %(seats)s)
ON DUPLICATE KEY UPDATE seats = seats + VALUES(seats);

-- name: wb_total
SELECT COALESCE(SUM(seats), 0) AS seats FROM flightcache_wb_seats WHERE queue = %(queue)s;

-- name: wb_flight_seats
SELECT COALESCE(SUM(seats), 0) AS seats FROM flightcache_wb_seats
WHERE queue = %(queue)s AND flight_id = %(flight_id)s;

-- name: wb_applied_count
SELECT COUNT(*) AS entries FROM flightcache_wb_applied WHERE queue = %(queue)s;

-- name: wb_forget_seats
DELETE FROM flightcache_wb_seats WHERE queue = %(queue)s;

-- name: wb_forget_applied
DELETE FROM flightcache_wb_applied WHERE queue = %(queue)s;

-- name: wb_flight_ids
SELECT flight_id FROM flight;

-- name: wb_flights_among
SELECT flight_id FROM flight WHERE flight_id IN %(ids)s;

-- name: wb_first_flight
SELECT flight_id, flightno FROM flight ORDER BY flight_id LIMIT 1;
