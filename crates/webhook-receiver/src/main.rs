//! The `webhook-receiver` binary; see the library for what the service does.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::service::run_main::<webhook_receiver::WebhookReceiver>().await
}
