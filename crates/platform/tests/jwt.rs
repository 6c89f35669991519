//! Internal tokens as a service sees them: auth-gateway mints with the private key, every
//! other service verifies with public keys only, and forged or stale tokens are refused.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::jwt::{
    DEVELOPMENT_PRIVATE_KEY_PEM, DEVELOPMENT_PUBLIC_KEY_PEM, InternalClaims, InternalJwtSettings,
    InternalTokenSigner, InternalTokenVerifier, JwtError,
};
use uuid::Uuid;

/// A second key pair, for tests only (a rotated or a foreign key).
const OTHER_PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIOZyBG6VgYn/ByS+1vNfnLYqiYPgVxb9W4WQ+GnZs9WI
-----END PRIVATE KEY-----
";
const OTHER_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAXs8s1tEJFTDbb/an2hW81V3sR6yFq8bmdkqEWyxxX1w=
-----END PUBLIC KEY-----
";

fn signer(private_key: &str, issuer: &str) -> InternalTokenSigner {
    InternalTokenSigner::new(private_key, issuer, Duration::from_secs(60)).unwrap()
}

fn verifier(public_keys: &[&str]) -> InternalTokenVerifier {
    InternalTokenVerifier::new(public_keys, "hubscore").unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(exp: u64) -> InternalClaims {
    InternalClaims {
        iss: "hubscore".into(),
        aud: "sync-worker".into(),
        sub: "user:7".into(),
        exp,
        iat: now(),
        org_id: None,
        roles: vec!["admin".into()],
    }
}

/// Signs `claims` with `algorithm` and `key` directly, as an attacker or a stale gateway would.
fn forge(algorithm: Algorithm, key: &EncodingKey, claims: &InternalClaims) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).unwrap()
}

#[test]
fn a_minted_token_verifies_for_its_audience_with_its_claims() {
    let org = Uuid::new_v4();
    let token = signer(DEVELOPMENT_PRIVATE_KEY_PEM, "hubscore")
        .mint("sync-worker", "user:7", Some(org), vec!["admin".into()])
        .unwrap();
    let claims = verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM])
        .verify(&token, "sync-worker")
        .unwrap();
    assert_eq!(claims.iss, "hubscore");
    assert_eq!(claims.sub, "user:7");
    assert_eq!(claims.org_id, Some(org));
    assert_eq!(claims.roles, vec!["admin".to_owned()]);
    assert!(claims.exp > claims.iat && claims.exp <= claims.iat + 60);
}

#[test]
fn a_token_for_another_service_is_refused() {
    let token = signer(DEVELOPMENT_PRIVATE_KEY_PEM, "hubscore")
        .mint("scoring-engine", "auth-gateway", None, vec![])
        .unwrap();
    assert_eq!(
        verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]).verify(&token, "sync-worker"),
        Err(JwtError::Invalid("wrong audience".into()))
    );
}

#[test]
fn a_token_from_another_issuer_is_refused() {
    let token = signer(DEVELOPMENT_PRIVATE_KEY_PEM, "someone-else")
        .mint("sync-worker", "auth-gateway", None, vec![])
        .unwrap();
    assert_eq!(
        verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]).verify(&token, "sync-worker"),
        Err(JwtError::Invalid("wrong issuer".into()))
    );
}

#[test]
fn an_expired_token_is_refused() {
    let key = EncodingKey::from_ed_pem(DEVELOPMENT_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let token = forge(Algorithm::EdDSA, &key, &claims(now() - 120));
    assert_eq!(
        verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]).verify(&token, "sync-worker"),
        Err(JwtError::Invalid("expired".into()))
    );
    let fresh = forge(Algorithm::EdDSA, &key, &claims(now() + 120));
    assert!(
        verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM])
            .verify(&fresh, "sync-worker")
            .is_ok()
    );
}

#[test]
fn a_token_signed_by_a_key_not_configured_is_refused() {
    let token = signer(OTHER_PRIVATE_KEY_PEM, "hubscore")
        .mint("sync-worker", "user:7", None, vec![])
        .unwrap();
    assert_eq!(
        verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]).verify(&token, "sync-worker"),
        Err(JwtError::Invalid("bad signature".into()))
    );
}

#[test]
fn an_unsigned_alg_none_token_is_refused() {
    let genuine = signer(DEVELOPMENT_PRIVATE_KEY_PEM, "hubscore")
        .mint("sync-worker", "user:7", None, vec!["admin".into()])
        .unwrap();
    let payload = genuine.split('.').nth(1).unwrap();
    // base64url of {"alg":"none","typ":"JWT"}
    let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let verifier = verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]);
    for token in [
        format!("{none_header}.{payload}."),
        format!("{none_header}.{payload}"),
    ] {
        assert!(
            matches!(
                verifier.verify(&token, "sync-worker"),
                Err(JwtError::Invalid(_))
            ),
            "{token} was accepted"
        );
    }
}

#[test]
fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    // Algorithm confusion: the public key is no secret, so an HMAC keyed with it proves nothing.
    let verifier = verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM]);
    let confused = EncodingKey::from_secret(DEVELOPMENT_PUBLIC_KEY_PEM.as_bytes());
    for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = forge(algorithm, &confused, &claims(now() + 60));
        assert_eq!(
            verifier.verify(&token, "sync-worker"),
            Err(JwtError::Invalid("wrong algorithm".into())),
            "{algorithm:?}"
        );
    }
}

