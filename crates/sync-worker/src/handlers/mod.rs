//! Message handlers: one module per queue.

pub mod commands;
pub mod webhooks;

use platform::amqp::Outcome;

/// A database failure is temporary: deliver the message again later.
pub(crate) fn retry(error: impl std::fmt::Display) -> Outcome {
    Outcome::Retry(error.to_string())
}
