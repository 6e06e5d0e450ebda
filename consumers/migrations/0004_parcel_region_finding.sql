-- The unified parcel, region and finding views (unified.parcel.v1, unified.region.v1, unified.finding.v1).
CREATE TABLE unified.parcel (
    nop             text PRIMARY KEY,
    kelurahan_code  text,
    address         text,
    tax             jsonb,
    zoning          jsonb,
    permits         jsonb NOT NULL DEFAULT '[]',
    version         bigint NOT NULL,
    updated_at      timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX parcel_kelurahan_idx ON unified.parcel (kelurahan_code);

CREATE TABLE unified.region (
    kelurahan_code         text PRIMARY KEY,
    name                   text NOT NULL,
    kecamatan_code         text NOT NULL,
    kota_code              text NOT NULL,
    population             bigint NOT NULL,
    deceased               bigint NOT NULL,
    aid_recipients         bigint NOT NULL,
    students               bigint NOT NULL,
    incidents_24h          bigint NOT NULL,
    open_service_requests  bigint NOT NULL,
    version                bigint NOT NULL,
    updated_at             timestamptz NOT NULL,
    committed_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE unified.finding (
    finding_id    text PRIMARY KEY,
    kind          text NOT NULL,
    severity      text NOT NULL,
    subject_type  text NOT NULL,
    subject_id    text NOT NULL,
    agencies      text[] NOT NULL DEFAULT '{}',
    description   text NOT NULL,
    evidence      jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL,
    detected_at   timestamptz NOT NULL,
    version       bigint NOT NULL,
    updated_at    timestamptz NOT NULL,
    committed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX finding_status_kind_idx ON unified.finding (status, kind, detected_at DESC);
CREATE INDEX finding_subject_idx ON unified.finding (subject_type, subject_id);
