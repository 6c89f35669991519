-- Organizations are implicit: every row carries the org_id of the caller's token.

CREATE TABLE connections (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    name text NOT NULL,
    auth_kind text NOT NULL CHECK (auth_kind IN ('oauth', 'private_app')),
    status text NOT NULL CHECK (status IN ('active', 'reauth_required', 'disconnected')),
    portal_id bigint NOT NULL,
    account_type text,
    time_zone text,
    company_currency text,
    ui_domain text,
    data_hosting_location text,
    scopes text[] NOT NULL DEFAULT '{}',
    connected_by text NOT NULL,
    connected_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    disconnected_at timestamptz,
    -- When the stored OAuth access token expires; NULL for private-app tokens.
    access_token_expires_at timestamptz,
    -- Bumped on every credential change, so a refresh can tell it raced with a rotation.
    credential_version bigint NOT NULL DEFAULT 1
);

-- One live connection per portal and org; a disconnected one may be reconnected.
CREATE UNIQUE INDEX connections_live_portal_per_org
    ON connections (org_id, portal_id) WHERE status <> 'disconnected';
CREATE INDEX connections_by_portal ON connections (portal_id);
CREATE INDEX connections_by_org ON connections (org_id, connected_at);

-- Secrets, each sealed with AES-256-GCM. `sealed` is the envelope
-- `v1:<key id>:<base64 nonce>:<base64 ciphertext+tag>`; the associated data binds it to
-- (connection_id, field), so a copy in another row or field does not decrypt.
CREATE TABLE credentials (
    connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    field text NOT NULL CHECK (field IN ('access_token', 'refresh_token', 'webhook_secret', 'previous_webhook_secret')),
    key_id text NOT NULL,
    sealed text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (connection_id, field)
);
CREATE INDEX credentials_by_key ON credentials (key_id);

-- OAuth `state` values handed out; each is accepted once before it expires.
CREATE TABLE oauth_states (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    user_sub text NOT NULL,
    connection_name text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

-- Who changed what and when; never a secret.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    connection_id uuid,
    detail jsonb NOT NULL DEFAULT '{}',
    at timestamptz NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (org_id, id);
