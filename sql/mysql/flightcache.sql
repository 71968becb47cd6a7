-- flightcache's own bookkeeping, beside the FlughafenDB tables: which tables it
-- created, which dataset is loaded, and whether the last load finished.
CREATE TABLE IF NOT EXISTS flightcache_meta (
  name varchar(64) NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- flightcache session: the demo's session as a web framework's database session
-- store keeps it, for the comparison with Valkey: one row per token, the session
-- as JSON text, an expiry every read checks. A binary collation, because tokens
-- are case-sensitive: "abc" must not find the session of "ABC".
CREATE TABLE IF NOT EXISTS flightcache_session (
  token varchar(64) NOT NULL,
  user_id int NOT NULL,
  data text NOT NULL,
  expires_at datetime(6) NOT NULL,
  PRIMARY KEY (token),
  KEY flightcache_session_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
