-- Many messages written by one transaction as one row: a whole-org rescore commits
-- thousands of events per batch, and a row per event (a heap tuple and three index entries
-- each) was a third of its database time. The relay publishes each message of a bundle as
-- its own AMQP message, with its own id, exactly as if it had been a row of `outbox`, and
-- marks the bundle sent once the broker has confirmed all of them (a bundle is published
-- again whole if any is not: consumers already skip duplicate message ids).
--
-- A table of its own, not a kind of `outbox` row: a relay of the previous release reads
-- only `outbox`, so during a rolling deploy it can never publish a bundle as one message.
-- Bundles wait for an upgraded relay instead; only an upgraded service writes them.
CREATE TABLE outbox_bundles (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The messages, element by element (all arrays have `messages` elements).
    message_ids UUID[] NOT NULL,
    routing_keys TEXT[] NOT NULL,
    message_types TEXT[] NOT NULL,
    correlation_ids TEXT[] NOT NULL,
    org_ids UUID[] NOT NULL,
    bodies BYTEA[] NOT NULL,
    created_ats TIMESTAMPTZ[] NOT NULL,
    messages INTEGER NOT NULL CHECK (messages > 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ,
    claimed_until TIMESTAMPTZ,
    CHECK (cardinality(message_ids) = messages AND cardinality(routing_keys) = messages
        AND cardinality(message_types) = messages AND cardinality(correlation_ids) = messages
        AND cardinality(org_ids) = messages AND cardinality(bodies) = messages
        AND cardinality(created_ats) = messages)
);

-- Stored out of line without compression: protobuf bodies barely compress, and compressing
-- a megabyte per bundle cost more than it saved.
ALTER TABLE outbox_bundles ALTER COLUMN bodies SET STORAGE EXTERNAL;

-- The relay's scan and the retention sweep, as for `outbox`.
CREATE INDEX outbox_bundles_unsent_idx ON outbox_bundles (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_bundles_sent_at_idx ON outbox_bundles (sent_at) WHERE sent_at IS NOT NULL;
