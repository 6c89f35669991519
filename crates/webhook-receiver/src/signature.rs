//! HubSpot's webhook request signatures (v1, v2, v3), checked on the raw body in
//! constant time.
//!
//! Which check runs is decided by the headers present, not by
//! `X-HubSpot-Signature-Version`: HubSpot sends the v3 headers alongside the older
//! `X-HubSpot-Signature`, so when v3 is accepted and `X-HubSpot-Signature-v3` came, v3
//! alone decides. v1/v2 are checked only when no v3 check applies and configuration
//! accepts that version. Several secrets may be valid at once (a secret rotation);
//! each is tried, and the comparison never short-circuits on the signature's bytes.

use std::fmt;

use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// `X-HubSpot-Signature`: v1 or v2 hex SHA-256.
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature";
/// `X-HubSpot-Signature-Version`: `v1` or `v2`, naming what `X-HubSpot-Signature` holds.
pub const SIGNATURE_VERSION_HEADER: &str = "x-hubspot-signature-version";
/// `X-HubSpot-Signature-v3`: base64 HMAC-SHA256.
pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
/// `X-HubSpot-Request-Timestamp`: epoch milliseconds, part of the v3 signature.
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";

/// A signature algorithm HubSpot uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// `sha256(secret + body)`, hex.
    V1,
    /// `sha256(secret + method + uri + body)`, hex.
    V2,
    /// `base64(hmac_sha256(secret, method + decoded_uri + body + timestamp))`.
    V3,
}

impl SignatureVersion {
    /// The name HubSpot uses (`v1`, `v2`, `v3`), also the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V1 => "v1",
            SignatureVersion::V2 => "v2",
            SignatureVersion::V3 => "v3",
        }
    }
}

/// Why a delivery's signature was refused; each is a stable error code and metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header that configuration accepts came with the request.
    #[error("the request carries no signature this receiver accepts")]
    MissingSignature,
    /// v3: `X-HubSpot-Request-Timestamp` is absent or not epoch milliseconds.
    #[error("X-HubSpot-Request-Timestamp is missing or not epoch milliseconds")]
    InvalidTimestamp,
    /// v3: the timestamp is older than the allowed window.
    #[error("X-HubSpot-Request-Timestamp is older than the allowed window")]
    StaleTimestamp,
    /// v3: the timestamp is further ahead than the allowed window.
    #[error("X-HubSpot-Request-Timestamp is in the future beyond the allowed window")]
    FutureTimestamp,
    /// The signature matches none of the valid secrets.
    #[error("the signature does not match")]
    InvalidSignature,
}

impl SignatureError {
    /// The stable code sent as `error` and used as the metrics `reason`.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::InvalidTimestamp => "invalid_timestamp",
            SignatureError::StaleTimestamp => "stale_timestamp",
            SignatureError::FutureTimestamp => "future_timestamp",
            SignatureError::InvalidSignature => "invalid_signature",
        }
    }
}

/// The parts of a request a signature covers.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The full URL HubSpot called, rebuilt from the configured public base URL (see
    /// [`signed_url`]), still percent-encoded as received.
    pub url: &'a str,
    /// The raw body bytes.
    pub body: &'a [u8],
    /// `X-HubSpot-Signature-v3`, if sent.
    pub signature_v3: Option<&'a str>,
    /// `X-HubSpot-Request-Timestamp`, if sent.
    pub timestamp: Option<&'a str>,
    /// `X-HubSpot-Signature`, if sent.
    pub signature: Option<&'a str>,
    /// `X-HubSpot-Signature-Version`, if sent.
    pub signature_version: Option<&'a str>,
}

impl fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Accepted algorithms (v3 by default).
    pub accepted: Vec<SignatureVersion>,
    /// How far a v3 timestamp may lie in the past or the future (300,000 ms).
    pub timestamp_tolerance_ms: i64,
}

