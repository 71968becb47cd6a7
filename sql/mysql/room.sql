-- The room (flightcache room add/remove/list): the attendees of a shared server,
-- kept in the instructor's database. flightcache creates and alone writes it.
CREATE TABLE IF NOT EXISTS flightcache_room (
  name varchar(30) NOT NULL,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  ready boolean NOT NULL DEFAULT false,
  CONSTRAINT flightcache_room_pkey PRIMARY KEY (name)
) ENGINE=InnoDB;
