//! Outbound mapping (in progress).
