ALTER TABLE property_targets DROP COLUMN conversion;
ALTER TABLE record_scores DROP COLUMN attributes_at, DROP COLUMN attributes, DROP COLUMN scored;
