//! Internal JWTs: short-lived tokens that auth-gateway mints when it forwards a caller's
//! request (or a worker's own call) to a service. A service trusts a request only if it
//! carries one whose signature, issuer, audience and expiry check out.
//!
//! Tokens are signed with Ed25519 (EdDSA). Only auth-gateway holds the private key
//! ([`InternalTokenSigner`]); every other service holds public keys only
//! ([`InternalTokenVerifier`]), so a compromised service (the internet-facing
//! webhook-receiver, say) can check tokens but cannot mint a caller identity.
//!
//! The verifier fixes the algorithm: a token's own `alg` header is never trusted, so
//! `alg: none` and HS256 tokens "signed" with the public key (algorithm confusion) are
//! refused. Several public keys may be configured at once to rotate the signing key:
//! add the new public key everywhere, switch the gateway's private key, then drop the
//! old public key.
//!
//! The built-in key pair is a DEVELOPMENT key pair, public in this repository. A service
//! refuses to start with it outside development mode; see
//! [`InternalJwtSettings::development_values`] and
//! [`crate::config::refuse_development_values`].

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The DEVELOPMENT ONLY internal-token private key (Ed25519, PKCS#8 PEM), as a string
/// literal usable in `concat!` (auth-gateway's built-in defaults). It is public: anyone
/// holding this repository can mint tokens with it.
#[macro_export]
macro_rules! development_internal_jwt_private_key {
    () => {
        "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDbDGc1Nne3/0VYeMTuANOjvA468w7XiAA05h3JtIl/9
-----END PRIVATE KEY-----
"
    };
}

/// The DEVELOPMENT ONLY internal-token public key (Ed25519, SPKI PEM), the counterpart of
/// [`development_internal_jwt_private_key!`], as a string literal usable in `concat!`.
#[macro_export]
macro_rules! development_internal_jwt_public_key {
    () => {
        "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAYZThC0naFwArjygRUmSf/yzc9VXF/RRNnrc1GauS6R8=
-----END PUBLIC KEY-----
"
    };
}

/// DEVELOPMENT ONLY private key; see [`development_internal_jwt_private_key!`].
pub const DEVELOPMENT_PRIVATE_KEY_PEM: &str = development_internal_jwt_private_key!();

/// DEVELOPMENT ONLY public key; see [`development_internal_jwt_public_key!`].
pub const DEVELOPMENT_PUBLIC_KEY_PEM: &str = development_internal_jwt_public_key!();

/// The only algorithm minted and accepted.
const ALGORITHM: Algorithm = Algorithm::EdDSA;

/// Settings for verifying internal tokens and, in auth-gateway, minting them.
#[derive(Clone, Deserialize)]
pub struct InternalJwtSettings {
    /// Public keys (PEM) whose signatures are accepted: one PEM string (which may hold
    /// several `PUBLIC KEY` blocks) or a list of them.
    #[serde(deserialize_with = "deserialize_pems")]
    pub public_keys: Vec<String>,
    /// `iss` of minted tokens, and the only issuer accepted.
    pub issuer: String,
    /// Lifetime of a minted token.
    pub ttl_secs: u64,
    /// The signing key (PKCS#8 PEM). Only auth-gateway sets it; production sets it
    /// through the environment (`HUBSCORE__INTERNAL_JWT__PRIVATE_KEY`).
    #[serde(default)]
    pub private_key: Option<String>,
}

impl InternalJwtSettings {
    /// The settings that hold development values, as `(setting name, is the development
    /// value)` pairs for [`crate::config::refuse_development_values`].
    pub fn development_values(&self) -> [(&'static str, bool); 2] {
        let development_public = normalise_pem(DEVELOPMENT_PUBLIC_KEY_PEM);
        let development_private = normalise_pem(DEVELOPMENT_PRIVATE_KEY_PEM);
        [
            (
                "internal_jwt.public_keys",
                self.public_keys
                    .iter()
                    .any(|key| normalise_pem(key) == development_public),
            ),
            (
                "internal_jwt.private_key",
                self.private_key
                    .as_deref()
                    .is_some_and(|key| normalise_pem(key) == development_private),
            ),
        ]
    }
}

impl std::fmt::Debug for InternalJwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalJwtSettings")
            .field("public_keys", &self.public_keys.len())
            .field("issuer", &self.issuer)
            .field("ttl_secs", &self.ttl_secs)
            .field("private_key", &self.private_key.as_ref().map(|_| "***"))
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

/// Why a key was not usable or a token was refused. The messages never contain key
/// material, and [`JwtError::Invalid`]'s is safe to return to a caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Expired, wrong issuer, audience or algorithm, bad signature, or not a JWT at all.
    #[error("invalid internal token: {0}")]
    Invalid(String),
    /// A configured key is not an Ed25519 PEM key, or none is configured.
    #[error("{setting}: {message}")]
    Key {
        /// The setting that holds the key, e.g. `internal_jwt.public_keys`.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Minting failed.
    #[error("could not mint token: {0}")]
    Mint(String),
}

/// Mints internal tokens; only auth-gateway holds one.
#[derive(Clone)]
pub struct InternalTokenSigner {
    key: EncodingKey,
    issuer: String,
    ttl: Duration,
}

impl InternalTokenSigner {
    /// Builds from an Ed25519 private key in PKCS#8 PEM (`openssl genpkey -algorithm
    /// ed25519`).
    pub fn new(private_key_pem: &str, issuer: &str, ttl: Duration) -> Result<Self, JwtError> {
        let key =
            EncodingKey::from_ed_pem(private_key_pem.as_bytes()).map_err(|_| JwtError::Key {
                setting: "internal_jwt.private_key",
                message: "not an Ed25519 private key in PKCS#8 PEM".to_owned(),
            })?;
        let signer = Self {
            key,
            issuer: issuer.to_owned(),
            ttl,
        };
        // A PEM of another key type parses; it fails at the first signature. Find out now.
        signer
            .mint("self-check", "self-check", None, Vec::new())
            .map_err(|_| JwtError::Key {
                setting: "internal_jwt.private_key",
                message: "not an Ed25519 private key".to_owned(),
            })?;
        Ok(signer)
    }

    /// Builds from settings; `internal_jwt.private_key` must be set.
    pub fn from_settings(settings: &InternalJwtSettings) -> Result<Self, JwtError> {
        let pem = settings.private_key.as_deref().ok_or(JwtError::Key {
            setting: "internal_jwt.private_key",
            message: "not set".to_owned(),
        })?;
        Self::new(
            pem,
            &settings.issuer,
            Duration::from_secs(settings.ttl_secs),
        )
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
        jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &self.key)
            .map_err(|_| JwtError::Mint("the signing key could not sign".to_owned()))
    }
}

/// Verifies internal tokens against one or more public keys.
#[derive(Clone)]
pub struct InternalTokenVerifier {
    keys: Vec<DecodingKey>,
    issuer: String,
}

impl InternalTokenVerifier {
    /// Builds from Ed25519 public keys in SPKI PEM (`openssl pkey -pubout`); a token
    /// signed by any of them is accepted. Each string may hold several PEM blocks.
    pub fn new<S: AsRef<str>>(public_key_pems: &[S], issuer: &str) -> Result<Self, JwtError> {
        let invalid = |message: &str| JwtError::Key {
            setting: "internal_jwt.public_keys",
            message: message.to_owned(),
        };
        let keys = public_key_pems
            .iter()
            .flat_map(|pems| split_pems(pems.as_ref()))
            .map(|pem| {
                DecodingKey::from_ed_pem(pem.as_bytes())
                    .map_err(|_| invalid("not an Ed25519 public key in PEM"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(invalid("no public key configured"));
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
        })
    }

    /// Builds from settings.
    pub fn from_settings(settings: &InternalJwtSettings) -> Result<Self, JwtError> {
        Self::new(&settings.public_keys, &settings.issuer)
    }

    /// Verifies algorithm (EdDSA, whatever the token's header says), signature, issuer,
    /// audience and expiry (no leeway: tokens are short-lived and minted on the same
    /// clock).
    pub fn verify(&self, token: &str, audience: &str) -> Result<InternalClaims, JwtError> {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        let mut refusal = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<InternalClaims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                // Another configured key may have signed it (rotation).
                Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    refusal = Some(e);
                }
                // The signature checked out (or never got checked): no other key changes this.
                Err(e) => return Err(JwtError::Invalid(describe(&e))),
            }
        }
        Err(JwtError::Invalid(refusal.map_or_else(
            || "bad signature".to_owned(),
            |e| describe(&e),
        )))
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "expired".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm => "wrong algorithm".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        _ => "malformed".to_owned(),
    }
}

/// Splits a string into its PEM blocks (`-----BEGIN ...` to `-----END ...-----`).
/// A string without a BEGIN line is returned whole, to fail as "not a PEM key".
fn split_pems(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    if blocks.is_empty() && !text.trim().is_empty() {
        blocks.push(text.to_owned());
    }
    blocks
}

/// A PEM without whitespace, to compare keys however they were wrapped or indented.
fn normalise_pem(pem: &str) -> String {
    pem.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `public_keys` as one string (possibly several PEM blocks) or a list of strings.
fn deserialize_pems<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let pems = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(pem) => vec![pem],
        OneOrMany::Many(pems) => pems,
    };
    Ok(pems.iter().flat_map(|pem| split_pems(pem)).collect())
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

    #[test]
    fn several_pem_blocks_in_one_string_are_several_keys() {
        let both = format!("{DEVELOPMENT_PUBLIC_KEY_PEM}\n  {DEVELOPMENT_PUBLIC_KEY_PEM}");
        assert_eq!(split_pems(&both).len(), 2);
        assert_eq!(split_pems("not a pem"), vec!["not a pem".to_owned()]);
        assert!(split_pems("  \n").is_empty());
    }
}
