-- scoring-engine's own projection of the CRM (fed by crm.changed), its per-org model
-- configs, current scores with their breakdown, compact score history and alerts.
-- Every row carries org_id and every query is scoped by it.

-- Contacts (hubscore's customers). source_updated_at is HubSpot's lastmodifieddate:
-- a record only replaces a stored one that is not newer (newest wins).
CREATE TABLE contacts (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    connection_id UUID NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    lifecycle_stage TEXT,
    last_activity_at TIMESTAMPTZ,
    primary_company_id BIGINT,
    source_updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, portal_id, contact_id)
);

CREATE TABLE companies (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    company_id BIGINT NOT NULL,
    connection_id UUID NOT NULL,
    name TEXT,
    domain TEXT,
    last_activity_at TIMESTAMPTZ,
    source_updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, portal_id, company_id)
);

-- status is contracts' DealStatus (0 unknown, 1 open, 2 won, 3 lost).
CREATE TABLE deals (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    deal_id BIGINT NOT NULL,
    connection_id UUID NOT NULL,
    status SMALLINT NOT NULL,
    amount_cents BIGINT,
    close_probability DOUBLE PRECISION,
    source_updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, portal_id, deal_id)
);

-- Associations, each owned by one side: a contact's record decides its companies, a
-- deal's record decides its contacts and companies.
CREATE TABLE contact_companies (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    company_id BIGINT NOT NULL,
    PRIMARY KEY (org_id, portal_id, contact_id, company_id)
);
CREATE INDEX contact_companies_company_idx ON contact_companies (org_id, portal_id, company_id);

CREATE TABLE deal_contacts (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    deal_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    PRIMARY KEY (org_id, portal_id, deal_id, contact_id)
);
CREATE INDEX deal_contacts_contact_idx ON deal_contacts (org_id, portal_id, contact_id);

CREATE TABLE deal_companies (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    deal_id BIGINT NOT NULL,
    company_id BIGINT NOT NULL,
    PRIMARY KEY (org_id, portal_id, deal_id, company_id)
);
CREATE INDEX deal_companies_company_idx ON deal_companies (org_id, portal_id, company_id);

-- Contact and deal updates of the last 90 days (one row per distinct modified time, so a
-- replayed record is not counted twice); object_type is contracts' ObjectType.
CREATE TABLE activity_log (
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    object_type SMALLINT NOT NULL,
    object_id BIGINT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, portal_id, object_type, object_id, occurred_at)
);
CREATE INDEX activity_log_occurred_at_idx ON activity_log (occurred_at);

-- Every saved model config of an org; the highest version is in force. An org without a
-- row uses the built-in default model (version 0).
CREATE TABLE configs (
    org_id UUID NOT NULL,
    version BIGINT NOT NULL,
    config JSONB NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, version)
);

-- Per-org scoring state: the org means that deal value is measured against (refreshed at
-- every whole-org rescore) and when the scheduled rescore is next due.
CREATE TABLE org_state (
    org_id UUID PRIMARY KEY,
    contact_mean_deal_cents DOUBLE PRECISION,
    company_mean_deal_cents DOUBLE PRECISION,
    means_at TIMESTAMPTZ,
    next_rescore_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX org_state_next_rescore_idx ON org_state (next_rescore_at);

-- The current score of each contact and company. score NULL with risk_level 4 is N/A.
-- Factor arrays follow the model's factor order (engagement_recency, deal_momentum,
-- lifecycle_stage, activity_frequency, deal_value) and are empty for N/A.
CREATE TABLE scores (
    score_id UUID PRIMARY KEY,
    org_id UUID NOT NULL,
    portal_id BIGINT NOT NULL,
    connection_id UUID NOT NULL,
    object_type SMALLINT NOT NULL,
    object_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    company_id BIGINT,
    display_name TEXT NOT NULL,
    score SMALLINT,
    risk_level SMALLINT NOT NULL,
    recency_days DOUBLE PRECISION,
    deal_probability DOUBLE PRECISION,
    lifecycle_stage TEXT,
    update_count INTEGER NOT NULL,
    deal_amount_cents BIGINT,
    factor_values DOUBLE PRECISION[] NOT NULL,
    weights DOUBLE PRECISION[] NOT NULL,
    contributions DOUBLE PRECISION[] NOT NULL,
    config_version BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL,
    UNIQUE (org_id, object_type, portal_id, object_id)
);
CREATE INDEX scores_org_score_idx ON scores (org_id, score, score_id);
CREATE INDEX scores_org_risk_idx ON scores (org_id, risk_level, score_id);

-- One compact row per change of a score (what the score was from computed_at on).
CREATE TABLE score_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    score_id UUID NOT NULL,
    org_id UUID NOT NULL,
    score SMALLINT,
    risk_level SMALLINT NOT NULL,
    contributions DOUBLE PRECISION[] NOT NULL,
    config_version BIGINT NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX score_history_score_idx ON score_history (score_id, computed_at);
CREATE INDEX score_history_org_idx ON score_history (org_id, computed_at);

-- Alerts raised (score.alert), so a drop is never alerted twice.
CREATE TABLE alerts (
    alert_id UUID PRIMARY KEY,
    score_id UUID NOT NULL,
    org_id UUID NOT NULL,
    -- The history row of the score that raised it; a later drop is measured only from
    -- this row on, so one drop never alerts twice.
    history_id BIGINT NOT NULL,
    reasons SMALLINT[] NOT NULL,
    old_score SMALLINT,
    new_score SMALLINT NOT NULL,
    reference_score SMALLINT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX alerts_score_idx ON alerts (score_id, created_at);
