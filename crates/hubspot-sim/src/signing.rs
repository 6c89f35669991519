//! HubSpot's webhook request signatures (hubspot-api.md §9.5), written from the
//! document on purpose: the simulator is the independent oracle the receiver's
//! own verification is tested against, so it must not share that code.

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// v1: lowercase hex SHA-256 of `client_secret + body` (a plain hash, not an HMAC).
pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

/// v2: lowercase hex SHA-256 of `client_secret + method + uri + body`.
pub fn sign_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(method.as_bytes());
    hasher.update(uri.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

/// v3: base64 HMAC-SHA256, keyed by the client secret, of
/// `method + decoded_uri + body + timestamp`. `uri` is the full target URL; it is
/// decoded here with [`decode_uri_v3`].
pub fn sign_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be reached.
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(decode_uri_v3(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Decodes only the percent-escapes HubSpot's v3 rule lists (upper-case hex);
/// everything else stays encoded.
pub fn decode_uri_v3(uri: &str) -> String {
    const TABLE: [(&str, char); 12] = [
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match TABLE.iter().find(|(esc, _)| tail.starts_with(esc)) {
            Some((esc, ch)) => {
                out.push(*ch);
                rest = &tail[esc.len()..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Compares two signatures in constant time.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_keeps_escapes_outside_the_v3_list() {
        assert_eq!(
            decode_uri_v3("https://x.test/a%3Ab?q=%20%26%3D%2F"),
            "https://x.test/a:b?q=%20%26%3D/"
        );
    }
}
