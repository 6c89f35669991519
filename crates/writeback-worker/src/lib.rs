//! writeback-worker
