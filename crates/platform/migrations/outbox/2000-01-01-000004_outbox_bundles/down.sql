DROP TABLE outbox_bundles;
