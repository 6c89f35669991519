-- The transactional outbox and the consumer-side dedupe table, created in the service's own
-- schema (the migration runs with search_path set to it). The version sits far before any
-- service migration so the two sets never collide in __diesel_schema_migrations.

-- Messages written in the same transaction as the rows they describe; the relay publishes
-- them (with publisher confirms) and sets sent_at.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id UUID NOT NULL UNIQUE,
    routing_key TEXT NOT NULL,
    message_type TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    org_id UUID,
    body BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ
);

-- The relay's scan: unsent entries in insertion order.
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
-- The retention sweep.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Message ids a consumer has already applied, recorded in the handler's own transaction.
CREATE TABLE processed_messages (
    message_id UUID PRIMARY KEY,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX processed_messages_processed_at_idx ON processed_messages (processed_at);
