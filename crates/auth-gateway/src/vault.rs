//! The token vault: AES-256-GCM sealing of HubSpot secrets at rest.
//!
//! Every seal draws a fresh random 96-bit nonce. The associated data is
//! `hubscore.auth.v1/<connection id>/<field>`, so a ciphertext copied into another row or
//! field fails to open. The stored envelope is `v1:<key id>:<base64 nonce>:<base64
//! ciphertext+tag>`: the key id says which key of the keyring opens it. The newest key
//! (first in the configured keyring) seals; every key opens, so keys rotate without
//! downtime, and `rotate-keys` re-seals old envelopes under the newest key.

use aes_gcm::aead::{Aead as _, Generate as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::Sha256;
use uuid::Uuid;

const ENVELOPE_VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;

/// Which secret of a connection a ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The access token (OAuth or private app).
    AccessToken,
    /// The OAuth refresh token.
    RefreshToken,
    /// The current webhook signing secret.
    WebhookSecret,
    /// The webhook secret before the last change, still accepted during a rotation.
    PreviousWebhookSecret,
}

impl Field {
    /// The name stored in `credentials.field`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
            Self::WebhookSecret => "webhook_secret",
            Self::PreviousWebhookSecret => "previous_webhook_secret",
        }
    }

    /// The field stored under `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::AccessToken,
            Self::RefreshToken,
            Self::WebhookSecret,
            Self::PreviousWebhookSecret,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// Why the vault could not be built or a secret not opened. Never carries a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// `vault.keyring` is empty or malformed.
    #[error("vault.keyring: {0}")]
    Keyring(String),
    /// The envelope is not `v1:<key id>:<nonce>:<ciphertext>`.
    #[error("malformed envelope")]
    Malformed,
    /// No key of the keyring has this id.
    #[error("no key {0:?} in the keyring")]
    UnknownKey(String),
    /// Authentication failed: wrong key, tampered, or sealed for another row or field.
    #[error("the secret does not decrypt for this connection and field")]
    Undecryptable,
}

struct VaultKey {
    id: String,
    cipher: Aes256Gcm,
    state_key: SecretBox<Vec<u8>>,
}

/// The configured keyring.
pub struct Vault {
    newest: VaultKey,
    older: Vec<VaultKey>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.all().map(|k| k.id.as_str()).collect();
        f.debug_struct("Vault").field("key_ids", &ids).finish()
    }
}

/// A sealed secret, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// The envelope text.
    pub envelope: String,
}

impl Vault {
    /// Parses `id:base64key,id:base64key,...` (newest first); each key must be 32 bytes.
    pub fn from_keyring(keyring: &SecretString) -> Result<Self, VaultError> {
        let mut keys = Vec::new();
        for entry in keyring.expose_secret().split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| VaultError::Keyring("each key is <id>:<base64>".to_owned()))?;
            if id.is_empty() || id.contains(':') || keys.iter().any(|k: &VaultKey| k.id == id) {
                return Err(VaultError::Keyring(format!(
                    "key id {id:?} is empty or repeated"
                )));
            }
            let bytes =
                SecretBox::new(Box::new(STANDARD.decode(encoded).map_err(|_| {
                    VaultError::Keyring(format!("key {id:?} is not base64"))
                })?));
            let cipher = Aes256Gcm::new_from_slice(bytes.expose_secret())
                .map_err(|_| VaultError::Keyring(format!("key {id:?} is not 32 bytes")))?;
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(bytes.expose_secret())
                .map_err(|_| VaultError::Keyring(format!("key {id:?} is unusable")))?;
            mac.update(b"hubscore oauth state signing key v1");
            let state_key = SecretBox::new(Box::new(mac.finalize().into_bytes().to_vec()));
            keys.push(VaultKey {
                id: id.to_owned(),
                cipher,
                state_key,
            });
        }
        let mut keys = keys.into_iter();
        let newest = keys
            .next()
            .ok_or_else(|| VaultError::Keyring("no keys configured".to_owned()))?;
        Ok(Self {
            newest,
            older: keys.collect(),
        })
    }

    /// Id of the key that seals.
    pub fn newest_key_id(&self) -> &str {
        &self.newest.id
    }

    /// Seals `secret` for `connection`'s `field` under the newest key.
    pub fn seal(&self, connection: Uuid, field: Field, secret: &str) -> Sealed {
        let key = &self.newest;
        let nonce = Nonce::generate();
        let aad = associated_data(connection, field);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        Sealed {
            key_id: key.id.clone(),
            envelope: format!(
                "{ENVELOPE_VERSION}:{}:{}:{}",
                key.id,
                STANDARD.encode(nonce),
                STANDARD.encode(ciphertext)
            ),
        }
    }

    /// Opens an envelope sealed for `connection`'s `field`.
    pub fn open(
        &self,
        connection: Uuid,
        field: Field,
        envelope: &str,
    ) -> Result<SecretString, VaultError> {
        let mut parts = envelope.splitn(4, ':');
        let (Some(ENVELOPE_VERSION), Some(key_id), Some(nonce), Some(ciphertext)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VaultError::Malformed);
        };
        let key = self
            .all()
            .find(|k| k.id == key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        let nonce = STANDARD.decode(nonce).map_err(|_| VaultError::Malformed)?;
        let nonce = Nonce::try_from(nonce.as_slice()).map_err(|_| VaultError::Malformed)?;
        if nonce.len() != NONCE_BYTES {
            return Err(VaultError::Malformed);
        }
        let ciphertext = STANDARD
            .decode(ciphertext)
            .map_err(|_| VaultError::Malformed)?;
        let aad = associated_data(connection, field);
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| VaultError::Undecryptable)
    }

    /// Opens an envelope and seals it again under the newest key (for `rotate-keys`).
    pub fn reseal(
        &self,
        connection: Uuid,
        field: Field,
        envelope: &str,
    ) -> Result<Sealed, VaultError> {
        let secret = self.open(connection, field, envelope)?;
        Ok(self.seal(connection, field, secret.expose_secret()))
    }

    /// A key derived from the newest vault key for signing OAuth `state` values
    /// (HMAC-SHA256 of a fixed label under the raw key, so the two uses never share a key).
    pub fn state_signing_key(&self) -> &[u8] {
        self.newest.state_key.expose_secret()
    }

    fn all(&self) -> impl Iterator<Item = &VaultKey> {
        std::iter::once(&self.newest).chain(self.older.iter())
    }
}

