-- FlughafenDB schema for MariaDB 10.11+ and MySQL 8, written for flightcache.
--
-- Table and column names follow FlughafenDB by Stefan Proell, Eva Zangerle and
-- Wolfgang Gassler (CC BY 4.0), so that queries written for FlughafenDB run
-- unchanged. The DDL itself is flightcache's own.
--
-- flightcache runs the statements of this file one by one, in order; a statement
-- ends with a semicolon at the end of a line. `from` and `to` are reserved words.

CREATE TABLE airport (
  airport_id smallint NOT NULL AUTO_INCREMENT,
  iata char(3) NULL,
  icao char(4) NOT NULL,
  name varchar(50) NOT NULL,
  PRIMARY KEY (airport_id),
  UNIQUE KEY airport_icao_unq (icao),
  KEY airport_name_idx (name),
  KEY airport_iata_idx (iata)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE airport_geo (
  airport_id smallint NOT NULL,
  name varchar(50) NOT NULL,
  city varchar(50) NULL,
  country varchar(50) NULL,
  latitude decimal(11,8) NOT NULL,
  longitude decimal(11,8) NOT NULL,
  geolocation point NOT NULL,
  KEY airport_geo_airport_idx (airport_id),
  SPATIAL KEY airport_geo_geolocation_idx (geolocation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE airport_reachable (
  airport_id int NOT NULL,
  hops int NULL,
  PRIMARY KEY (airport_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE airline (
  airline_id smallint NOT NULL AUTO_INCREMENT,
  iata char(2) NOT NULL,
  airlinename varchar(30) NULL,
  base_airport smallint NOT NULL,
  PRIMARY KEY (airline_id),
  UNIQUE KEY airline_iata_unq (iata),
  KEY airline_base_airport_idx (base_airport),
  CONSTRAINT airline_base_airport_fk FOREIGN KEY (base_airport) REFERENCES airport (airport_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE airplane_type (
  type_id int NOT NULL AUTO_INCREMENT,
  identifier varchar(50) NULL,
  description text NULL,
  PRIMARY KEY (type_id),
  FULLTEXT KEY airplane_type_text_idx (identifier, description)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE airplane (
  airplane_id int NOT NULL AUTO_INCREMENT,
  capacity mediumint unsigned NOT NULL,
  type_id int NOT NULL,
  airline_id int NOT NULL,
  PRIMARY KEY (airplane_id),
  KEY airplane_type_idx (type_id),
  KEY airplane_airline_idx (airline_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE flightschedule (
  flightno char(8) NOT NULL,
  `from` smallint NOT NULL,
  `to` smallint NOT NULL,
  departure time NOT NULL,
  arrival time NOT NULL,
  airline_id smallint NOT NULL,
  monday tinyint(1) NOT NULL DEFAULT 0,
  tuesday tinyint(1) NOT NULL DEFAULT 0,
  wednesday tinyint(1) NOT NULL DEFAULT 0,
  thursday tinyint(1) NOT NULL DEFAULT 0,
  friday tinyint(1) NOT NULL DEFAULT 0,
  saturday tinyint(1) NOT NULL DEFAULT 0,
  sunday tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (flightno),
  KEY flightschedule_from_idx (`from`),
  KEY flightschedule_to_idx (`to`),
  KEY flightschedule_airline_idx (airline_id),
  CONSTRAINT flightschedule_from_fk FOREIGN KEY (`from`) REFERENCES airport (airport_id),
  CONSTRAINT flightschedule_to_fk FOREIGN KEY (`to`) REFERENCES airport (airport_id),
  CONSTRAINT flightschedule_airline_fk FOREIGN KEY (airline_id) REFERENCES airline (airline_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE flight (
  flight_id int NOT NULL AUTO_INCREMENT,
  flightno char(8) NOT NULL,
  `from` smallint NOT NULL,
  `to` smallint NOT NULL,
  departure datetime NOT NULL,
  arrival datetime NOT NULL,
  airline_id smallint NOT NULL,
  airplane_id int NOT NULL,
  PRIMARY KEY (flight_id),
  KEY flight_from_idx (`from`),
  KEY flight_to_idx (`to`),
  KEY flight_departure_idx (departure),
  KEY flight_arrival_idx (arrival),
  KEY flight_airline_idx (airline_id),
  KEY flight_airplane_idx (airplane_id),
  CONSTRAINT flight_from_fk FOREIGN KEY (`from`) REFERENCES airport (airport_id),
  CONSTRAINT flight_to_fk FOREIGN KEY (`to`) REFERENCES airport (airport_id),
  CONSTRAINT flight_airline_fk FOREIGN KEY (airline_id) REFERENCES airline (airline_id),
  CONSTRAINT flight_airplane_fk FOREIGN KEY (airplane_id) REFERENCES airplane (airplane_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE flight_log (
  log_date datetime NOT NULL,
  user varchar(100) NOT NULL,
  flight_id int NOT NULL,
  flightno_old char(8) NOT NULL,
  flightno_new char(8) NOT NULL,
  from_old smallint NOT NULL,
  to_old smallint NOT NULL,
  from_new smallint NOT NULL,
  to_new smallint NOT NULL,
  departure_old datetime NOT NULL,
  arrival_old datetime NOT NULL,
  departure_new datetime NOT NULL,
  arrival_new datetime NOT NULL,
  airplane_id_old int NOT NULL,
  airplane_id_new int NOT NULL,
  airline_id_old smallint NOT NULL,
  airline_id_new smallint NOT NULL,
  comment varchar(200) NULL,
  KEY flight_log_flight_idx (flight_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE passenger (
  passenger_id int NOT NULL AUTO_INCREMENT,
  passportno char(9) NOT NULL,
  firstname varchar(100) NOT NULL,
  lastname varchar(100) NOT NULL,
  PRIMARY KEY (passenger_id),
  UNIQUE KEY passenger_passportno_unq (passportno)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE passengerdetails (
  passenger_id int NOT NULL,
  birthdate date NOT NULL,
  sex char(1) NULL,
  street varchar(100) NOT NULL,
  city varchar(100) NOT NULL,
  zip smallint NOT NULL,
  country varchar(100) NOT NULL,
  emailaddress varchar(120) NULL,
  telephoneno varchar(30) NULL,
  PRIMARY KEY (passenger_id),
  CONSTRAINT passengerdetails_passenger_fk FOREIGN KEY (passenger_id) REFERENCES passenger (passenger_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE booking (
  booking_id int NOT NULL AUTO_INCREMENT,
  flight_id int NOT NULL,
  seat char(4) NULL,
  passenger_id int NOT NULL,
  price decimal(10,2) NOT NULL,
  PRIMARY KEY (booking_id),
  UNIQUE KEY booking_seat_unq (flight_id, seat),
  KEY booking_flight_idx (flight_id),
  KEY booking_passenger_idx (passenger_id),
  CONSTRAINT booking_flight_fk FOREIGN KEY (flight_id) REFERENCES flight (flight_id),
  CONSTRAINT booking_passenger_fk FOREIGN KEY (passenger_id) REFERENCES passenger (passenger_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE employee (
  employee_id int NOT NULL AUTO_INCREMENT,
  firstname varchar(100) NOT NULL,
  lastname varchar(100) NOT NULL,
  birthdate date NOT NULL,
  sex char(1) NULL,
  street varchar(100) NOT NULL,
  city varchar(100) NOT NULL,
  zip smallint NOT NULL,
  country varchar(100) NOT NULL,
  emailaddress varchar(120) NULL,
  telephoneno varchar(30) NULL,
  salary decimal(8,2) NULL,
  department enum('Marketing','Buchhaltung','Management','Logistik','Flugfeld') NULL,
  username varchar(20) NULL,
  password char(32) NULL,
  PRIMARY KEY (employee_id),
  UNIQUE KEY employee_username_unq (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE weatherdata (
  log_date date NOT NULL,
  time time NOT NULL,
  station int NOT NULL,
  temp decimal(3,1) NOT NULL,
  humidity decimal(4,1) NOT NULL,
  airpressure decimal(10,2) NOT NULL,
  wind decimal(5,2) NOT NULL,
  weather enum('Nebel-Schneefall','Schneefall','Regen','Regen-Schneefall','Nebel-Regen','Nebel-Regen-Gewitter','Gewitter','Nebel','Regen-Gewitter') NULL,
  winddirection smallint NOT NULL,
  PRIMARY KEY (log_date, time, station)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
