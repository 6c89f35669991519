//! Credentials of the services calling `/internal/v1`: HTTP Basic with the service's name
//! and secret. The gateway keeps only a SHA-256 of each secret and the routes each service
//! may call (`internal_clients.<service>`, `-` in the name written `_`).

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::InternalClientSettings;
use crate::error::ApiError;

/// An internal route, as named in `internal_clients.<service>.routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalRoute {
    /// `POST /internal/v1/connections/{id}/access-token`.
    AccessToken,
    /// `GET /internal/v1/connections/{id}/webhook-secrets`.
    WebhookSecrets,
    /// `GET /internal/v1/portals/{portal_id}/connections`.
    PortalConnections,
}

impl InternalRoute {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::WebhookSecrets => "webhook_secrets",
            Self::PortalConnections => "portal_connections",
        }
    }
}

/// The configured internal clients.
#[derive(Debug, Clone)]
pub struct InternalClients {
    clients: BTreeMap<String, InternalClientSettings>,
}

/// Lower-case hex SHA-256 of `value`.
pub fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl InternalClients {
    /// From `internal_clients`.
    pub fn new(clients: BTreeMap<String, InternalClientSettings>) -> Self {
        Self { clients }
    }

    /// The calling service's name, if its credentials check out and it may call `route`.
    pub fn authorize(&self, req: &HttpRequest, route: InternalRoute) -> Result<String, ApiError> {
        let unauthenticated =
            || ApiError::Unauthenticated("missing or wrong service credentials".to_owned());
        let encoded = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .ok_or_else(unauthenticated)?;
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(unauthenticated)?;
        let (service, secret) = decoded.split_once(':').ok_or_else(unauthenticated)?;
        let client = self
            .clients
            .get(&service.replace('-', "_"))
            .ok_or_else(unauthenticated)?;
        let presented = sha256_hex(secret);
        let matches: bool = presented
            .as_bytes()
            .ct_eq(client.secret_sha256.to_ascii_lowercase().as_bytes())
            .into();
        if !matches {
            return Err(unauthenticated());
        }
        if !client.routes.iter().any(|r| r == route.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "{service} may not call this route"
            )));
        }
        Ok(service.to_owned())
    }
}
