//! The typed calls, one module per HubSpot API family.

mod associations;
mod misc;
mod objects;
mod properties;
mod search;

pub use objects::ListOptions;
pub use search::{ModifiedSince, SEARCH_RESULT_CAP, last_modified_property};

/// HubSpot's documented maximum inputs per CRM batch request.
pub const OBJECT_BATCH_SIZE: usize = 100;
/// HubSpot's documented maximum inputs per v4 association batch read.
pub const ASSOCIATION_BATCH_SIZE: usize = 1_000;

/// Percent-encodes one path segment (ids and names come from callers and HubSpot).
pub(crate) fn segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
