//! The typed calls, one module per HubSpot API family.

mod associations;
mod misc;
mod objects;
mod properties;
mod search;

pub use misc::TIMELINE_BATCH_SIZE;
pub use objects::ListOptions;
pub use search::{ModifiedSince, SEARCH_RESULT_CAP, last_modified_property};

/// HubSpot's documented maximum inputs per CRM batch request.
pub const OBJECT_BATCH_SIZE: usize = 100;
/// HubSpot's documented maximum inputs per v4 association batch read.
pub const ASSOCIATION_BATCH_SIZE: usize = 1_000;

/// Percent-encodes one path segment (ids and names come from callers and HubSpot). Leaves
/// the characters RFC 3986 allows in a segment (`@` in emails, `:`) as they are.
pub(crate) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        let c = char::from(byte);
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_keep_emails_readable_and_escape_slashes() {
        assert_eq!(
            super::segment("ada@northwind.example"),
            "ada@northwind.example"
        );
        assert_eq!(super::segment("a/b c"), "a%2Fb%20c");
    }
}
