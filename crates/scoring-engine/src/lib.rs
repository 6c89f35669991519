//! scoring-engine