/// Checks `request` against each secret in `secrets` at the instant `now_ms` (epoch
/// milliseconds); answers the version that verified.
///
/// # Errors
/// The [`SignatureError`] that refuses the request.
pub fn verify(
    request: &SignedRequest<'_>,
    secrets: &[SecretString],
    policy: &VerifyPolicy,
    now_ms: i64,
) -> Result<SignatureVersion, SignatureError> {
    if policy.accepted.contains(&SignatureVersion::V3)
        && let Some(signature) = request.signature_v3
    {
        let timestamp = request.timestamp.ok_or(SignatureError::InvalidTimestamp)?;
        check_timestamp(timestamp, now_ms, policy.timestamp_tolerance_ms)?;
        let decoded = decode_uri_v3(request.url);
        let matched = any_secret(secrets, |secret| {
            let expected = sign_v3(secret, request.method, &decoded, request.body, timestamp);
            equal(expected.as_bytes(), signature.trim().as_bytes())
        });
        return if matched {
            Ok(SignatureVersion::V3)
        } else {
            Err(SignatureError::InvalidSignature)
        };
    }
    let Some(signature) = request.signature else {
        return Err(SignatureError::MissingSignature);
    };
    // HubSpot leaves the version header off only in very old v1 deliveries.
    let version = match request
        .signature_version
        .map(str::trim)
        .unwrap_or("v1")
        .to_ascii_lowercase()
        .as_str()
    {
        "v1" => SignatureVersion::V1,
        "v2" => SignatureVersion::V2,
        _ => return Err(SignatureError::MissingSignature),
    };
    if !policy.accepted.contains(&version) {
        return Err(SignatureError::MissingSignature);
    }
    let signature = signature.trim().to_ascii_lowercase();
    let matched = any_secret(secrets, |secret| {
        let expected = match version {
            SignatureVersion::V1 => sign_v1(secret, request.body),
            _ => sign_v2(secret, request.method, request.url, request.body),
        };
        equal(expected.as_bytes(), signature.as_bytes())
    });
    if matched {
        Ok(version)
    } else {
        Err(SignatureError::InvalidSignature)
    }
}

/// Tries every secret (no early exit, so timing does not tell which one matched).
fn any_secret(secrets: &[SecretString], mut check: impl FnMut(&str) -> bool) -> bool {
    let mut matched = false;
    for secret in secrets {
        matched |= check(secret.expose_secret());
    }
    matched
}

fn check_timestamp(timestamp: &str, now_ms: i64, tolerance_ms: i64) -> Result<(), SignatureError> {
    let sent_ms: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::InvalidTimestamp)?;
    let age_ms = now_ms.saturating_sub(sent_ms);
    if age_ms > tolerance_ms {
        Err(SignatureError::StaleTimestamp)
    } else if age_ms < -tolerance_ms {
        Err(SignatureError::FutureTimestamp)
    } else {
        Ok(())
    }
}

