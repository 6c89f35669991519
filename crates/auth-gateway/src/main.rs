//! The `auth-gateway` binary; see the library for what the service does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if auth_gateway::cli::is_tool_command(&args) {
        auth_gateway::cli::run_tool().await
    } else {
        platform::service::run_main::<auth_gateway::AuthGateway>().await
    }
}
