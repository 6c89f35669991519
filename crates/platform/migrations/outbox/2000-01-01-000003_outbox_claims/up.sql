-- A relay claims a batch of entries for a while (a lease) in a short transaction, publishes
-- them outside any transaction, then marks them sent; other relays skip claimed entries
-- until the lease runs out (the claiming relay died). NULL: not claimed.
--
-- Safe while the previous release runs: its relay ignores the column (it locks rows
-- instead), and a nullable column without a default is added without rewriting the table.
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;

-- Claiming rewrites each row once more before it is marked sent; free room on every page
-- lets PostgreSQL do that in place (a HOT update, claimed_until being in no index) instead
-- of adding index entries. Applies to pages written from now on.
ALTER TABLE outbox SET (fillfactor = 50);
