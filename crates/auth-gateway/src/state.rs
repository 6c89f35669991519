//! What every request handler shares.

use chrono::{DateTime, Utc};
use platform::db::Pool;
use platform::jwt::InternalTokenSigner;
use platform::outbox::RelayWaker;
use prometheus::IntCounterVec;
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use crate::config::{OAuthSettings, UpstreamSettings};
use crate::db;
use crate::error::ApiError;
use crate::hubspot::HubSpot;
use crate::internal_auth::InternalClients;
use crate::vault::{Field, Vault};

/// The gateway's shared state.
pub struct AppState {
    /// Connections in the `auth` schema.
    pub pool: Pool,
    /// The token vault.
    pub vault: Vault,
    /// HubSpot access.
    pub hubspot: HubSpot,
    /// Wakes the outbox relay after a commit that enqueued events.
    pub relay_waker: RelayWaker,
    /// The OAuth app's settings.
    pub oauth: OAuthSettings,
    /// OAuth tokens expiring within this margin are refreshed first.
    pub refresh_margin: chrono::Duration,
    /// Mints internal tokens for forwarded requests.
    pub internal_jwt: InternalTokenSigner,
    /// Services allowed on `/internal/v1`.
    pub clients: InternalClients,
    /// Where `/api/v1` routes of other services go.
    pub upstreams: UpstreamSettings,
    /// HTTP client for forwarding.
    pub http: reqwest::Client,
    /// `hubscore_auth_token_refreshes_total{outcome}`.
    pub refreshes: IntCounterVec,
}

impl AppState {
    /// Opens one stored secret of a connection, if stored.
    pub async fn open_secret(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        connection_id: Uuid,
        field: Field,
    ) -> Result<Option<SecretString>, ApiError> {
        let Some(envelope) = db::get_secret(conn, connection_id, field).await? else {
            return Ok(None);
        };
        self.vault
            .open(connection_id, field, &envelope)
            .map(Some)
            .map_err(|e| {
                ApiError::Internal(anyhow::anyhow!(
                    "secret {} of connection {connection_id}: {e}",
                    field.as_str()
                ))
            })
    }

    /// Seals and stores one secret.
    pub async fn store_secret(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        connection_id: Uuid,
        field: Field,
        secret: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let sealed = self
            .vault
            .seal(connection_id, field, secret.expose_secret());
        db::put_secret(conn, connection_id, field, &sealed, now).await?;
        Ok(())
    }
}
