-- The unified person view and the materializer's Kafka offsets, which live in the same database so that
-- rows and offsets commit in one transaction.
CREATE SCHEMA IF NOT EXISTS unified;

CREATE TABLE unified.person (
    person_id        text PRIMARY KEY,
    household_id     text NOT NULL,
    full_name        text NOT NULL,
    birth_date       date NOT NULL,
    sex              text NOT NULL CHECK (sex IN ('MALE', 'FEMALE')),
    address          text NOT NULL,
    kelurahan_code   text NOT NULL,
    kecamatan_code   text NOT NULL,
    kota_code        text NOT NULL,
    is_deceased      boolean NOT NULL,
    deceased_on      date,
    version          bigint NOT NULL,
    updated_at       timestamptz NOT NULL,
    source_event_id  text NOT NULL,
    committed_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX person_kelurahan_idx ON unified.person (kelurahan_code);

CREATE SCHEMA IF NOT EXISTS bus;

CREATE TABLE bus.consumer_offsets (
    group_id     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
