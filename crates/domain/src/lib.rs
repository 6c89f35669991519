//! hubscore's domain: the internal records (customers, companies, deals, owners,
//! pipelines), the default and per-connection custom mappings from HubSpot's all-string
//! properties to those records, and the outbound mapping from scores and custom
//! attributes back to HubSpot property values.
//!
//! Everything here is a pure function over plain data, so it can be tested exhaustively.
//! It must not do I/O: no database, broker, HTTP or async runtime crate belongs in this
//! crate (`tests/no_io_dependencies.rs` checks), and HubSpot wire types stay in
//! `hubspot-client`; callers hand us the property map and envelope fields.
//!
//! Modules: [`ids`] (id newtypes), [`records`] (internal records and enums), [`parse`]
//! (value parsers and formatters), [`mapping`] (default inbound mappers and their
//! [`mapping::MappingOutcome`]), [`dedupe`] (contacts by e-mail), [`custom`] (custom
//! mapping configs and their validation), [`outbound`] (score, risk level and custom
//! attributes to HubSpot property strings).

#[macro_use]
mod macros;

pub mod custom;
pub mod dedupe;
pub mod ids;
pub mod mapping;
pub mod outbound;
pub mod parse;
pub mod records;
