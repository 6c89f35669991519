//! Message handlers: `score.updated` and `connection.*`.

pub mod connections;
pub mod scores;
