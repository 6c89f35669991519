//! Custom mappings (in progress).
