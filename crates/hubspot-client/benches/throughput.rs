//! Throughput benchmarks against the simulator (filled in below as the simulator lands).

fn main() {}
