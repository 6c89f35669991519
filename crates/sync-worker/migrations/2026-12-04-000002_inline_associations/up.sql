-- A full sync reads contacts' and deals' associations embedded in their list pages and
-- writes them with the page; runs started before (or with `sync.inline_associations`
-- off) read them afterwards with v4 batch reads. Each run object remembers which, so a
-- run resumed by another version or setting finishes the way it began.
ALTER TABLE sync_run_objects ADD COLUMN associations_inline boolean NOT NULL DEFAULT false;
