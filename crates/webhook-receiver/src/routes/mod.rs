//! HTTP routes.

pub mod webhooks;
