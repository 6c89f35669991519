-- A relay claims a batch of entries for a while (a lease) in a short transaction, publishes
-- them outside any transaction, then marks them sent; other relays skip claimed entries
-- until the lease runs out (the claiming relay died). NULL: not claimed.
--
-- Safe while the previous release runs: its relay ignores the column (it locks rows
-- instead), and a nullable column without a default is added without rewriting the table.
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMPTZ;
