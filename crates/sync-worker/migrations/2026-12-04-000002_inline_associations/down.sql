ALTER TABLE sync_run_objects DROP COLUMN associations_inline;
