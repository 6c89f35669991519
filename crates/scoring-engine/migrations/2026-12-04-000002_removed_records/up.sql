-- Records deleted or merged away in HubSpot, kept for a while after their rows are gone:
-- a change committed by sync-worker before the removal that reaches us after it (a
-- redelivery, a replica that was slower) must not bring the record back. `removed_at` is
-- the removing message's committed_at; a change committed later (a restore) wins.
CREATE TABLE removed_records (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    object_type SMALLINT NOT NULL,
    object_id BIGINT NOT NULL,
    removed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, portal_id, object_type, object_id)
);
CREATE INDEX removed_records_age_idx ON removed_records (org_id, removed_at);
