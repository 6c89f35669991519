//! A HubSpot API simulator for tests, benchmarks and the local demo.
