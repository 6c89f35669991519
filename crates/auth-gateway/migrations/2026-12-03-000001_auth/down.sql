DROP TABLE audit_log;
DROP TABLE oauth_states;
DROP TABLE credentials;
DROP TABLE connections;
