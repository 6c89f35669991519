-- The flusher reads waiting scores in (pending_since, object_id) order, a few hundred at a
-- time; with object_id in the index that order comes from the index instead of a sort of
-- every waiting row (100,000 in a burst) on each read.
DROP INDEX record_scores_pending;
CREATE INDEX record_scores_pending ON record_scores (connection_id, object_type, pending_since, object_id)
    WHERE pending_since IS NOT NULL;
