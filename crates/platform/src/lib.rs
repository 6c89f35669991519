//! What every hubscore service shares: configuration, telemetry, metrics, health,
//! shutdown, the database pool and migrations, AMQP publishing and consuming, the
//! transactional outbox, and internal JWTs (Ed25519: auth-gateway signs, the rest verify).
//!
//! It holds infrastructure only: no HubSpot knowledge, no business rules, and nothing
//! that belongs to one service.

pub mod amqp;
pub mod caller;
pub mod cli;
pub mod config;
pub mod db;
pub mod health;
pub mod http;
pub mod jwt;
pub mod metrics;
pub mod outbox;
pub mod panics;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
