DROP INDEX timeline_events_sent;
DROP INDEX writeback_log_finished;
ALTER TABLE writeback_stats DROP COLUMN timeline_sent_pruned;
