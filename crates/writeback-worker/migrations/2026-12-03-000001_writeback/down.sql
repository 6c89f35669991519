DROP TABLE writeback_log;
DROP TABLE record_failures;
DROP TABLE writeback_stats;
DROP TABLE record_scores;
DROP TABLE property_targets;
DROP TABLE mappings;
DROP TABLE connections;
