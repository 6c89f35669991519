//! The binary's life as an operator sees it: migrate, serve health endpoints, stop on
//! SIGTERM; refuse development secrets outside development mode; the tool subcommands.

use std::time::Duration;

use platform::testing::{ServiceProcess, TestDatabase, run_binary};

const BINARY: &str = env!("CARGO_BIN_EXE_auth-gateway");

#[tokio::test]
async fn binary_migrates_serves_health_endpoints_and_exits_cleanly_on_sigterm() {
    let database = TestDatabase::create().await.unwrap();
    let env = vec![
        ("HUBSCORE__DATABASE__URL", database.url.clone()),
        ("HUBSCORE__AMQP__URL", platform::testing::amqp_url()),
        ("HUBSCORE__RUNTIME__DEVELOPMENT", "true".to_owned()),
    ];
    let (status, out, err) = run_binary(BINARY, &["migrate"], &env).await.unwrap();
    assert!(status.success(), "{out}{err}");
    assert!(
        out.contains(r#""db.schema":"auth""#) && out.contains("hubspot_budget"),
        "{out}"
    );
    let (status, out, err) = run_binary(BINARY, &["migrate"], &env).await.unwrap();
    assert!(status.success(), "{out}{err}");
    assert!(out.contains(r#""migrations.applied":0"#), "{out}");

    let service = ServiceProcess::start(BINARY, &env).await.unwrap();
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", service.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = platform::testing::eventually(Duration::from_secs(15), || {
        let client = client.clone();
        let url = format!("{}/readyz", service.base_url());
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    assert!(ready, "/readyz never answered 200");
    let metrics = client
        .get(format!("{}/metrics", service.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hubscore_http_requests_total"),
        "{metrics}"
    );
    let status = service.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn development_secrets_are_refused_outside_development_mode_naming_the_setting() {
    let database = TestDatabase::create().await.unwrap();
    let env = vec![("HUBSCORE__DATABASE__URL", database.url.clone())];
    let (status, _, stderr) = run_binary(BINARY, &["serve"], &env).await.unwrap();
    assert!(!status.success());
    for key in [
        "vault.keyring",
        "caller_jwt.hs256_secret",
        "oauth.client_secret",
        "internal_clients.sync_worker.secret_sha256",
        "internal_jwt.public_keys",
        "internal_jwt.private_key",
        "runtime.development",
    ] {
        assert!(stderr.contains(key), "{key} not named in {stderr}");
    }
    let (status, stdout, stderr) = run_binary(
        BINARY,
        &[
            "issue-token",
            "--org",
            "0190a000-0000-7000-8000-000000000001",
            "--sub",
            "u",
            "--role",
            "admin",
        ],
        &env,
    )
    .await
    .unwrap();
    assert!(!status.success(), "{stdout}");
    assert!(stderr.contains("development mode"), "{stderr}");
    assert!(stdout.is_empty());
}

#[tokio::test]
async fn issue_token_mints_a_token_in_development_mode() {
    let env = vec![("HUBSCORE__RUNTIME__DEVELOPMENT", "true".to_owned())];
    let (status, stdout, stderr) = run_binary(
        BINARY,
        &[
            "issue-token",
            "--org",
            "0190a000-0000-7000-8000-000000000001",
            "--sub",
            "alice",
            "--role",
            "owner",
            "--ttl",
            "120",
        ],
        &env,
    )
    .await
    .unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim().split('.').count(), 3, "{stdout}");
    let (status, _, stderr) = run_binary(
        BINARY,
        &[
            "issue-token",
            "--org",
            "0190a000-0000-7000-8000-000000000001",
            "--sub",
            "a",
            "--role",
            "boss",
        ],
        &env,
    )
    .await
    .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("--role"), "{stderr}");
}
