-- Publishing takes pending records in id order, a few hundred at a time. Indexed by
-- connection only, every take fetched and sorted all the connection's pending rows (50,000
-- after a full sync of contacts, again for each of its 250 takes); with the id in the
-- index a take reads just the rows it publishes.
DROP INDEX contacts_pending_idx;
CREATE INDEX contacts_pending_idx ON contacts (connection_id, id) WHERE publish_pending;
DROP INDEX companies_pending_idx;
CREATE INDEX companies_pending_idx ON companies (connection_id, id) WHERE publish_pending;
DROP INDEX deals_pending_idx;
CREATE INDEX deals_pending_idx ON deals (connection_id, id) WHERE publish_pending;
