-- Clear NIKs live here and nowhere else in the database: restricted.person_nik (from restricted.person_nik.v1)
-- maps each person_id of the public view to its NIK. Two roles to grant to login roles:
--   satubus_reader      reads the unified view and the scoreboard's counts, not the restricted schema;
--   satubus_restricted  reads the unified view and the clear NIKs (e.g. a social-aid case worker's application).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_reader') THEN
        CREATE ROLE satubus_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_restricted') THEN
        CREATE ROLE satubus_restricted NOLOGIN IN ROLE satubus_reader;
    END IF;
END
$$;

CREATE SCHEMA restricted;
REVOKE ALL ON SCHEMA restricted FROM PUBLIC;

CREATE TABLE restricted.person_nik (
    person_id     text PRIMARY KEY,
    nik           text NOT NULL CHECK (nik ~ '^\d{16}$'),
    version       bigint NOT NULL,
    updated_at    timestamptz NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

GRANT USAGE ON SCHEMA unified, bus TO satubus_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA unified TO satubus_reader;
GRANT SELECT ON bus.agency_activity TO satubus_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA unified GRANT SELECT ON TABLES TO satubus_reader;
GRANT USAGE ON SCHEMA restricted TO satubus_restricted;
GRANT SELECT ON restricted.person_nik TO satubus_restricted;
