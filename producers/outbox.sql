-- The transactional outbox an agency adds to its own PostgreSQL database (Debezium EventRouter columns).
-- The agency inserts a row in the same transaction as its business change; the relay publishes it.
--   id             the event_id (consumers drop a second event with the same id)
--   aggregatetype  the dataset (e.g. penerima_bansos)
--   aggregateid    the record's natural key (the Kafka key: one aggregate, one partition, in order)
--   type           the change: c (create), u (update), d (delete), r (snapshot)
--   payload        the record as JSON, in the dataset's schema (null for a delete)
--   created_at     when the change happened (the event time)
-- and the relay's columns:
--   published_at   when the broker acknowledged the row
--   rejected       why the row was not published, and never will be as it is: its payload does not fit the schema,
--                  or the dataset's mapping rejects it (each bad field and the reason, the mapping's code in
--                  brackets); the rows after it are relayed. Fix the data (or the mapping), then set rejected to null
--                  to have the row relayed again, or insert a corrected row.
CREATE TABLE IF NOT EXISTS satubus_outbox (
    seq            bigserial PRIMARY KEY,
    id             uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    aggregatetype  text NOT NULL,
    aggregateid    text NOT NULL,
    type           text NOT NULL CHECK (type IN ('c', 'u', 'd', 'r')),
    payload        jsonb,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at   timestamptz,
    rejected       text
);
CREATE INDEX IF NOT EXISTS satubus_outbox_pending ON satubus_outbox (seq) WHERE published_at IS NULL AND rejected IS NULL;

CREATE OR REPLACE FUNCTION satubus_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('satubus_outbox', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS satubus_outbox_notify ON satubus_outbox;
CREATE TRIGGER satubus_outbox_notify AFTER INSERT ON satubus_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION satubus_outbox_notify();
