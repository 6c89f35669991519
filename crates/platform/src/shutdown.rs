//! Graceful shutdown: one token every task watches, cancelled on SIGTERM or SIGINT.
//!
//! The token is passed in as a parameter (never a global), so tests stop a service by
//! cancelling it. On cancellation consumers stop taking new deliveries, finish and ack
//! what they hold, the HTTP server drains, and the process exits 0.

use tokio_util::sync::CancellationToken;

/// Cancelled when the service should stop. Cheap to clone.
pub type Shutdown = CancellationToken;

/// Returns a token that is cancelled on the first SIGTERM or SIGINT.
pub fn on_signal() -> Shutdown {
    let token = Shutdown::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        trigger.cancel();
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            // Without signal handlers the service still stops on Ctrl-C.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
