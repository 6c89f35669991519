-- A config change owes the org a rescore under its version. Set in the transaction that
-- saves the version, cleared when a rescore under it (or a newer one) has finished; a
-- replica that dies mid-rescore leaves it set, and the scheduler of any replica finishes
-- the work (whoever holds the org's rescore lock does it, the others skip it).
ALTER TABLE org_state ADD COLUMN rescore_owed_version BIGINT;
CREATE INDEX org_state_rescore_owed_idx ON org_state (org_id) WHERE rescore_owed_version IS NOT NULL;
