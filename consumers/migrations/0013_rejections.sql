-- What the bus dead-lettered, as each agency may read it about its own events (consumers/rejections.py fills it
-- from bus.dlq's headers; GET /v1/agencies/{agency}/rejections serves it). One row per letter of a decode or
-- normalize stage, keyed by where the event was read and the stage: a letter repeated by a batch that ran again is
-- the same row. The message and the preview are masked like the letter's; the event's value is not kept.
CREATE TABLE bus.rejections (
    letter_id     text PRIMARY KEY,          -- <topic>:<partition>:<offset>:<stage> of the event
    agency        text NOT NULL,
    dataset       text NOT NULL,
    event_id      text,                      -- the event's own id, once it decoded
    stage         text NOT NULL,             -- decode | normalize
    reason        text NOT NULL,             -- e.g. out_of_range, unknown_region, NotWireFormat
    message       text NOT NULL,
    preview       text NOT NULL,
    topic         text NOT NULL,             -- where the event was read: its topic, partition and offset
    source_partition int NOT NULL,
    source_offset bigint NOT NULL,
    rejected_at   timestamptz NOT NULL,      -- when the letter was written
    version       bigint NOT NULL,           -- the letter's offset in bus.dlq: a later letter of the event wins
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rejections_by_agency ON bus.rejections (agency, rejected_at DESC);

-- Read from bus.dlq, whose values are the events as sent (clear NIKs included): by the principal that may see them.
GRANT SELECT, INSERT, UPDATE, DELETE ON bus.rejections TO satubus_nik_writer;
GRANT SELECT ON bus.rejections TO satubus_reader;

-- An API key may belong to an agency: it reads that agency's own rejections.
ALTER TABLE bus.api_keys ADD COLUMN agency text;
