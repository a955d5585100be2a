-- Vocelio control API schema, version 1.
-- Portable SQL (SQLite and Postgres): TEXT ids, BIGINT milliseconds since
-- the Unix epoch for times, BIGINT 0/1 for flags, JSON documents as TEXT.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_ms   BIGINT NOT NULL,
    revoked_ms   BIGINT,
    last_used_ms BIGINT
);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE flows (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    document   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE trunks (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE numbers (
    id         TEXT PRIMARY KEY,
    e164       TEXT NOT NULL UNIQUE,
    agent_id   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    trunk_id   TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE voice_providers (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    name          TEXT NOT NULL,
    language      TEXT NOT NULL,
    price_per_min DOUBLE PRECISION NOT NULL,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE calls (
    id          TEXT PRIMARY KEY,
    engine_call TEXT NOT NULL,
    direction   TEXT NOT NULL,
    transport   TEXT NOT NULL,
    agent       TEXT NOT NULL,
    from_number TEXT,
    to_number   TEXT,
    status      TEXT NOT NULL,
    end_reason  TEXT,
    started_ms  BIGINT NOT NULL,
    answered_ms BIGINT,
    ended_ms    BIGINT,
    campaign_id TEXT,
    contact_id  TEXT,
    variant     TEXT,
    voice       TEXT,
    outcome     TEXT,
    summary     TEXT,
    sentiment   DOUBLE PRECISION,
    mos         DOUBLE PRECISION,
    loss_percent DOUBLE PRECISION,
    jitter_ms   DOUBLE PRECISION,
    recording   TEXT,
    insights    TEXT
);
CREATE INDEX calls_started ON calls (started_ms);
CREATE INDEX calls_status ON calls (status);
CREATE INDEX calls_engine ON calls (engine_call);
CREATE INDEX calls_campaign ON calls (campaign_id);

CREATE TABLE transcripts (
    call_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    speaker     TEXT NOT NULL,
    text        TEXT NOT NULL,
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    interrupted BIGINT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE turn_metrics (
    call_id          TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    voice_to_voice_ms DOUBLE PRECISION,
    metrics          TEXT NOT NULL,
    created_ms       BIGINT NOT NULL,
    PRIMARY KEY (call_id, seq)
);

CREATE TABLE campaigns (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    spec         TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    started_ms   BIGINT,
    completed_ms BIGINT
);

CREATE TABLE contacts (
    id              TEXT PRIMARY KEY,
    campaign_id     TEXT NOT NULL,
    e164            TEXT NOT NULL,
    name            TEXT,
    timezone        TEXT NOT NULL,
    variables       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    variant         TEXT,
    last_result     TEXT,
    call_id         TEXT,
    converted       BIGINT NOT NULL DEFAULT 0,
    updated_ms      BIGINT NOT NULL,
    -- Upload order within the campaign (lists and dialling follow it).
    seq             BIGINT NOT NULL DEFAULT 0,
    UNIQUE (campaign_id, e164)
);
CREATE INDEX contacts_due ON contacts (campaign_id, status, next_attempt_ms);

CREATE TABLE dnc (
    e164       TEXT PRIMARY KEY,
    reason     TEXT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    active     BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_ms      BIGINT NOT NULL,
    delivered_ms    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);

-- One live row per engine call id (the engine numbers calls from 1 again
-- after a restart; rows of earlier runs are all ended by then).
CREATE UNIQUE INDEX calls_live_engine ON calls (engine_call) WHERE status <> 'ended';
