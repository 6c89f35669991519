//! Development mode: the built-in keys work on a developer's machine, and a service
//! started anywhere else with them refuses, naming the setting.

#![expect(clippy::unwrap_used, reason = "tests")]

use platform::config::{RuntimeSettings, load_with_env, refuse_development_values};
use platform::jwt::{DEVELOPMENT_PRIVATE_KEY_PEM, InternalJwtSettings};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    runtime: RuntimeSettings,
    internal_jwt: InternalJwtSettings,
}

/// A key pair that is not the development one (test only).
const REAL_PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAXs8s1tEJFTDbb/an2hW81V3sR6yFq8bmdkqEWyxxX1w=
-----END PUBLIC KEY-----
";

fn load(env: &[(&str, &str)]) -> Settings {
    let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    load_with_env("", None, env).unwrap()
}

fn check(settings: &Settings) -> anyhow::Result<()> {
    refuse_development_values(
        settings.runtime.development,
        &settings.internal_jwt.development_values(),
    )
}

#[test]
fn the_built_in_key_outside_development_mode_is_refused_naming_the_setting() {
    let settings = load(&[]);
    assert!(!settings.runtime.development, "production is the default");
    let error = check(&settings).unwrap_err().to_string();
    assert!(error.contains("internal_jwt.public_keys"), "{error}");
    assert!(error.contains("HUBSCORE__RUNTIME__DEVELOPMENT"), "{error}");
    assert!(!error.contains("BEGIN"), "no key material in {error}");
}

#[test]
fn development_mode_accepts_the_built_in_keys() {
    let mut settings = load(&[("HUBSCORE__RUNTIME__DEVELOPMENT", "true")]);
    assert!(settings.runtime.development);
    settings.internal_jwt.private_key = Some(DEVELOPMENT_PRIVATE_KEY_PEM.to_owned());
    check(&settings).unwrap();
}

#[test]
fn real_keys_outside_development_mode_are_accepted() {
    let settings = load(&[("HUBSCORE__INTERNAL_JWT__PUBLIC_KEYS", REAL_PUBLIC_KEY_PEM)]);
    check(&settings).unwrap();
}

#[test]
fn the_development_signing_key_is_refused_even_beside_a_real_public_key() {
    let mut settings = load(&[("HUBSCORE__INTERNAL_JWT__PUBLIC_KEYS", REAL_PUBLIC_KEY_PEM)]);
    // Indented differently than the built-in value: still recognised.
    settings.internal_jwt.private_key = Some(format!("  {DEVELOPMENT_PRIVATE_KEY_PEM}\n"));
    let error = check(&settings).unwrap_err().to_string();
    assert!(error.contains("internal_jwt.private_key"), "{error}");
    assert!(!error.contains("internal_jwt.public_keys"), "{error}");
}

#[test]
fn every_setting_still_at_its_development_value_is_named_at_once() {
    let error = refuse_development_values(
        false,
        &[
            ("vault.key", true),
            ("oauth.client_secret", false),
            ("internal_jwt.public_keys", true),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("development mode: vault.key, internal_jwt.public_keys;"),
        "{error}"
    );
    assert!(!error.contains("oauth.client_secret"), "{error}");
    refuse_development_values(true, &[("vault.key", true)]).unwrap();
    refuse_development_values(false, &[("vault.key", false)]).unwrap();
}
