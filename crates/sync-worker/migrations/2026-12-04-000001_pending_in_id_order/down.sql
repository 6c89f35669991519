DROP INDEX contacts_pending_idx;
CREATE INDEX contacts_pending_idx ON contacts (connection_id) WHERE publish_pending;
DROP INDEX companies_pending_idx;
CREATE INDEX companies_pending_idx ON companies (connection_id) WHERE publish_pending;
DROP INDEX deals_pending_idx;
CREATE INDEX deals_pending_idx ON deals (connection_id) WHERE publish_pending;
