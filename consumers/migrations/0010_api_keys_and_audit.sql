-- Who may read the live API (bus.api_keys), and a record of every read of personal data (audit.access_log).
--
-- bus.api_keys: the callers' API keys, kept as SHA-256 digests (satubus/tokens.py), each with its scopes
-- (consumers/api_scopes.py). Written by `satubus api-key` as the owner; read by the API.
CREATE TABLE bus.api_keys (
    key_id      text PRIMARY KEY,
    caller      text NOT NULL,
    digest      bytea NOT NULL,
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by  text NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz,
    revoked_by  text
);
REVOKE ALL ON bus.api_keys FROM satubus_writer;  -- 0008's default privileges gave it every new table of bus
GRANT SELECT ON bus.api_keys TO satubus_reader;

-- audit.access_log: append-only and hash-chained. Each row's hash is SHA-256 over the previous row's hash and the
-- row's own canonical text (audit.canonical; satubus/audit.py computes the same to verify the chain), so a row
-- changed, removed or inserted afterwards breaks every hash after it. Rows are appended only through
-- audit.append, which serialises appends; nobody is granted INSERT, UPDATE or DELETE, and a trigger refuses the
-- last two even to the owner. Readable only by the auditor's login (satubus_audit_reader).
CREATE SCHEMA audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

CREATE TABLE audit.access_log (
    seq        bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    principal  text NOT NULL,   -- the API key's caller, or the operator who ran a command
    purpose    text NOT NULL,   -- pelayanan | penegakan | statistik | perencanaan | hak_subjek | penghapusan
    action     text NOT NULL,   -- e.g. "GET /v1/persons/{person_id}", "erase"
    entity     text NOT NULL,   -- person | parcel | finding | person_nik
    keys       text[] NOT NULL, -- the records read (person_id, nop, finding_id)
    fields     text[] NOT NULL, -- the fields given; empty when none was found
    client     text NOT NULL,   -- from where: the caller's address, or the host a command ran on
    detail     text NOT NULL,   -- e.g. the reason of an erasure
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
CREATE INDEX access_log_keys ON audit.access_log USING gin (keys);

CREATE FUNCTION audit.netstring(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT char_length(value) || ':' || value || ',' $$;

CREATE FUNCTION audit.canonical(
    seq bigint, at timestamptz, principal text, purpose text, action text, entity text, keys text[],
    fields text[], client text, detail text
) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT audit.netstring(seq::text)
        || audit.netstring(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || audit.netstring(principal) || audit.netstring(purpose) || audit.netstring(action)
        || audit.netstring(entity)
        || audit.netstring(coalesce((SELECT string_agg(audit.netstring(k), '' ORDER BY n)
                                     FROM unnest(keys) WITH ORDINALITY AS u(k, n)), ''))
        || audit.netstring(coalesce((SELECT string_agg(audit.netstring(f), '' ORDER BY n)
                                     FROM unnest(fields) WITH ORDINALITY AS u(f, n)), ''))
        || audit.netstring(client) || audit.netstring(detail)
$$;

CREATE FUNCTION audit.append(
    principal text, purpose text, action text, entity text, keys text[], fields text[], client text, detail text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, audit AS $$
DECLARE
    last_seq  bigint;
    last_hash bytea;
    now_at    timestamptz := clock_timestamp();
    new_hash  bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(x'5A7B0002'::int);  -- one append at a time: the chain has one order
    SELECT l.seq, l.hash INTO last_seq, last_hash FROM audit.access_log l ORDER BY l.seq DESC LIMIT 1;
    last_seq := coalesce(last_seq, 0) + 1;
    last_hash := coalesce(last_hash, decode(repeat('00', 32), 'hex'));
    new_hash := sha256(last_hash || convert_to(
        audit.canonical(last_seq, now_at, principal, purpose, action, entity, keys, fields, client, detail), 'UTF8'));
    INSERT INTO audit.access_log VALUES (
        last_seq, now_at, principal, purpose, action, entity, keys, fields, client, detail, last_hash, new_hash);
    RETURN last_seq;
END
$$;

CREATE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit.access_log is append-only';
END
$$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.access_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_audit_reader') THEN
        CREATE ROLE satubus_audit_reader NOLOGIN;
    END IF;
END
$$;

-- The local stack may have made satubus_restricted (0006) before this role existed with it as a member.
GRANT satubus_reader TO satubus_restricted;
REVOKE ALL ON FUNCTION audit.append FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO satubus_reader, satubus_audit_reader;
GRANT EXECUTE ON FUNCTION audit.append TO satubus_reader;
GRANT SELECT ON audit.access_log TO satubus_audit_reader;
