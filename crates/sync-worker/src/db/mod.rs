//! The `sync` schema: queries as functions next to their rows. Bulk writes use
//! `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT ...`, so a page of any size is one
//! statement with a fixed number of binds.

pub mod connections;
pub mod fields;
pub mod mirror;
pub mod publish;
pub mod runs;
