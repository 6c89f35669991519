DROP TABLE removed_records;
