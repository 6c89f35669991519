-- Retention: the writeback log and sent timeline events are deleted after
-- `writeback.retention_days`. The status's count of sent events stays cumulative: what a
-- sweep deleted is added here first.
ALTER TABLE writeback_stats ADD COLUMN timeline_sent_pruned BIGINT NOT NULL DEFAULT 0;
CREATE INDEX writeback_log_finished ON writeback_log (finished_at);
CREATE INDEX timeline_events_sent ON timeline_events (sent_at) WHERE state = 'sent';
