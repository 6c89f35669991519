//! Message handlers: `score.updated`, `crm.changed` (custom attributes) and `connection.*`.

pub mod attributes;
pub mod connections;
pub mod scores;
