//! The binary's life as an operator sees it: migrate, serve health endpoints, stop on SIGTERM.

#[tokio::test]
async fn binary_migrates_serves_health_endpoints_and_exits_cleanly_on_sigterm() {
    platform::testing::check_service_lifecycle(
        env!("CARGO_BIN_EXE_auth-gateway"),
        &["auth", "hubspot_budget"],
    )
    .await
    .unwrap();
}