fn associated_data(connection: Uuid, field: Field) -> String {
    format!("hubscore.auth.v1/{connection}/{}", field.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(entries: &[(&str, [u8; 32])]) -> Vault {
        let text = entries
            .iter()
            .map(|(id, key)| format!("{id}:{}", STANDARD.encode(key)))
            .collect::<Vec<_>>()
            .join(",");
        Vault::from_keyring(&SecretString::from(text)).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_connection_and_field_only() {
        let vault = keyring(&[("k1", [7; 32])]);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = vault.seal(a, Field::AccessToken, "pat-secret-123");
        assert!(!sealed.envelope.contains("pat-secret-123"));
        assert_eq!(
            vault
                .open(a, Field::AccessToken, &sealed.envelope)
                .unwrap()
                .expose_secret(),
            "pat-secret-123"
        );
        assert_eq!(
            vault
                .open(b, Field::AccessToken, &sealed.envelope)
                .unwrap_err(),
            VaultError::Undecryptable,
            "copied to another connection"
        );
        assert_eq!(
            vault
                .open(a, Field::RefreshToken, &sealed.envelope)
                .unwrap_err(),
            VaultError::Undecryptable,
            "copied to another field"
        );
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let vault = keyring(&[("k1", [7; 32])]);
        let id = Uuid::new_v4();
        let one = vault.seal(id, Field::AccessToken, "same");
        let two = vault.seal(id, Field::AccessToken, "same");
        assert_ne!(one.envelope, two.envelope);
    }

    #[test]
    fn a_tampered_ciphertext_fails_to_open() {
        let vault = keyring(&[("k1", [7; 32])]);
        let id = Uuid::new_v4();
        let sealed = vault.seal(id, Field::WebhookSecret, "whsec");
        let mut parts: Vec<String> = sealed.envelope.split(':').map(str::to_owned).collect();
        let mut bytes = STANDARD.decode(&parts[3]).unwrap();
        bytes[0] ^= 1;
        parts[3] = STANDARD.encode(bytes);
        assert_eq!(
            vault
                .open(id, Field::WebhookSecret, &parts.join(":"))
                .unwrap_err(),
            VaultError::Undecryptable
        );
    }

    #[test]
    fn the_newest_key_seals_and_older_keys_still_open() {
        let old = keyring(&[("k1", [1; 32])]);
        let id = Uuid::new_v4();
        let sealed_old = old.seal(id, Field::AccessToken, "tok");
        let rotated = keyring(&[("k2", [2; 32]), ("k1", [1; 32])]);
        assert_eq!(
            rotated
                .open(id, Field::AccessToken, &sealed_old.envelope)
                .unwrap()
                .expose_secret(),
            "tok"
        );
        let resealed = rotated
            .reseal(id, Field::AccessToken, &sealed_old.envelope)
            .unwrap();
        assert_eq!(resealed.key_id, "k2");
        assert!(resealed.envelope.starts_with("v1:k2:"));
        assert_eq!(
            old.open(id, Field::AccessToken, &resealed.envelope)
                .unwrap_err(),
            VaultError::UnknownKey("k2".into())
        );
    }

    #[test]
    fn a_malformed_keyring_is_refused_without_showing_the_key() {
        for bad in ["", "nocolon", "k1:not-base64!", "k1:c2hvcnQ="] {
            let err = Vault::from_keyring(&SecretString::from(bad.to_owned())).unwrap_err();
            assert!(matches!(err, VaultError::Keyring(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("c2hvcnQ"));
        }
        let vault = keyring(&[("k1", [9; 32])]);
        assert_eq!(format!("{vault:?}"), r#"Vault { key_ids: ["k1"] }"#);
    }
}
