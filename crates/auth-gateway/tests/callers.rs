//! Callers' tokens: only the configured key and algorithm verify, with issuer, audience,
//! expiry and not-before checked; JWKS keys rotate.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use auth_gateway::caller::{CallerVerifier, Role, User};
use auth_gateway::config::CallerJwtSettings;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

const RSA_PRIVATE: &str = include_str!("fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("fixtures/rsa_public.pem");
const ED_A_PRIVATE: &str = include_str!("fixtures/ed25519_a_private.pem");
const ED_B_PRIVATE: &str = include_str!("fixtures/ed25519_b_private.pem");
const SECRET: &str = "a-test-hs256-secret-of-at-least-32-bytes";

fn settings(algorithm: &str) -> CallerJwtSettings {
    CallerJwtSettings {
        issuer: "https://idp.example".into(),
        audience: "hubscore-api".into(),
        algorithm: algorithm.into(),
        hs256_secret: Some(SECRET.to_owned().into()),
        public_key_pem: None,
        jwks_url: None,
        jwks_refresh_secs: 300,
        leeway_secs: 30,
        sub_claim: "sub".into(),
        org_claim: "org_id".into(),
        role_claim: "role".into(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(org: Uuid) -> Value {
    json!({
        "iss": "https://idp.example", "aud": "hubscore-api", "sub": "alice",
        "org_id": org.to_string(), "role": "admin", "exp": now() + 300, "nbf": now() - 10,
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        None,
        claims,
    )
}

async fn refused(verifier: &CallerVerifier, token: &str) -> String {
    match verifier.verify(token).await {
        Ok(user) => panic!("accepted {user:?}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_valid_token_gives_the_caller_its_org_and_role() {
    let verifier = CallerVerifier::new(&settings("HS256")).await.unwrap();
    let org = Uuid::new_v4();
    let user = verifier.verify(&hs256(&claims(org))).await.unwrap();
    assert_eq!(
        user,
        User {
            sub: "alice".into(),
            org_id: org,
            role: Role::Admin
        }
    );
}

#[tokio::test]
async fn forged_expired_premature_foreign_and_malformed_tokens_are_refused() {
    let verifier = CallerVerifier::new(&settings("HS256")).await.unwrap();
    let org = Uuid::new_v4();
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        None,
        &claims(org),
    );
    assert!(refused(&verifier, &forged).await.contains("bad signature"));
    let mut expired = claims(org);
    expired["exp"] = json!(now() - 120);
    assert!(
        refused(&verifier, &hs256(&expired))
            .await
            .contains("expired")
    );
    let mut premature = claims(org);
    premature["nbf"] = json!(now() + 120);
    assert!(
        refused(&verifier, &hs256(&premature))
            .await
            .contains("not yet valid")
    );
    let mut audience = claims(org);
    audience["aud"] = json!("another-api");
    assert!(
        refused(&verifier, &hs256(&audience))
            .await
            .contains("wrong audience")
    );
    let mut issuer = claims(org);
    issuer["iss"] = json!("https://evil.example");
    assert!(
        refused(&verifier, &hs256(&issuer))
            .await
            .contains("wrong issuer")
    );
    let mut role = claims(org);
    role["role"] = json!("superuser");
    assert!(refused(&verifier, &hs256(&role)).await.contains("role"));
    let mut org_less = claims(org);
    org_less["org_id"] = json!("not-a-uuid");
    assert!(
        refused(&verifier, &hs256(&org_less))
            .await
            .contains("organization")
    );
    assert!(refused(&verifier, "garbage").await.contains("malformed"));
    // Within the leeway, a just-expired token still passes.
    let mut skewed = claims(org);
    skewed["exp"] = json!(now() - 5);
    assert!(verifier.verify(&hs256(&skewed)).await.is_ok());
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let verifier = CallerVerifier::new(&settings("HS256")).await.unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims(Uuid::new_v4()).to_string());
    for token in [format!("{header}.{body}."), format!("{header}.{body}")] {
        refused(&verifier, &token).await;
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused_when_rs256_is_configured() {
    let mut rs256 = settings("RS256");
    rs256.hs256_secret = None;
    rs256.public_key_pem = Some(RSA_PUBLIC.to_owned());
    let verifier = CallerVerifier::new(&rs256).await.unwrap();
    let org = Uuid::new_v4();
    let genuine = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        None,
        &claims(org),
    );
    assert_eq!(verifier.verify(&genuine).await.unwrap().org_id, org);
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        None,
        &claims(org),
    );
    refused(&verifier, &confused).await;
    // And the HS256 verifier does not take an RS256 token either.
    let hs = CallerVerifier::new(&settings("HS256")).await.unwrap();
    refused(&hs, &genuine).await;
}

#[tokio::test]
async fn claim_names_come_from_configuration() {
    let mut custom = settings("HS256");
    custom.org_claim = "https://hubscore.example/org".into();
    custom.role_claim = "hubscore_role".into();
    let verifier = CallerVerifier::new(&custom).await.unwrap();
    let org = Uuid::new_v4();
    let token = hs256(&json!({
        "iss": "https://idp.example", "aud": "hubscore-api", "sub": "bob", "exp": now() + 60,
        "https://hubscore.example/org": org.to_string(), "hubscore_role": "member",
    }));
    let user = verifier.verify(&token).await.unwrap();
    assert_eq!((user.org_id, user.role), (org, Role::Member));
}

fn jwk(private_pem: &str, kid: &str) -> Jwk {
    let key = EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

#[tokio::test]
async fn a_jwks_key_rotation_is_picked_up_and_the_retired_key_stops_working() {
    let served = Arc::new(Mutex::new(JwkSet {
        keys: vec![jwk(ED_A_PRIVATE, "a")],
    }));
    let shared = served.clone();
    let server = HttpServer::new(move || {
        let shared = shared.clone();
        App::new().route(
            "/jwks.json",
            web::get().to(move || {
                let set = shared.lock().unwrap().clone();
                async move { HttpResponse::Ok().json(set) }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);

    let mut jwks = settings("EdDSA");
    jwks.hs256_secret = None;
    jwks.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks.json"));
    let verifier = CallerVerifier::new(&jwks).await.unwrap();
    let org = Uuid::new_v4();
    let key_a = EncodingKey::from_ed_pem(ED_A_PRIVATE.as_bytes()).unwrap();
    let key_b = EncodingKey::from_ed_pem(ED_B_PRIVATE.as_bytes()).unwrap();
    let token_a = sign(Algorithm::EdDSA, &key_a, Some("a"), &claims(org));
    let token_b = sign(Algorithm::EdDSA, &key_b, Some("b"), &claims(org));
    assert!(verifier.verify(&token_a).await.is_ok());
    // A token naming key "a" but signed with key "b" is a forgery.
    let forged = sign(Algorithm::EdDSA, &key_b, Some("a"), &claims(org));
    refused(&verifier, &forged).await;
    // A token without a key id, or with HS256 and the JWK's bytes, gets nowhere.
    refused(
        &verifier,
        &sign(Algorithm::EdDSA, &key_a, None, &claims(org)),
    )
    .await;
    refused(&verifier, &hs256(&claims(org))).await;

    // The provider rotates: "b" is published, "a" retired.
    served.lock().unwrap().keys = vec![jwk(ED_B_PRIVATE, "b")];
    let rotated = platform::testing::eventually(Duration::from_secs(20), || async {
        verifier.verify(&token_b).await.is_ok()
    })
    .await;
    assert!(rotated, "the new key was never picked up");
    let retired = platform::testing::eventually(Duration::from_secs(20), || async {
        verifier.verify(&token_a).await.is_err()
    })
    .await;
    assert!(retired, "the retired key still verifies");
    handle.stop(false).await;
}
