ALTER TABLE connections DROP COLUMN api_limit_increase;
ALTER TABLE connections DROP COLUMN tier;
