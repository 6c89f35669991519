//! webhook-receiver
