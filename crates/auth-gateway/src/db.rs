//! The `auth` schema: connections, their sealed credentials, OAuth states and the audit
//! log. Every query that a caller's request leads to takes the caller's `org_id`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::vault::{Field, Sealed};

/// The migrations of the `auth` schema.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// diesel's view of the tables.
mod schema {
    diesel::table! {
        /// HubSpot portals connected to an organization.
        connections (id) {
            id -> Uuid,
            org_id -> Uuid,
            name -> Text,
            auth_kind -> Text,
            status -> Text,
            portal_id -> Int8,
            account_type -> Nullable<Text>,
            time_zone -> Nullable<Text>,
            company_currency -> Nullable<Text>,
            ui_domain -> Nullable<Text>,
            data_hosting_location -> Nullable<Text>,
            scopes -> Array<Text>,
            connected_by -> Text,
            connected_at -> Timestamptz,
            updated_at -> Timestamptz,
            disconnected_at -> Nullable<Timestamptz>,
            access_token_expires_at -> Nullable<Timestamptz>,
            credential_version -> Int8,
            tier -> Nullable<Text>,
            api_limit_increase -> Bool,
        }
    }

    diesel::table! {
        /// Sealed secrets, one per connection and field.
        credentials (connection_id, field) {
            connection_id -> Uuid,
            field -> Text,
            key_id -> Text,
            sealed -> Text,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        /// OAuth states handed out.
        oauth_states (id) {
            id -> Uuid,
            org_id -> Uuid,
            user_sub -> Text,
            connection_name -> Text,
            created_at -> Timestamptz,
            expires_at -> Timestamptz,
            used_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        /// Who changed what.
        audit_log (id) {
            id -> Int8,
            org_id -> Uuid,
            actor -> Text,
            action -> Text,
            connection_id -> Nullable<Uuid>,
            detail -> Jsonb,
            at -> Timestamptz,
        }
    }

    diesel::joinable!(credentials -> connections (connection_id));
    diesel::allow_tables_to_appear_in_same_query!(connections, credentials);
}

use schema::{audit_log, connections, credentials, oauth_states};

/// `connections.status` values.
pub mod status {
    /// Usable.
    pub const ACTIVE: &str = "active";
    /// The refresh token was refused; an admin must reconnect.
    pub const REAUTH_REQUIRED: &str = "reauth_required";
    /// Disconnected by an admin.
    pub const DISCONNECTED: &str = "disconnected";
}

/// `connections.auth_kind` values.
pub mod auth_kind {
    /// OAuth code flow.
    pub const OAUTH: &str = "oauth";
    /// Private-app token.
    pub const PRIVATE_APP: &str = "private_app";
}

/// A row of `connections`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = connections)]
#[diesel(treat_none_as_null = true)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ConnectionRow {
    /// Connection id.
    pub id: Uuid,
    /// Owning organization.
    pub org_id: Uuid,
    /// Name given by the admin.
    pub name: String,
    /// `oauth` or `private_app`.
    pub auth_kind: String,
    /// `active`, `reauth_required` or `disconnected`.
    pub status: String,
    /// HubSpot portal id.
    pub portal_id: i64,
    /// HubSpot's account type.
    pub account_type: Option<String>,
    /// The portal's time zone.
    pub time_zone: Option<String>,
    /// The portal's currency.
    pub company_currency: Option<String>,
    /// The portal's UI host.
    pub ui_domain: Option<String>,
    /// The portal's data hosting location.
    pub data_hosting_location: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// `sub` of the user who connected it.
    pub connected_by: String,
    /// When it was (re)connected.
    pub connected_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was disconnected.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Expiry of the stored OAuth access token.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// Bumped on every credential change.
    pub credential_version: i64,
    /// Private apps: `starter`, `professional` or `enterprise`.
    pub tier: Option<String>,
    /// Private apps: the API limit increase was bought.
    pub api_limit_increase: bool,
}

/// A connection as the API shows it: never a secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// Connection id.
    pub id: Uuid,
    /// Name given by the admin.
    pub name: String,
    /// `active`, `reauth_required` or `disconnected`.
    pub status: String,
    /// `oauth` or `private_app`.
    pub auth_kind: String,
    /// HubSpot portal id.
    pub portal_id: i64,
    /// HubSpot's account type, e.g. `STANDARD`.
    pub account_type: Option<String>,
    /// The portal's time zone.
    pub time_zone: Option<String>,
    /// The portal's currency.
    pub company_currency: Option<String>,
    /// Private apps: `starter` (free or starter), `professional` or `enterprise`.
    pub tier: Option<String>,
    /// Private apps: the API limit increase was bought.
    pub api_limit_increase: bool,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Who connected it.
    pub connected_by: String,
    /// When.
    pub connected_at: DateTime<Utc>,
    /// When it was disconnected.
    pub disconnected_at: Option<DateTime<Utc>>,
    /// Whether a webhook secret is stored.
    pub has_webhook_secret: bool,
}

