DROP INDEX record_scores_pending;
CREATE INDEX record_scores_pending ON record_scores (connection_id, object_type, pending_since)
    WHERE pending_since IS NOT NULL;
