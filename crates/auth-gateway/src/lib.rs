//! auth-gateway
