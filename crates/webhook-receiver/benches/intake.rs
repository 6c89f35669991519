//! Placeholder; the intake benchmark follows.
fn main() {}
