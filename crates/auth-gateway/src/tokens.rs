//! Handing out a connection's access token, refreshing OAuth tokens ahead of expiry.
//!
//! One refresh at a time per connection, across every gateway replica: the refresh runs
//! in a transaction holding the connection's row lock (`SELECT ... FOR UPDATE`). Whoever
//! gets the lock next sees the new token and returns it without calling HubSpot.

use chrono::{DateTime, Utc};
use contracts::v1::CloseReason;
use diesel_async::AsyncConnection as _;
use hubspot_client::HubSpotError;
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use crate::db::{self, ConnectionRow, auth_kind, status};
use crate::error::ApiError;
use crate::internal_auth::sha256_hex;
use crate::state::AppState;
use crate::vault::Field;

/// A usable access token.
pub struct IssuedToken {
    /// The connection.
    pub connection: ConnectionRow,
    /// The token.
    pub access_token: SecretString,
    /// When it expires (`None` for private-app tokens).
    pub expires_at: Option<DateTime<Utc>>,
}

enum Locked {
    Issued(Box<IssuedToken>),
    Refused(ApiError),
}

fn usable(row: &ConnectionRow) -> Result<(), ApiError> {
    match row.status.as_str() {
        status::DISCONNECTED => Err(ApiError::Disconnected(
            "the connection was disconnected".to_owned(),
        )),
        status::REAUTH_REQUIRED => Err(ApiError::ReauthRequired(
            "HubSpot refused the refresh token; an admin must reconnect the portal".to_owned(),
        )),
        _ => Ok(()),
    }
}

impl AppState {
    fn needs_refresh(
        &self,
        row: &ConnectionRow,
        current: &SecretString,
        rejected_sha256: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        if row.auth_kind != auth_kind::OAUTH {
            return false;
        }
        let rejected = rejected_sha256
            .is_some_and(|r| r.eq_ignore_ascii_case(&sha256_hex(current.expose_secret())));
        let expiring = row
            .access_token_expires_at
            .is_none_or(|at| at <= now + self.refresh_margin);
        rejected || expiring
    }

    /// The connection's current access token, refreshed first when it is an OAuth token
    /// that expires soon or that the caller says HubSpot rejected (`rejected_sha256`).
    pub async fn access_token(
        &self,
        connection_id: Uuid,
        rejected_sha256: Option<&str>,
    ) -> Result<IssuedToken, ApiError> {
        let mut conn = self.pool.get().await?;
        let row = db::find_connection_any_org(&mut conn, connection_id)
            .await?
            .ok_or_else(ApiError::connection_not_found)?;
        usable(&row)?;
        let current = self
            .open_secret(&mut conn, connection_id, Field::AccessToken)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "connection {connection_id} has no access token"
                ))
            })?;
        if !self.needs_refresh(&row, &current, rejected_sha256, Utc::now()) {
            return Ok(IssuedToken {
                expires_at: row.access_token_expires_at,
                connection: row,
                access_token: current,
            });
        }
        let outcome = conn
            .transaction::<Locked, ApiError, _>(async |conn| {
                let row = db::lock_connection(conn, connection_id)
                    .await?
                    .ok_or_else(ApiError::connection_not_found)?;
                if let Err(refused) = usable(&row) {
                    return Ok(Locked::Refused(refused));
                }
                let current = self
                    .open_secret(conn, connection_id, Field::AccessToken)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!("connection {connection_id} has no access token"))
                    })?;
                if !self.needs_refresh(&row, &current, rejected_sha256, Utc::now()) {
                    // Another request (maybe on another replica) refreshed while we waited.
                    return Ok(Locked::Issued(Box::new(IssuedToken {
                        expires_at: row.access_token_expires_at,
                        connection: row,
                        access_token: current,
                    })));
                }
                let refresh = self
                    .open_secret(conn, connection_id, Field::RefreshToken)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Internal(anyhow::anyhow!("OAuth connection {connection_id} has no refresh token"))
                    })?;
                match self.hubspot.refresh(refresh.expose_secret()).await {
                    Ok(answer) => {
                        let now = Utc::now();
                        let expires_at = now + chrono::Duration::seconds(answer.expires_in);
                        let access = SecretString::from(answer.access_token);
                        self.store_secret(conn, connection_id, Field::AccessToken, &access, now)
                            .await?;
                        if let Some(rotated) = answer.refresh_token
                            && rotated != refresh.expose_secret()
                        {
                            let rotated = SecretString::from(rotated);
                            self.store_secret(conn, connection_id, Field::RefreshToken, &rotated, now)
                                .await?;
                        }
                        db::set_token_facts(conn, connection_id, Some(expires_at), None, now).await?;
                        self.refreshes.with_label_values(&["refreshed"]).inc();
                        tracing::info!(connection.id = %connection_id, hubspot.portal_id = row.portal_id, "access token refreshed");
                        Ok(Locked::Issued(Box::new(IssuedToken {
                            connection: row,
                            access_token: access,
                            expires_at: Some(expires_at),
                        })))
                    }
                    Err(HubSpotError::OAuth { error, .. }) if error == "invalid_grant" => {
                        let now = Utc::now();
                        db::set_status(conn, connection_id, status::REAUTH_REQUIRED, now).await?;
                        db::audit(
                            conn,
                            row.org_id,
                            "service:auth-gateway",
                            "connection.reauth_required",
                            Some(connection_id),
                            serde_json::json!({"reason": "HubSpot refused the refresh token (invalid_grant)"}),
                        )
                        .await?;
                        crate::events::closed(
                            conn,
                            &row,
                            crate::events::service_actor(),
                            CloseReason::RefreshFailed,
                            "HubSpot refused the refresh token; an admin must reconnect",
                            now,
                        )
                        .await?;
                        self.refreshes.with_label_values(&["invalid_grant"]).inc();
                        tracing::warn!(connection.id = %connection_id, hubspot.portal_id = row.portal_id, "refresh token refused; connection needs reauthorization");
                        Ok(Locked::Refused(ApiError::ReauthRequired(
                            "HubSpot refused the refresh token; an admin must reconnect the portal"
                                .to_owned(),
                        )))
                    }
                    Err(other) => {
                        self.refreshes.with_label_values(&["failed"]).inc();
                        tracing::warn!(connection.id = %connection_id, error = %other, "token refresh failed");
                        Ok(Locked::Refused(ApiError::HubSpotUnavailable(
                            "HubSpot's token endpoint failed; retry later".to_owned(),
                        )))
                    }
                }
            })
            .await?;
        match outcome {
            Locked::Issued(token) => Ok(*token),
            Locked::Refused(error) => {
                if matches!(error, ApiError::ReauthRequired(_)) {
                    self.relay_waker.wake();
                }
                Err(error)
            }
        }
    }
}
