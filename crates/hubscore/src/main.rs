//! The `hubscore` binary; see the library for what it does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hubscore::run_main().await
}
