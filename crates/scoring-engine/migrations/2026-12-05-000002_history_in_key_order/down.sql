CREATE INDEX score_history_score_idx ON score_history (score_id, computed_at);
DROP INDEX score_history_customer_idx;
DROP TRIGGER score_history_key ON score_history;
DROP FUNCTION score_history_key();
ALTER TABLE score_history
    DROP COLUMN object_type,
    DROP COLUMN portal_id,
    DROP COLUMN object_id;
