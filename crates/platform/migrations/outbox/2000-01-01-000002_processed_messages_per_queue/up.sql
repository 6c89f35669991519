-- Dedupe per consumer queue: two queues of one service that receive the same message must
-- each apply it once, so the key becomes (queue, message_id).
--
-- Safe while the previous release runs: its inserts name no queue and get '' (the column's
-- default), and its ON CONFLICT DO NOTHING still recognises its own duplicates. The new
-- release also treats an id recorded under '' as processed, so a message applied by an old
-- replica is not applied again by a new one during the rollout. The table holds days of
-- ids (the relay prunes it), so rebuilding its key is quick.
ALTER TABLE processed_messages ADD COLUMN queue TEXT NOT NULL DEFAULT '';
ALTER TABLE processed_messages DROP CONSTRAINT processed_messages_pkey;
ALTER TABLE processed_messages ADD PRIMARY KEY (queue, message_id);
