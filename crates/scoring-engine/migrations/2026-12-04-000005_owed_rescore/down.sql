DROP INDEX org_state_rescore_owed_idx;
ALTER TABLE org_state DROP COLUMN rescore_owed_version;
