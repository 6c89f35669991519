//! The `auth-gateway` binary; see the library for what the service does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::service::run_main::<auth_gateway::AuthGateway>().await
}
