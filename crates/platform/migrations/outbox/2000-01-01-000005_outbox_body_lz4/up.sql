-- Message bodies larger than about 2 kB are compressed when written: an entry's body (a
-- scoring-engine ScoreUpdatedBatch is hundreds of kilobytes) and a bundle's bodies, which
-- 2000-01-01-000004 stored uncompressed because pglz, PostgreSQL's default method, cost
-- more than it saved (about 90 MB/s on this project's machine, inside the writer's
-- transaction). lz4 compresses the same protobuf bodies about as small at ten times the
-- speed, so a bundle of batches now writes a fraction of the TOAST chunks and WAL. Values
-- written before keep their form and read as before, so the previous release runs on. A
-- server built without lz4 keeps the previous settings (and says so) rather than failing
-- the migration.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE outbox_bundles ALTER COLUMN bodies SET COMPRESSION lz4;
    ALTER TABLE outbox_bundles ALTER COLUMN bodies SET STORAGE EXTENDED;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: outbox bodies keep their previous storage';
END
$$;
