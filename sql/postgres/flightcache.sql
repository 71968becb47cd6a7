-- flightcache's own bookkeeping, beside the FlughafenDB tables: which tables it
-- created, which dataset is loaded, and whether the last load finished.
CREATE TABLE IF NOT EXISTS flightcache_meta (
  name varchar(64) NOT NULL,
  value text NOT NULL,
  CONSTRAINT flightcache_meta_pkey PRIMARY KEY (name)
);

-- flightcache session: the demo's session as a web framework's database session
-- store keeps it, for the comparison with Valkey: one row per token, the session
-- as JSON text, an expiry every read checks.
CREATE TABLE IF NOT EXISTS flightcache_session (
  token varchar(64) NOT NULL,
  user_id int NOT NULL,
  data text NOT NULL,
  expires_at timestamp(6) NOT NULL,
  CONSTRAINT flightcache_session_pkey PRIMARY KEY (token)
);
CREATE INDEX IF NOT EXISTS flightcache_session_expires ON flightcache_session (expires_at);
