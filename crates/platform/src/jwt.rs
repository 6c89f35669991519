//! Internal JWTs: short-lived tokens that services mint to call each other and that the
//! gateway mints when it forwards a caller's request. A service trusts a request only if
//! it carries one whose issuer, audience and expiry check out.
//!
//! HS256 with one shared secret: every service both mints and verifies (workers call
//! auth-gateway's internal API), so a key pair would not narrow who can mint.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Shortest secret accepted: 32 bytes, the HS256 block strength.
const MIN_SECRET_BYTES: usize = 32;

/// Settings for minting and verifying internal tokens.
#[derive(Clone, Deserialize)]
pub struct InternalJwtSettings {
    /// The shared HMAC secret. Production sets it through the environment.
    pub secret: String,
    /// `iss` of minted tokens, and the only issuer accepted.
    pub issuer: String,
    /// Lifetime of a minted token.
    pub ttl_secs: u64,
}

impl std::fmt::Debug for InternalJwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalJwtSettings")
            .field("secret", &"***")
            .field("issuer", &self.issuer)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// The claims of an internal token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InternalClaims {
    /// Issuer.
    pub iss: String,
    /// The service the token is meant for, e.g. `sync-worker`.
    pub aud: String,
    /// Who acts: a service name, or `user:<id>` for a forwarded caller.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// The organisation the call is scoped to, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// The caller's roles, forwarded from the gateway.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// Why a token was refused. The message is safe to return to a caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Expired, wrong issuer or audience, bad signature, or not a JWT at all.
    #[error("invalid internal token: {0}")]
    Invalid(String),
    /// The configured secret is too short to be safe.
    #[error("internal_jwt.secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    /// Minting failed.
    #[error("could not mint token: {0}")]
    Mint(String),
}

/// Mints and verifies internal tokens.
#[derive(Clone)]
pub struct InternalJwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    ttl: Duration,
}

impl InternalJwt {
    /// Builds from settings; refuses a secret shorter than 32 bytes.
    pub fn new(settings: &InternalJwtSettings) -> Result<Self, JwtError> {
        if settings.secret.len() < MIN_SECRET_BYTES {
            return Err(JwtError::WeakSecret);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(settings.secret.as_bytes()),
            decoding: DecodingKey::from_secret(settings.secret.as_bytes()),
            issuer: settings.issuer.clone(),
            ttl: Duration::from_secs(settings.ttl_secs),
        })
    }

    /// Mints a token for `audience`, acting as `subject`.
    pub fn mint(
        &self,
        audience: &str,
        subject: &str,
        org_id: Option<Uuid>,
        roles: Vec<String>,
    ) -> Result<String, JwtError> {
        let now = now_secs();
        let claims = InternalClaims {
            iss: self.issuer.clone(),
            aud: audience.to_owned(),
            sub: subject.to_owned(),
            exp: now + self.ttl.as_secs(),
            iat: now,
            org_id,
            roles,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| JwtError::Mint(e.to_string()))
    }

    /// Verifies signature, issuer, audience and expiry (no leeway: tokens are short-lived
    /// and minted on the same clock).
    pub fn verify(&self, token: &str, audience: &str) -> Result<InternalClaims, JwtError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<InternalClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| JwtError::Invalid(e.kind_description()))
    }
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for jsonwebtoken::errors::Error {
    fn kind_description(&self) -> String {
        use jsonwebtoken::errors::ErrorKind;
        match self.kind() {
            ErrorKind::ExpiredSignature => "expired".to_owned(),
            ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
            ErrorKind::InvalidAudience => "wrong audience".to_owned(),
            ErrorKind::InvalidSignature => "bad signature".to_owned(),
            ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
            _ => "malformed".to_owned(),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttl_secs: u64) -> InternalJwtSettings {
        InternalJwtSettings {
            secret: "test-secret-that-is-long-enough-0123456789".to_owned(),
            issuer: "hubscore".to_owned(),
            ttl_secs,
        }
    }

    #[test]
    fn a_minted_token_verifies_for_its_audience_with_its_claims() {
        let jwt = InternalJwt::new(&settings(60)).unwrap();
        let org = Uuid::new_v4();
        let token = jwt
            .mint("sync-worker", "user:7", Some(org), vec!["admin".into()])
            .unwrap();
        let claims = jwt.verify(&token, "sync-worker").unwrap();
        assert_eq!(claims.sub, "user:7");
        assert_eq!(claims.org_id, Some(org));
        assert_eq!(claims.roles, vec!["admin".to_owned()]);
    }

    #[test]
    fn a_token_for_another_service_is_refused() {
        let jwt = InternalJwt::new(&settings(60)).unwrap();
        let token = jwt
            .mint("scoring-engine", "auth-gateway", None, vec![])
            .unwrap();
        assert_eq!(
            jwt.verify(&token, "sync-worker"),
            Err(JwtError::Invalid("wrong audience".into()))
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let jwt = InternalJwt::new(&settings(0)).unwrap();
        let token = jwt
            .mint("sync-worker", "auth-gateway", None, vec![])
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            jwt.verify(&token, "sync-worker"),
            Err(JwtError::Invalid("expired".into()))
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_or_issuer_is_refused() {
        let jwt = InternalJwt::new(&settings(60)).unwrap();
        let mut other = settings(60);
        other.secret = "a-different-secret-that-is-long-enough-xyz".into();
        let forged = InternalJwt::new(&other)
            .unwrap()
            .mint("sync-worker", "x", None, vec![])
            .unwrap();
        assert_eq!(
            jwt.verify(&forged, "sync-worker"),
            Err(JwtError::Invalid("bad signature".into()))
        );
        let mut foreign = settings(60);
        foreign.issuer = "someone-else".into();
        let token = InternalJwt::new(&foreign)
            .unwrap()
            .mint("sync-worker", "x", None, vec![])
            .unwrap();
        assert_eq!(
            jwt.verify(&token, "sync-worker"),
            Err(JwtError::Invalid("wrong issuer".into()))
        );
        assert_eq!(
            jwt.verify("not.a.jwt", "sync-worker"),
            Err(JwtError::Invalid("malformed".into()))
        );
    }

    #[test]
    fn a_short_secret_is_refused_at_start_and_never_printed() {
        let mut weak = settings(60);
        weak.secret = "short".into();
        assert!(matches!(InternalJwt::new(&weak), Err(JwtError::WeakSecret)));
        assert!(!format!("{:?}", settings(60)).contains("long-enough"));
    }
}