impl ConnectionRow {
    /// The API view; `has_webhook_secret` is looked up separately.
    pub fn view(&self, has_webhook_secret: bool) -> ConnectionView {
        ConnectionView {
            id: self.id,
            name: self.name.clone(),
            status: self.status.clone(),
            auth_kind: self.auth_kind.clone(),
            portal_id: self.portal_id,
            account_type: self.account_type.clone(),
            time_zone: self.time_zone.clone(),
            company_currency: self.company_currency.clone(),
            tier: self.tier.clone(),
            api_limit_increase: self.api_limit_increase,
            scopes: self.scopes.clone(),
            connected_by: self.connected_by.clone(),
            connected_at: self.connected_at,
            disconnected_at: self.disconnected_at,
            has_webhook_secret,
        }
    }
}

/// Inserts a connection.
pub async fn insert_connection(
    conn: &mut AsyncPgConnection,
    row: &ConnectionRow,
) -> QueryResult<()> {
    diesel::insert_into(connections::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The org's connections, oldest first.
pub async fn list_connections(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .order((connections::connected_at.asc(), connections::id.asc()))
        .select(ConnectionRow::as_select())
        .load(conn)
        .await
}

/// One connection of the org.
pub async fn find_connection(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A connection by id alone, for the internal API (services are not org-scoped).
pub async fn find_connection_any_org(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A connection by id, locked for update until the transaction ends: refreshes of one
/// connection queue here, across every gateway replica.
pub async fn lock_connection(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// The live (not disconnected) connection of `portal_id` in `org_id`, if any.
pub async fn live_connection_for_portal(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    portal_id: i64,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::portal_id.eq(portal_id))
        .filter(connections::status.ne(status::DISCONNECTED))
        .select(ConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The org's most recently disconnected connection of a portal: connecting the portal
/// again continues it (same id), so its mirror, scores and written-back values carry on and
/// the sync-worker catches up instead of syncing everything again.
pub async fn disconnected_connection_for_portal(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    portal_id: i64,
) -> QueryResult<Option<ConnectionRow>> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::portal_id.eq(portal_id))
        .filter(connections::status.eq(status::DISCONNECTED))
        .order((connections::disconnected_at.desc(), connections::id.desc()))
        .select(ConnectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Overwrites every column of the connection `row.id` with `row` (reconnecting it).
pub async fn replace_connection(
    conn: &mut AsyncPgConnection,
    row: &ConnectionRow,
) -> QueryResult<()> {
    diesel::update(connections::table.filter(connections::id.eq(row.id)))
        .set(row)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Every connection of a portal, across orgs.
pub async fn connections_for_portal(
    conn: &mut AsyncPgConnection,
    portal_id: i64,
) -> QueryResult<Vec<ConnectionRow>> {
    connections::table
        .filter(connections::portal_id.eq(portal_id))
        .order(connections::connected_at.asc())
        .select(ConnectionRow::as_select())
        .load(conn)
        .await
}

/// Sets a connection's status.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    new_status: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let disconnected_at = (new_status == status::DISCONNECTED).then_some(now);
    diesel::update(connections::table.filter(connections::id.eq(id)))
        .set((
            connections::status.eq(new_status),
            connections::updated_at.eq(now),
            connections::disconnected_at.eq(disconnected_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Records new credentials' facts: expiry and scopes, bumping the credential version.
pub async fn set_token_facts(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    expires_at: Option<DateTime<Utc>>,
    scopes: Option<&[String]>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let target = connections::table.filter(connections::id.eq(id));
    let common = (
        connections::access_token_expires_at.eq(expires_at),
        connections::updated_at.eq(now),
        connections::credential_version.eq(connections::credential_version + 1),
    );
    match scopes {
        Some(scopes) => {
            diesel::update(target)
                .set((common, connections::scopes.eq(scopes)))
                .execute(conn)
                .await
        }
        None => diesel::update(target).set(common).execute(conn).await,
    }
    .map(|_| ())
}

/// Marks a connection as (re)connected through OAuth by `user_sub`.
pub async fn set_oauth_kind(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    user_sub: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(connections::table.filter(connections::id.eq(id)))
        .set((
            connections::auth_kind.eq(auth_kind::OAUTH),
            connections::connected_by.eq(user_sub),
            connections::connected_at.eq(now),
            connections::disconnected_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Stores (or replaces) one sealed secret.
pub async fn put_secret(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    field: Field,
    sealed: &Sealed,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(credentials::table)
        .values((
            credentials::connection_id.eq(connection_id),
            credentials::field.eq(field.as_str()),
            credentials::key_id.eq(&sealed.key_id),
            credentials::sealed.eq(&sealed.envelope),
            credentials::updated_at.eq(now),
        ))
        .on_conflict((credentials::connection_id, credentials::field))
        .do_update()
        .set((
            credentials::key_id.eq(&sealed.key_id),
            credentials::sealed.eq(&sealed.envelope),
            credentials::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Deletes one secret.
pub async fn delete_secret(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    field: Field,
) -> QueryResult<()> {
    diesel::delete(
        credentials::table
            .filter(credentials::connection_id.eq(connection_id))
            .filter(credentials::field.eq(field.as_str())),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The sealed envelope of one secret, if stored.
pub async fn get_secret(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    field: Field,
) -> QueryResult<Option<String>> {
    credentials::table
        .filter(credentials::connection_id.eq(connection_id))
        .filter(credentials::field.eq(field.as_str()))
        .select(credentials::sealed)
        .first(conn)
        .await
        .optional()
}

/// Which of `ids` have a webhook secret.
pub async fn with_webhook_secret(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    credentials::table
        .filter(credentials::connection_id.eq_any(ids))
        .filter(credentials::field.eq(Field::WebhookSecret.as_str()))
        .select(credentials::connection_id)
        .load(conn)
        .await
}

/// One sealed secret to re-encrypt.
#[derive(Debug, Queryable)]
pub struct SecretRow {
    /// Its connection.
    pub connection_id: Uuid,
    /// Its field name.
    pub field: String,
    /// Its envelope.
    pub sealed: String,
}

/// Up to `limit` secrets not sealed under `newest_key_id`, locked (skipping rows another
/// rotation holds), for `rotate-keys`.
pub async fn secrets_under_old_keys(
    conn: &mut AsyncPgConnection,
    newest_key_id: &str,
    limit: i64,
) -> QueryResult<Vec<SecretRow>> {
    credentials::table
        .filter(credentials::key_id.ne(newest_key_id))
        .order((credentials::connection_id, credentials::field))
        .limit(limit)
        .select((
            credentials::connection_id,
            credentials::field,
            credentials::sealed,
        ))
        .for_update()
        .skip_locked()
        .load(conn)
        .await
}

/// A new OAuth state.
pub async fn insert_oauth_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    org_id: Uuid,
    user_sub: &str,
    connection_name: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(oauth_states::table)
        .values((
            oauth_states::id.eq(id),
            oauth_states::org_id.eq(org_id),
            oauth_states::user_sub.eq(user_sub),
            oauth_states::connection_name.eq(connection_name),
            oauth_states::created_at.eq(now),
            oauth_states::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A state being accepted.
#[derive(Debug, Queryable)]
pub struct OAuthState {
    /// The org the flow connects for.
    pub org_id: Uuid,
    /// Who started it.
    pub user_sub: String,
    /// The connection name asked for.
    pub connection_name: String,
}

/// Marks the state used and returns it, if it exists, is unused and has not expired: a
/// state is accepted once.
pub async fn take_oauth_state(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<Option<OAuthState>> {
    diesel::update(
        oauth_states::table
            .filter(oauth_states::id.eq(id))
            .filter(oauth_states::used_at.is_null())
            .filter(oauth_states::expires_at.gt(now)),
    )
    .set(oauth_states::used_at.eq(now))
    .returning((
        oauth_states::org_id,
        oauth_states::user_sub,
        oauth_states::connection_name,
    ))
    .get_result(conn)
    .await
    .optional()
}

/// An audit entry as the API shows it.
#[derive(Debug, Clone, Queryable, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Entry id (increasing).
    pub id: i64,
    /// The organization.
    pub org_id: Uuid,
    /// Who: `user:<sub>` or a service.
    pub actor: String,
    /// What, e.g. `connection.created`.
    pub action: String,
    /// The connection concerned, if any.
    pub connection_id: Option<Uuid>,
    /// Details (never a secret).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    pub at: DateTime<Utc>,
}

/// Appends an audit entry.
pub async fn audit(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    actor: &str,
    action: &str,
    connection_id: Option<Uuid>,
    detail: serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::org_id.eq(org_id),
            audit_log::actor.eq(actor),
            audit_log::action.eq(action),
            audit_log::connection_id.eq(connection_id),
            audit_log::detail.eq(detail),
            audit_log::at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The org's audit entries, newest first, before `before` (an entry id) if given.
pub async fn list_audit(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditEntry>> {
    let mut query = audit_log::table
        .filter(audit_log::org_id.eq(org_id))
        .order(audit_log::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_log::id.lt(before));
    }
    query
        .select((
            audit_log::id,
            audit_log::org_id,
            audit_log::actor,
            audit_log::action,
            audit_log::connection_id,
            audit_log::detail,
            audit_log::at,
        ))
        .load(conn)
        .await
}
