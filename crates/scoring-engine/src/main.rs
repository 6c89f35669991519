//! The `scoring-engine` binary; see the library for what the service does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::service::run_main::<scoring_engine::ScoringEngine>().await
}
