-- Person-360: the parts other agencies contribute to a person (unified.person.v1 since its aid, schooling and
-- health fields). Lists of records are jsonb, as the Avro arrays of records they come from.
ALTER TABLE unified.person
    ADD COLUMN aid                   jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN schooling             jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN health_visits         integer NOT NULL DEFAULT 0,
    ADD COLUMN last_health_visit_at  timestamptz,
    ADD COLUMN immunisations         text[] NOT NULL DEFAULT '{}';