/// Constant-time equality; lengths are public (every valid signature of a version has
/// the same length).
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The URL HubSpot signed: the configured public base URL (`scheme://host[:port]`, plus
/// any path prefix a proxy in front strips) followed by the path and query exactly as
/// received.
pub fn signed_url(public_base_url: &str, path_and_query: &str) -> String {
    let base = public_base_url.trim_end_matches('/');
    let mut url = String::with_capacity(base.len() + path_and_query.len());
    url.push_str(base);
    url.push_str(path_and_query);
    url
}

/// v1: lowercase hex SHA-256 of `secret + body`.
pub fn sign_v1(secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

/// v2: lowercase hex SHA-256 of `secret + method + url + body`.
pub fn sign_v2(secret: &str, method: &str, url: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update(method.as_bytes());
    hasher.update(url.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

/// v3: base64 HMAC-SHA256 keyed by `secret` of `method + decoded_url + body + timestamp`;
/// `decoded_url` must already be decoded with [`decode_uri_v3`].
pub fn sign_v3(
    secret: &str,
    method: &str,
    decoded_url: &str,
    body: &[u8],
    timestamp: &str,
) -> String {
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this cannot happen.
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(decoded_url.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Decodes exactly the percent-escapes HubSpot's v3 rule lists (`%3A` `%2F` `%3F` `%40`
/// `%21` `%24` `%27` `%28` `%29` `%2A` `%2C` `%3B`, upper-case hex as HubSpot's own
/// clients write them); every other escape stays encoded.
pub fn decode_uri_v3(url: &str) -> String {
    const TABLE: [(&[u8; 2], char); 12] = [
        (b"3A", ':'),
        (b"2F", '/'),
        (b"3F", '?'),
        (b"40", '@'),
        (b"21", '!'),
        (b"24", '$'),
        (b"27", '\''),
        (b"28", '('),
        (b"29", ')'),
        (b"2A", '*'),
        (b"2C", ','),
        (b"3B", ';'),
    ];
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let tail = &rest.as_bytes()[pos + 1..];
        let decoded = tail
            .get(..2)
            .and_then(|hex| TABLE.iter().find(|(esc, _)| esc.as_slice() == hex));
        match decoded {
            Some((_, ch)) => {
                out.push(*ch);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFICIAL_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const OFFICIAL_V1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    const SIM_SECRET: &str = "00000000-1111-2222-3333-444444444444";
    const SIM_TIMESTAMP: &str = "1767225601234";
    const SIM_URL: &str = "https://sim.example.test/hooks/hubspot?src=hs%3Asim&x=1";
    const SIM_BODY: &str = r#"[{"eventId":4242,"subscriptionId":77,"portalId":9990001,"appId":31337,"occurredAt":1767225600000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":5551234,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI","sourceId":"userId:42"}]"#;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values.iter().map(|s| SecretString::from(*s)).collect()
    }

    fn policy(accepted: &[SignatureVersion]) -> VerifyPolicy {
        VerifyPolicy {
            accepted: accepted.to_vec(),
            timestamp_tolerance_ms: 300_000,
        }
    }

    fn sim_v3_request<'a>(signature: &'a str) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            url: SIM_URL,
            body: SIM_BODY.as_bytes(),
            signature_v3: Some(signature),
            timestamp: Some(SIM_TIMESTAMP),
            signature: None,
            signature_version: None,
        }
    }

    fn sim_now() -> i64 {
        1_767_225_601_234 + 1_000
    }

    #[test]
    fn the_official_v1_and_v2_test_vectors_verify() {
        assert_eq!(
            sign_v1(OFFICIAL_SECRET, OFFICIAL_V1_BODY.as_bytes()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            sign_v2(
                OFFICIAL_SECRET,
                "GET",
                "https://www.example.com/webhook_uri",
                b""
            ),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            sign_v2(
                OFFICIAL_SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                br#"{"example_field":"example_value"}"#
            ),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        let request = SignedRequest {
            method: "POST",
            url: "https://www.example.com/webhook_uri",
            body: OFFICIAL_V1_BODY.as_bytes(),
            signature_v3: None,
            timestamp: None,
            signature: Some("232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"),
            signature_version: Some("v1"),
        };
        assert_eq!(
            verify(
                &request,
                &secrets(&[OFFICIAL_SECRET]),
                &policy(&[SignatureVersion::V1]),
                0
            ),
            Ok(SignatureVersion::V1)
        );
    }

    #[test]
    fn the_documented_v3_v1_and_v2_vectors_with_an_encoded_query_verify() {
        let v3 = "jkR3AN1iLVgZRGMHPrUH26nykfCm2gAjtsPYZo3J9Tc=";
        assert_eq!(
            sign_v3(
                SIM_SECRET,
                "POST",
                &decode_uri_v3(SIM_URL),
                SIM_BODY.as_bytes(),
                SIM_TIMESTAMP
            ),
            v3
        );
        assert_eq!(
            verify(
                &sim_v3_request(v3),
                &secrets(&[SIM_SECRET]),
                &policy(&[SignatureVersion::V3]),
                sim_now()
            ),
            Ok(SignatureVersion::V3)
        );
        assert_eq!(
            sign_v1(SIM_SECRET, SIM_BODY.as_bytes()),
            "2cb555d564e244c4d97ccabbeb79692403703a4a9c54fbf68471fda2025f139a"
        );
        assert_eq!(
            sign_v2(SIM_SECRET, "POST", SIM_URL, SIM_BODY.as_bytes()),
            "51a8cb58740888f968dc2353e683d6d654959993bb851f397675155547dd164d"
        );
    }

    #[test]
    fn either_secret_verifies_during_a_rotation_and_a_third_does_not() {
        let v3 = "jkR3AN1iLVgZRGMHPrUH26nykfCm2gAjtsPYZo3J9Tc=";
        let policy = policy(&[SignatureVersion::V3]);
        for pair in [[SIM_SECRET, "new-secret"], ["new-secret", SIM_SECRET]] {
            assert!(verify(&sim_v3_request(v3), &secrets(&pair), &policy, sim_now()).is_ok());
        }
        assert_eq!(
            verify(
                &sim_v3_request(v3),
                &secrets(&["other", "another"]),
                &policy,
                sim_now()
            ),
            Err(SignatureError::InvalidSignature)
        );
        assert_eq!(
            verify(&sim_v3_request(v3), &[], &policy, sim_now()),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn v3_timestamps_outside_five_minutes_either_way_are_refused() {
        let v3 = "jkR3AN1iLVgZRGMHPrUH26nykfCm2gAjtsPYZo3J9Tc=";
        let secrets = secrets(&[SIM_SECRET]);
        let policy = policy(&[SignatureVersion::V3]);
        let sent = 1_767_225_601_234;
        assert!(verify(&sim_v3_request(v3), &secrets, &policy, sent + 300_000).is_ok());
        assert_eq!(
            verify(&sim_v3_request(v3), &secrets, &policy, sent + 300_001),
            Err(SignatureError::StaleTimestamp)
        );
        assert!(verify(&sim_v3_request(v3), &secrets, &policy, sent - 300_000).is_ok());
        assert_eq!(
            verify(&sim_v3_request(v3), &secrets, &policy, sent - 300_001),
            Err(SignatureError::FutureTimestamp)
        );
        let mut garbled = sim_v3_request(v3);
        garbled.timestamp = Some("yesterday");
        assert_eq!(
            verify(&garbled, &secrets, &policy, sent),
            Err(SignatureError::InvalidTimestamp)
        );
        garbled.timestamp = None;
        assert_eq!(
            verify(&garbled, &secrets, &policy, sent),
            Err(SignatureError::InvalidTimestamp)
        );
    }

    #[test]
    fn a_changed_body_url_or_timestamp_breaks_the_v3_signature() {
        let v3 = "jkR3AN1iLVgZRGMHPrUH26nykfCm2gAjtsPYZo3J9Tc=";
        let secrets = secrets(&[SIM_SECRET]);
        let policy = policy(&[SignatureVersion::V3]);
        let body = SIM_BODY.replace("closedwon", "closedlost");
        let mut changed = sim_v3_request(v3);
        changed.body = body.as_bytes();
        assert_eq!(
            verify(&changed, &secrets, &policy, sim_now()),
            Err(SignatureError::InvalidSignature)
        );
        let mut changed = sim_v3_request(v3);
        changed.url = "https://sim.example.test/hooks/hubspot?src=hs%3Asim&x=2";
        assert_eq!(
            verify(&changed, &secrets, &policy, sim_now()),
            Err(SignatureError::InvalidSignature)
        );
        let mut changed = sim_v3_request(v3);
        changed.timestamp = Some("1767225601235");
        assert_eq!(
            verify(&changed, &secrets, &policy, sim_now()),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn v3_decides_when_its_header_is_present_and_v1_only_when_accepted() {
        let v1 = sign_v1(SIM_SECRET, SIM_BODY.as_bytes());
        let secrets = secrets(&[SIM_SECRET]);
        let mut request = sim_v3_request("forged");
        request.signature = Some(&v1);
        request.signature_version = Some("v1");
        let both = policy(&[SignatureVersion::V3, SignatureVersion::V1]);
        assert_eq!(
            verify(&request, &secrets, &both, sim_now()),
            Err(SignatureError::InvalidSignature),
            "a valid v1 does not rescue a forged v3"
        );
        assert_eq!(
            verify(&request, &secrets, &policy(&[SignatureVersion::V1]), 0),
            Ok(SignatureVersion::V1)
        );
        assert_eq!(
            verify(&request, &secrets, &policy(&[SignatureVersion::V2]), 0),
            Err(SignatureError::MissingSignature),
            "v1 is refused where only v2 is accepted"
        );
        request.signature_v3 = None;
        assert_eq!(
            verify(&request, &secrets, &policy(&[SignatureVersion::V3]), 0),
            Err(SignatureError::MissingSignature)
        );
    }

    #[test]
    fn decoding_touches_only_the_listed_upper_case_escapes() {
        assert_eq!(
            decode_uri_v3("https://x.test/a%3Ab?q=%20%26%3D%2F%40%21%24%27%28%29%2A%2C%3B%3F"),
            "https://x.test/a:b?q=%20%26%3D/@!$'()*,;?"
        );
        assert_eq!(decode_uri_v3("%3a%"), "%3a%");
        assert_eq!(decode_uri_v3("%é%3"), "%é%3");
    }

    #[test]
    fn the_signed_url_joins_the_public_base_and_the_received_path() {
        assert_eq!(
            signed_url("https://hooks.example.com/", "/webhooks/hubspot?a=%3A"),
            "https://hooks.example.com/webhooks/hubspot?a=%3A"
        );
    }
}
