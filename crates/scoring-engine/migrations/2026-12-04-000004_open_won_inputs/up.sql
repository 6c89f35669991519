-- How many open or won deals a score's amount sums (0: none). With it the org means the
-- deal-value factor compares against come from one pass over the stored inputs, instead
-- of the projection's joins: the mean is over the customers that have such deals, and an
-- amount of 0 cannot tell "no deal" from "won deals without an amount". NULL marks a row
-- written before it was stored (such an org is rescored from the projection once, as
-- for the other inputs).
ALTER TABLE scores ADD COLUMN input_open_won_count BIGINT;

DROP INDEX scores_without_inputs_idx;
CREATE INDEX scores_without_inputs_idx ON scores (org_id)
    WHERE input_deal_count IS NULL OR input_open_won_count IS NULL;
