CREATE INDEX scores_org_risk_idx ON scores (org_id, risk_level, score_id);
