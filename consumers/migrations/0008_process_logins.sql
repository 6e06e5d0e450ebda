-- The privileges of the bus's processes, as group roles that their logins are members of (satubus/database.py;
-- the local stack makes the logins, a deployment its own). Migrations run as the owner; the processes never do.
--   satubus_writer      the materializer: reads and writes the unified view and the bus's bookkeeping (offsets,
--                       agency activity); cannot see restricted.*;
--   satubus_nik_writer  the materializer of clear NIKs: restricted.person_nik and its offsets, nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_writer') THEN
        CREATE ROLE satubus_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_nik_writer') THEN
        CREATE ROLE satubus_nik_writer NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA unified, bus TO satubus_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA unified, bus TO satubus_writer;
ALTER DEFAULT PRIVILEGES IN SCHEMA unified, bus GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO satubus_writer;
GRANT SELECT ON public.schema_migrations TO satubus_writer, satubus_nik_writer;

GRANT USAGE ON SCHEMA bus, restricted TO satubus_nik_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON bus.consumer_offsets TO satubus_nik_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON restricted.person_nik TO satubus_nik_writer;
