-- Records deleted or merged away in HubSpot, remembered for a while: a crm.changed that
-- sync-worker committed before the removal and that reaches us after it (a redelivery, a
-- slower replica) must not store attribute values for the record again. `removed_at` is
-- the removing message's committed_at; a change committed later (a restore) wins.
CREATE TABLE removed_records (
    connection_id UUID NOT NULL,
    object_type TEXT NOT NULL,
    object_id BIGINT NOT NULL,
    removed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, object_type, object_id)
);
CREATE INDEX removed_records_age_idx ON removed_records (connection_id, removed_at);
