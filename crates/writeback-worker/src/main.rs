//! The `writeback-worker` binary; see the library for what the service does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::service::run_main::<writeback_worker::WritebackWorker>().await
}
