DROP INDEX scores_without_inputs_idx;
ALTER TABLE scores
    DROP COLUMN input_last_activity_at,
    DROP COLUMN input_deal_count,
    DROP COLUMN input_open_probability,
    DROP COLUMN input_amount_cents,
    DROP COLUMN input_stages,
    DROP COLUMN input_activity_at;
