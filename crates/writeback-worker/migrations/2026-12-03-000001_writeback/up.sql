-- Connections as auth-gateway announced them (connection.established / connection.closed).
CREATE TABLE connections (
    connection_id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    -- 'oauth' or 'private_app'.
    auth_kind TEXT NOT NULL,
    scopes TEXT[] NOT NULL DEFAULT '{}',
    -- 'active' or 'closed'.
    status TEXT NOT NULL,
    -- When the event that set `status` happened; an older event never overrides a newer.
    status_changed_at TIMESTAMPTZ NOT NULL,
    -- Properties must be (re)checked and created before the next write.
    needs_prepare BOOLEAN NOT NULL DEFAULT TRUE,
    -- Bumped by every request to prepare; preparing settles only the version it started from.
    prepare_version BIGINT NOT NULL DEFAULT 0,
    -- Writes wait until then (re-authorization needed, HubSpot unavailable).
    paused_until TIMESTAMPTZ,
    -- Why writes are paused, for the status route.
    paused_reason TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The outbound mapping per connection; a connection without a row uses the defaults.
CREATE TABLE mappings (
    connection_id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    mapping JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What preparing the properties found, per object type and purpose: only 'ready' targets
-- are written.
CREATE TABLE property_targets (
    connection_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    purpose TEXT NOT NULL,
    property TEXT NOT NULL,
    -- 'ready', 'incompatible', 'missing_scope' or 'error'.
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object_type, purpose)
);

-- The latest score per record (kept for backfills), whether it still has to be written,
-- and what was last written successfully.
CREATE TABLE record_scores (
    connection_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    score SMALLINT,
    risk_level TEXT NOT NULL,
    top_factor TEXT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    config_version BIGINT NOT NULL,
    -- The score.updated message that brought this score.
    message_id UUID NOT NULL,
    -- Bumped by every newer score; a write settles only the revision it carried.
    revision BIGINT NOT NULL DEFAULT 1,
    -- Set while a newer score waits to be compared and written.
    pending_since TIMESTAMPTZ,
    -- When the latest score was stored; a record is written once it stopped changing.
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Revision claimed by the flusher that holds the connection's lock.
    inflight_revision BIGINT,
    -- Written even if unchanged (backfill).
    force_write BOOLEAN NOT NULL DEFAULT FALSE,
    -- Property name -> value last written successfully.
    written JSONB NOT NULL DEFAULT '{}',
    written_at TIMESTAMPTZ,
    -- Failed attempts of the pending revision (retryable failures).
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, object_type, object_id)
);

CREATE INDEX record_scores_pending ON record_scores (connection_id, object_type, pending_since)
    WHERE pending_since IS NOT NULL;

-- Counters and the last outcome per connection, for the status route.
CREATE TABLE writeback_stats (
    connection_id UUID PRIMARY KEY,
    written BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    requests BIGINT NOT NULL DEFAULT 0,
    last_success_at TIMESTAMPTZ,
    last_error TEXT,
    last_error_at TIMESTAMPTZ,
    backfill_requested_at TIMESTAMPTZ,
    backfill_total BIGINT NOT NULL DEFAULT 0
);

-- The latest failure per record that HubSpot refused (kept until the record is written).
CREATE TABLE record_failures (
    connection_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    reason TEXT NOT NULL,
    retryable BOOLEAN NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, object_type, object_id)
);

-- One row per batch request sent (the writeback log).
CREATE TABLE writeback_log (
    id BIGSERIAL PRIMARY KEY,
    connection_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    written INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    error TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX writeback_log_connection ON writeback_log (connection_id, id);
