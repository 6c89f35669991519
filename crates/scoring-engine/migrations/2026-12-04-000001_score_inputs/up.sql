-- Every factor's raw input as of the stored score, in a form that can be re-weighed at any
-- later "now" and under any config: the latest sales activity as a timestamp (not days),
-- every update time (not a count for one window), every stage a company's contacts have
-- (not the best under one config's values). A config change and its preview re-weigh
-- these instead of re-reading the projection; they are rewritten in the same transaction
-- as every projection change that moves them (under the org lock), so they always equal
-- what the projection gives. deal_count NULL marks a row written before they were stored
-- (such an org is rescored from the projection).
ALTER TABLE scores
    ADD COLUMN input_last_activity_at TIMESTAMPTZ,
    ADD COLUMN input_deal_count BIGINT,
    ADD COLUMN input_open_probability DOUBLE PRECISION,
    ADD COLUMN input_amount_cents BIGINT,
    ADD COLUMN input_stages TEXT[],
    ADD COLUMN input_activity_at TIMESTAMPTZ[];

-- Finds an org's rows without inputs at once (empty once every row has them).
CREATE INDEX scores_without_inputs_idx ON scores (org_id) WHERE input_deal_count IS NULL;
