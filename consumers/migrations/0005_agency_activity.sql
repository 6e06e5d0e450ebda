-- What the stream processor did with each agency dataset's events, per minute (from bus.activity): the source of
-- the integration scoreboard.
CREATE TABLE bus.agency_activity (
    agency         text NOT NULL,
    dataset        text NOT NULL,
    minute         timestamptz NOT NULL,
    events_in      bigint NOT NULL,
    accepted       bigint NOT NULL,
    invalid        bigint NOT NULL,
    dropped        bigint NOT NULL,
    last_valid_at  timestamptz,
    PRIMARY KEY (agency, dataset, minute)
);
CREATE INDEX agency_activity_minute_idx ON bus.agency_activity (minute);
