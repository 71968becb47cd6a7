-- flightcache's own bookkeeping, beside the FlughafenDB tables: which tables it
-- created, which dataset is loaded, and whether the last load finished.
CREATE TABLE IF NOT EXISTS flightcache_meta (
  name varchar(64) NOT NULL,
  value text NOT NULL,
  CONSTRAINT flightcache_meta_pkey PRIMARY KEY (name)
);
