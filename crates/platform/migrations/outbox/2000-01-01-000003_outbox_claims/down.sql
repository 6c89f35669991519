ALTER TABLE outbox RESET (fillfactor);
ALTER TABLE outbox DROP COLUMN claimed_until;
