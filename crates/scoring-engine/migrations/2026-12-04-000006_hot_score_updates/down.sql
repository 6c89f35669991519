ALTER TABLE scores RESET (fillfactor);
CREATE INDEX scores_org_score_idx ON scores (org_id, score, score_id);
