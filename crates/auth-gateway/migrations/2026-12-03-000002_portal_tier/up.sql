-- A private app's account tier and API limit increase, read from its daily quota: the
-- workers size their rate budget with them. NULL for OAuth connections (one limit for all).
ALTER TABLE connections ADD COLUMN tier text;
ALTER TABLE connections ADD COLUMN api_limit_increase boolean NOT NULL DEFAULT false;