#[test]
fn during_a_key_rotation_tokens_from_the_old_and_the_new_key_are_accepted() {
    let both = verifier(&[DEVELOPMENT_PUBLIC_KEY_PEM, OTHER_PUBLIC_KEY_PEM]);
    for private_key in [DEVELOPMENT_PRIVATE_KEY_PEM, OTHER_PRIVATE_KEY_PEM] {
        let token = signer(private_key, "hubscore")
            .mint("sync-worker", "user:7", None, vec![])
            .unwrap();
        assert_eq!(both.verify(&token, "sync-worker").unwrap().sub, "user:7");
    }
    // An expired token is refused as expired, not as a bad signature from the first key.
    let key = EncodingKey::from_ed_pem(OTHER_PRIVATE_KEY_PEM.as_bytes()).unwrap();
    let stale = forge(Algorithm::EdDSA, &key, &claims(now() - 120));
    assert_eq!(
        both.verify(&stale, "sync-worker"),
        Err(JwtError::Invalid("expired".into()))
    );
}

#[test]
fn public_keys_may_be_one_string_with_several_pem_blocks_or_a_list() {
    let token = signer(OTHER_PRIVATE_KEY_PEM, "hubscore")
        .mint("sync-worker", "user:7", None, vec![])
        .unwrap();
    let one_string = format!("{DEVELOPMENT_PUBLIC_KEY_PEM}{OTHER_PUBLIC_KEY_PEM}");
    let env = [("HUBSCORE__INTERNAL_JWT__PUBLIC_KEYS".to_owned(), one_string)];
    #[derive(serde::Deserialize)]
    struct Settings {
        internal_jwt: InternalJwtSettings,
    }
    let from_env: Settings = platform::config::load_with_env("", None, env).unwrap();
    assert_eq!(from_env.internal_jwt.public_keys.len(), 2);
    let verifier = InternalTokenVerifier::from_settings(&from_env.internal_jwt).unwrap();
    assert!(verifier.verify(&token, "sync-worker").is_ok());

    let list = format!(
        "[internal_jwt]\npublic_keys = [\"\"\"{DEVELOPMENT_PUBLIC_KEY_PEM}\"\"\", \"\"\"{OTHER_PUBLIC_KEY_PEM}\"\"\"]\n"
    );
    let from_list: Settings = platform::config::load_with_env(&list, None, []).unwrap();
    assert_eq!(from_list.internal_jwt.public_keys.len(), 2);
    let verifier = InternalTokenVerifier::from_settings(&from_list.internal_jwt).unwrap();
    assert!(verifier.verify(&token, "sync-worker").is_ok());
}

#[test]
fn unusable_keys_are_refused_naming_the_setting_without_echoing_them() {
    let bad_public = InternalTokenVerifier::new(&["not a key"], "hubscore")
        .err()
        .unwrap();
    assert!(bad_public.to_string().contains("internal_jwt.public_keys"));
    let none = InternalTokenVerifier::new::<&str>(&[], "hubscore")
        .err()
        .unwrap();
    assert!(none.to_string().contains("internal_jwt.public_keys"));
    // A private key where a public key belongs, and the other way round.
    let swapped = InternalTokenVerifier::new(&[DEVELOPMENT_PRIVATE_KEY_PEM], "hubscore")
        .err()
        .unwrap();
    assert!(swapped.to_string().contains("internal_jwt.public_keys"));
    let swapped = InternalTokenSigner::new(
        DEVELOPMENT_PUBLIC_KEY_PEM,
        "hubscore",
        Duration::from_secs(60),
    )
    .err()
    .unwrap();
    assert!(swapped.to_string().contains("internal_jwt.private_key"));
    for error in [&bad_public, &swapped] {
        assert!(!error.to_string().contains("MC4CAQ"), "{error}");
        assert!(!error.to_string().contains("MCowBQ"), "{error}");
    }
}

#[test]
fn a_signer_needs_a_private_key_and_settings_never_print_it() {
    let mut settings = InternalJwtSettings {
        public_keys: vec![DEVELOPMENT_PUBLIC_KEY_PEM.to_owned()],
        issuer: "hubscore".into(),
        ttl_secs: 60,
        private_key: None,
    };
    let missing = InternalTokenSigner::from_settings(&settings).err().unwrap();
    assert_eq!(
        missing.to_string(),
        "internal_jwt.private_key: not set".to_owned()
    );
    settings.private_key = Some(DEVELOPMENT_PRIVATE_KEY_PEM.to_owned());
    let token = InternalTokenSigner::from_settings(&settings)
        .unwrap()
        .mint("sync-worker", "writeback-worker", None, vec![])
        .unwrap();
    assert!(
        InternalTokenVerifier::from_settings(&settings)
            .unwrap()
            .verify(&token, "sync-worker")
            .is_ok()
    );
    let printed = format!("{settings:?}");
    assert!(!printed.contains("MC4CAQ"), "{printed}");
}
