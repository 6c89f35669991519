//! Callers of the public API: their JWT bearer token, verified with keys from
//! configuration only, and the role it grants.
//!
//! One algorithm is configured and only it is accepted: the token's header never chooses
//! it (so `alg: none` and HS256-signed-with-the-public-key tokens fail). With a JWKS URL
//! the header's `kid` picks among the provider's keys, each still checked against the
//! configured algorithm; the set is fetched at start, refreshed in the background, and
//! fetched again (at most once a second) when a token names a key not yet seen.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, web};
use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::config::CallerJwtSettings;
use crate::error::ApiError;

/// Shortest gap between two JWKS fetches caused by unknown key ids.
const MIN_REFETCH_GAP: Duration = Duration::from_secs(1);

/// A caller's role in their organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything an admin can, and more in the future (billing, org deletion).
    Owner,
    /// Manages connections, mappings, writeback and scoring config.
    Admin,
    /// Reads.
    Member,
}

impl Role {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Owners and admins change things.
    pub fn is_writer(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(()),
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id (`sub` claim or its configured name).
    pub sub: String,
    /// The organization every query is scoped by.
    pub org_id: Uuid,
    /// Their role.
    pub role: Role,
}

impl User {
    /// `user:<sub>`, as audit entries and internal tokens name a person.
    pub fn actor(&self) -> String {
        format!("user:{}", self.sub)
    }

    /// Ok for owners and admins, 403 for members.
    pub fn require_writer(&self) -> Result<(), ApiError> {
        if self.role.is_writer() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this needs the owner or admin role".to_owned(),
            ))
        }
    }
}

enum Keys {
    Static(DecodingKey),
    Jwks(Arc<Jwks>),
}

/// Verifies callers' tokens.
pub struct CallerVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    settings: CallerJwtSettings,
}

/// A provider's JWKS, kept fresh.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    set: RwLock<JwkSet>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    async fn fetch(&self) -> anyhow::Result<()> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .context("fetching the JWKS")?
            .error_for_status()
            .context("fetching the JWKS")?
            .json()
            .await
            .context("reading the JWKS")?;
        *self.set.write().await = set;
        *self.last_fetch.lock().await = Some(Instant::now());
        Ok(())
    }

    /// Fetches the set every `every` until `shutdown`; a failed fetch keeps the old set.
    pub async fn refresh_until(
        self: Arc<Self>,
        every: Duration,
        shutdown: platform::shutdown::Shutdown,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(error) = self.fetch().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "JWKS refresh failed; keeping the old keys"
                );
            }
        }
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(jwk) = self.set.read().await.find(kid) {
            return DecodingKey::from_jwk(jwk).ok();
        }
        let due = self
            .last_fetch
            .lock()
            .await
            .is_none_or(|at| at.elapsed() >= MIN_REFETCH_GAP);
        if due && let Err(error) = self.fetch().await {
            tracing::warn!(
                error = format!("{error:#}"),
                "JWKS fetch for an unknown key id failed"
            );
        }
        let set = self.set.read().await;
        set.find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    }
}

impl CallerVerifier {
    /// Builds the verifier; with a JWKS URL, fetches the set once (a failure is logged and
    /// retried by the refresh task, so the gateway can start before the provider).
    pub async fn new(settings: &CallerJwtSettings) -> anyhow::Result<Self> {
        let algorithm = match settings.algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => anyhow::bail!(
                "caller_jwt.algorithm {other:?} is not one of HS256, RS256, ES256, EdDSA"
            ),
        };
        let keys = if let Some(url) = &settings.jwks_url {
            let jwks = Arc::new(Jwks {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
                set: RwLock::new(JwkSet { keys: Vec::new() }),
                last_fetch: Mutex::new(None),
            });
            if let Err(error) = jwks.fetch().await {
                tracing::warn!(error = format!("{error:#}"), "initial JWKS fetch failed");
            }
            Keys::Jwks(jwks)
        } else {
            Keys::Static(match algorithm {
                Algorithm::HS256 => {
                    let secret = settings.hs256_secret.as_ref().context(
                        "caller_jwt.hs256_secret is required with algorithm HS256 and no jwks_url",
                    )?;
                    anyhow::ensure!(
                        secret.expose_secret().len() >= 32,
                        "caller_jwt.hs256_secret must be at least 32 bytes"
                    );
                    DecodingKey::from_secret(secret.expose_secret().as_bytes())
                }
                _ => {
                    let pem = settings.public_key_pem.as_ref().with_context(|| {
                        format!(
                            "caller_jwt.public_key_pem (or jwks_url) is required with algorithm {}",
                            settings.algorithm
                        )
                    })?;
                    match algorithm {
                        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
                        Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
                        _ => DecodingKey::from_ed_pem(pem.as_bytes()),
                    }
                    .context("caller_jwt.public_key_pem is not a PEM public key of that type")?
                }
            })
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        validation.validate_exp = true;
        Ok(Self {
            algorithm,
            keys,
            validation,
            settings: settings.clone(),
        })
    }

    /// The JWKS to refresh in the background, when one is configured.
    pub fn jwks(&self) -> Option<Arc<Jwks>> {
        match &self.keys {
            Keys::Jwks(jwks) => Some(jwks.clone()),
            Keys::Static(_) => None,
        }
    }

    /// Verifies `token` and reads the caller from its claims.
    pub async fn verify(&self, token: &str) -> Result<User, ApiError> {
        let invalid = |why: &str| ApiError::Unauthenticated(format!("invalid token: {why}"));
        let key = match &self.keys {
            Keys::Static(key) => key.clone(),
            Keys::Jwks(jwks) => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
                let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
                jwks.key(&kid)
                    .await
                    .ok_or_else(|| invalid("unknown key id"))?
            }
        };
        if key.family() != self.algorithm.family() {
            return Err(invalid("key of another type"));
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|e| invalid(describe(&e)))?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let sub = text(&self.settings.sub_claim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no subject"))?;
        let org_id = text(&self.settings.org_claim)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| invalid("no organization"))?;
        let role = text(&self.settings.role_claim)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no known role"))?;
        Ok(User {
            sub: sub.to_owned(),
            org_id,
            role,
        })
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm not accepted",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        _ => "malformed",
    }
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<CallerVerifier>>().cloned();
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("CallerVerifier app data missing"))
            })?;
            let token = token
                .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".to_owned()))?;
            verifier.verify(&token).await
        })
    }
}

/// Mints a caller token with the configured HS256 secret (`issue-token`, tests).
pub fn mint_dev_token(
    settings: &CallerJwtSettings,
    sub: &str,
    org_id: Uuid,
    role: Role,
    ttl: Duration,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        settings.algorithm == "HS256" && settings.jwks_url.is_none(),
        "issue-token mints with caller_jwt.hs256_secret, which needs caller_jwt.algorithm = HS256 and no jwks_url"
    );
    let secret = settings
        .hs256_secret
        .as_ref()
        .context("caller_jwt.hs256_secret is not set")?;
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut claims = Map::new();
    claims.insert("iss".into(), settings.issuer.clone().into());
    claims.insert("aud".into(), settings.audience.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), now.saturating_add(ttl).into());
    claims.insert(settings.sub_claim.clone(), sub.into());
    claims.insert(settings.org_claim.clone(), org_id.to_string().into());
    claims.insert(settings.role_claim.clone(), role.as_str().into());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .context("minting the token")
}
