DROP INDEX scores_without_inputs_idx;
ALTER TABLE scores DROP COLUMN input_open_won_count;
CREATE INDEX scores_without_inputs_idx ON scores (org_id) WHERE input_deal_count IS NULL;
