-- The unified incident view (unified.incident.v1).
CREATE TABLE unified.incident (
    incident_id     text PRIMARY KEY,
    agency          text NOT NULL,
    kind            text NOT NULL,
    kelurahan_code  text NOT NULL,
    started_at      timestamptz NOT NULL,
    status          text NOT NULL,
    affected_rw     text[] NOT NULL DEFAULT '{}',
    water_level_cm  integer,
    displaced       integer NOT NULL,
    fatalities      integer NOT NULL,
    injured         integer NOT NULL,
    latitude        double precision,
    longitude       double precision,
    version         bigint NOT NULL,
    updated_at      timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX incident_kelurahan_started_idx ON unified.incident (kelurahan_code, started_at);
