-- Per partition of each agency dataset's topic, the offset after the last event counted in bus.agency_activity, and
-- the offsets before it that no batch has held yet (consumers/activity.py): a batch the stream processor ran twice
-- is counted once, and an event read again after later ones were counted is counted when it comes. Cleared with the
-- activity by `satubus rebuild`; an agency topic deleted and created again under the same name needs its rows deleted
-- too.
CREATE TABLE bus.agency_activity_offsets (
    agency       text NOT NULL,
    dataset      text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    holes        bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (agency, dataset, partition)
);
