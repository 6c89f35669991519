-- sync-worker's schema: connections it knows of (from connection.* messages), the mirror of
-- each connection's CRM data, sync runs with per-object-type checkpoints, and webhook event
-- identities already applied. Every customer-owned row carries org_id.

CREATE TABLE connections (
    connection_id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    -- 'oauth' or 'private_app'
    auth_kind TEXT NOT NULL,
    -- 'active' or 'closed'
    status TEXT NOT NULL,
    established_at TIMESTAMPTZ,
    closed_at TIMESTAMPTZ,
    -- Reconciliation bookkeeping: the newest modified-since window start covered.
    reconciled_through TIMESTAMPTZ,
    reconciled_at TIMESTAMPTZ,
    archived_checked_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX connections_active_portal_idx ON connections (portal_id) WHERE status = 'active';

-- HubSpot contacts. A contact that is not a customer (no or invalid e-mail, losing
-- duplicate, filtered out) is kept with skip_reason set, so merges, associations and
-- dedupe see it. Deleted records are kept with archived = true.
CREATE TABLE contacts (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    id BIGINT NOT NULL,
    email TEXT,
    name TEXT,
    company_name TEXT,
    phone TEXT,
    job_title TEXT,
    city TEXT,
    state TEXT,
    country TEXT,
    website TEXT,
    lead_status TEXT,
    lifecycle_stage TEXT,
    owner_id BIGINT,
    last_activity_at TIMESTAMPTZ,
    first_seen_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ,
    skip_reason TEXT,
    archived BOOLEAN NOT NULL DEFAULT false,
    -- When archived last changed, to order deletions and restores delivered out of order.
    status_changed_at TIMESTAMPTZ,
    merged_into BIGINT,
    privacy_deleted BOOLEAN NOT NULL DEFAULT false,
    custom_attributes JSONB NOT NULL DEFAULT '{}',
    -- Changed since last published in crm.changed.
    publish_pending BOOLEAN NOT NULL DEFAULT true,
    -- Last published as a live customer (so a later removal is announced).
    published_live BOOLEAN NOT NULL DEFAULT false,
    -- The last full run that saw it in HubSpot.
    seen_run UUID,
    PRIMARY KEY (connection_id, id)
);
CREATE INDEX contacts_email_idx ON contacts (connection_id, email);
CREATE INDEX contacts_pending_idx ON contacts (connection_id) WHERE publish_pending;

CREATE TABLE companies (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    id BIGINT NOT NULL,
    name TEXT,
    domain TEXT,
    website TEXT,
    industry TEXT,
    employee_count BIGINT,
    annual_revenue_cents BIGINT,
    lifecycle_stage TEXT,
    owner_id BIGINT,
    last_activity_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ,
    skip_reason TEXT,
    archived BOOLEAN NOT NULL DEFAULT false,
    status_changed_at TIMESTAMPTZ,
    merged_into BIGINT,
    custom_attributes JSONB NOT NULL DEFAULT '{}',
    publish_pending BOOLEAN NOT NULL DEFAULT true,
    published_live BOOLEAN NOT NULL DEFAULT false,
    seen_run UUID,
    PRIMARY KEY (connection_id, id)
);
CREATE INDEX companies_pending_idx ON companies (connection_id) WHERE publish_pending;

CREATE TABLE deals (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    id BIGINT NOT NULL,
    name TEXT,
    pipeline_id TEXT,
    stage_id TEXT,
    amount_cents BIGINT,
    closed_at TIMESTAMPTZ,
    close_probability DOUBLE PRECISION,
    owner_id BIGINT,
    created_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ,
    skip_reason TEXT,
    archived BOOLEAN NOT NULL DEFAULT false,
    status_changed_at TIMESTAMPTZ,
    merged_into BIGINT,
    custom_attributes JSONB NOT NULL DEFAULT '{}',
    publish_pending BOOLEAN NOT NULL DEFAULT true,
    published_live BOOLEAN NOT NULL DEFAULT false,
    seen_run UUID,
    PRIMARY KEY (connection_id, id)
);
CREATE INDEX deals_pending_idx ON deals (connection_id) WHERE publish_pending;

CREATE TABLE owners (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    id BIGINT NOT NULL,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    kind TEXT NOT NULL,
    user_id BIGINT,
    archived BOOLEAN NOT NULL DEFAULT false,
    source_updated_at TIMESTAMPTZ,
    PRIMARY KEY (connection_id, id)
);

CREATE TABLE pipelines (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    id TEXT NOT NULL,
    label TEXT NOT NULL,
    display_order INTEGER NOT NULL,
    archived BOOLEAN NOT NULL DEFAULT false,
    -- [{id, label, display_order, archived, probability, is_closed}] in display order.
    stages JSONB NOT NULL,
    PRIMARY KEY (connection_id, id)
);

-- Associations, each edge stored once from its canonical side.
CREATE TABLE contact_companies (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    contact_id BIGINT NOT NULL,
    company_id BIGINT NOT NULL,
    is_primary BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (connection_id, contact_id, company_id)
);
CREATE INDEX contact_companies_company_idx ON contact_companies (connection_id, company_id);

CREATE TABLE deal_contacts (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    deal_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (connection_id, deal_id, contact_id)
);
CREATE INDEX deal_contacts_contact_idx ON deal_contacts (connection_id, contact_id);

CREATE TABLE deal_companies (
    connection_id UUID NOT NULL,
    org_id UUID NOT NULL,
    deal_id BIGINT NOT NULL,
    company_id BIGINT NOT NULL,
    PRIMARY KEY (connection_id, deal_id, company_id)
);
CREATE INDEX deal_companies_company_idx ON deal_companies (connection_id, company_id);

CREATE TABLE sync_runs (
    id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    connection_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    -- 'full', 'incremental' or 'reconciliation'
    mode TEXT NOT NULL,
    -- {"full": true} | {"object_type": "contact"} | {"records": {"object_type": "...", "ids": [..]}}
    scope JSONB NOT NULL,
    reason TEXT NOT NULL,
    -- 'queued', 'running', 'succeeded', 'failed', 'cancelled'
    state TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    last_error TEXT,
    correlation_id TEXT NOT NULL,
    last_progress_at TIMESTAMPTZ
);
CREATE INDEX sync_runs_connection_idx ON sync_runs (connection_id, requested_at DESC);
CREATE INDEX sync_runs_open_idx ON sync_runs (requested_at) WHERE state IN ('queued', 'running');

-- Per object type of a run: HubSpot's total, counts, and the checkpoint (paging cursor).
CREATE TABLE sync_run_objects (
    run_id UUID NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    object_type TEXT NOT NULL,
    total BIGINT,
    fetched BIGINT NOT NULL DEFAULT 0,
    written BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    -- reason -> count
    skip_reasons JSONB NOT NULL DEFAULT '{}',
    -- The paging cursor of the next page to read; NULL before the first page.
    cursor TEXT,
    records_done BOOLEAN NOT NULL DEFAULT false,
    -- Associations read for mirror ids up to this one (keyset checkpoint).
    associations_after BIGINT,
    associations_done BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, object_type)
);

-- Webhook event identities already applied (HubSpot's eventId alone is not unique).
CREATE TABLE webhook_events (
    connection_id UUID NOT NULL,
    subscription_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    object_id BIGINT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, subscription_id, event_id, object_id, occurred_at)
);
CREATE INDEX webhook_events_applied_idx ON webhook_events (applied_at);
