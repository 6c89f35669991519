-- Back to one row per message id: keep one of each id's rows (any of them says "applied").
DELETE FROM processed_messages a
    USING processed_messages b
    WHERE a.message_id = b.message_id AND a.queue > b.queue;
ALTER TABLE processed_messages DROP CONSTRAINT processed_messages_pkey;
ALTER TABLE processed_messages DROP COLUMN queue;
ALTER TABLE processed_messages ADD PRIMARY KEY (message_id);
