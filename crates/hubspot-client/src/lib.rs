//! Typed HubSpot API client with retries and a shared per-portal rate budget.
