-- Agencies' gateway tokens (only their SHA-256 digests: satubus/tokens.py) and the province's blocks. Written by
-- `satubus agency credentials|block` as the owner; read by the gateway (tokens and blocks) and the API (blocks).
CREATE TABLE bus.gateway_tokens (
    token_id     text PRIMARY KEY,
    agency       text NOT NULL,
    digest       bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by   text NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text
);
CREATE INDEX gateway_tokens_agency ON bus.gateway_tokens (agency);

CREATE TABLE bus.agency_blocks (
    agency      text PRIMARY KEY,
    blocked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    blocked_by  text NOT NULL,
    reason      text NOT NULL
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'satubus_token_reader') THEN
        CREATE ROLE satubus_token_reader NOLOGIN;
    END IF;
END
$$;

-- 0008's default privileges gave the materializer's role every new table of bus: not these.
REVOKE ALL ON bus.gateway_tokens, bus.agency_blocks FROM satubus_writer;
GRANT USAGE ON SCHEMA bus TO satubus_token_reader;
GRANT SELECT ON bus.gateway_tokens, bus.agency_blocks TO satubus_token_reader;
GRANT SELECT ON bus.agency_blocks TO satubus_reader;
