//! Total parsers for HubSpot property values, which arrive as strings (numbers, dates and
//! booleans included; `hubspot-api.md` §3.3), and the matching formatters for values we
//! send back.
//!
//! Every parser accepts any `&str` without panicking and says why it refused a value, so
//! a mapper can turn the refusal into a warning. Money and other decimals are parsed
//! digit by digit into integers: no value ever passes through a float, because a float
//! cannot hold `0.1` and sums of cents must be exact.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Why a property value could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ValueError {
    /// Not a plain decimal number (`-12.50`): thousands separators, exponents, currency
    /// symbols and words are refused rather than guessed at.
    #[error("not a plain decimal number")]
    NotADecimal,
    /// A number too large for the field that holds it.
    #[error("number out of range")]
    OutOfRange,
    /// A negative value where only zero or more makes sense (e.g. employee count).
    #[error("negative value not allowed")]
    Negative,
    /// Not ISO 8601, epoch milliseconds, nor `YYYY-MM-DD`.
    #[error("not a timestamp (ISO 8601, epoch milliseconds or YYYY-MM-DD)")]
    NotATimestamp,
    /// Not `true` or `false`.
    #[error("not a boolean (true/false)")]
    NotABool,
    /// Not a plausible e-mail address.
    #[error("not a valid e-mail address")]
    InvalidEmail,
}

/// A parsed value, and whether digits had to be dropped to fit it (reported as a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rounded<T> {
    /// The value after rounding half-even.
    pub value: T,
    /// True when the input had non-zero digits beyond what the value can hold.
    pub rounded: bool,
}

/// A parsed value, and whether it had to be clamped into its allowed range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamped<T> {
    /// The value after clamping.
    pub value: T,
    /// True when the input was outside the range.
    pub clamped: bool,
}

/// The pieces of a plain decimal string, borrowed from it.
struct DecimalParts<'a> {
    negative: bool,
    int_digits: &'a [u8],
    frac_digits: &'a [u8],
}

/// Splits `[+-]digits[.digits]` (either side of the point may be empty, not both).
fn scan_decimal(t: &str) -> Result<DecimalParts<'_>, ValueError> {
    let bytes = t.as_bytes();
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (int_digits, frac_digits) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if (int_digits.is_empty() && frac_digits.is_empty())
        || !all_digits(int_digits)
        || !all_digits(frac_digits)
    {
        return Err(ValueError::NotADecimal);
    }
    Ok(DecimalParts {
        negative,
        int_digits,
        frac_digits,
    })
}

/// `parts * 10^scale` as an integer, rounded half-even on the digits past `scale`.
fn to_scaled(parts: &DecimalParts<'_>, scale: usize) -> Result<Rounded<i128>, ValueError> {
    let push = |v: i128, d: u8| -> Result<i128, ValueError> {
        v.checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
            .ok_or(ValueError::OutOfRange)
    };
    let mut v: i128 = 0;
    for &d in parts.int_digits {
        v = push(v, d)?;
    }
    for i in 0..scale {
        v = push(v, parts.frac_digits.get(i).copied().unwrap_or(b'0'))?;
    }
    let rest = parts.frac_digits.get(scale..).unwrap_or(&[]);
    let rounded = rest.iter().any(|&d| d != b'0');
    if let Some((&first, tail)) = rest.split_first() {
        let tail_nonzero = tail.iter().any(|&d| d != b'0');
        // Half-even on the magnitude, then the sign: symmetric, so -x rounds to -(round x).
        let up = first > b'5' || (first == b'5' && (tail_nonzero || v % 2 == 1));
        if up {
            v = v.checked_add(1).ok_or(ValueError::OutOfRange)?;
        }
    }
    if parts.negative {
        v = -v;
    }
    Ok(Rounded { value: v, rounded })
}

/// Parses a HubSpot money string (`"1234.5"`, `"-0.01"`, `"1000000000"`) into integer
/// cents. Empty or blank input is `Ok(None)` (no value). More than two decimals round
/// half-even and set [`Rounded::rounded`]. `"1,234.50"` is [`ValueError::NotADecimal`]:
/// HubSpot never sends separators, so a comma means the value is not what we think.
pub fn parse_money_cents(input: &str) -> Result<Option<Rounded<i64>>, ValueError> {
    let t = input.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let parts = scan_decimal(t)?;
    let scaled = to_scaled(&parts, 2)?;
    let cents = i64::try_from(scaled.value).map_err(|_| ValueError::OutOfRange)?;
    Ok(Some(Rounded {
        value: cents,
        rounded: scaled.rounded,
    }))
}

/// Formats cents as the decimal string HubSpot number properties accept (`-0.01`,
/// `1234.50`); [`parse_money_cents`] reads it back to the same value.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Parses a whole number such as `numberofemployees`: `"25"`, `"25.0"`; a fraction rounds
/// half-even and is reported. Negative values are refused.
pub fn parse_count(input: &str) -> Result<Option<Rounded<u64>>, ValueError> {
    let t = input.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let scaled = to_scaled(&scan_decimal(t)?, 0)?;
    if scaled.value < 0 {
        return Err(ValueError::Negative);
    }
    let value = u64::try_from(scaled.value).map_err(|_| ValueError::OutOfRange)?;
    Ok(Some(Rounded {
        value,
        rounded: scaled.rounded,
    }))
}

/// Most fraction digits a [`DecimalNumber`] keeps; HubSpot shows far fewer.
pub const MAX_DECIMAL_SCALE: u32 = 18;

/// An exact decimal number (`mantissa / 10^scale`) for custom number properties, kept
/// exact so a value read from HubSpot is written back digit for digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DecimalNumber {
    mantissa: i128,
    scale: u32,
}

impl DecimalNumber {
    /// Parses a plain decimal string; beyond [`MAX_DECIMAL_SCALE`] fraction digits it
    /// rounds half-even and says so. Empty input is `Ok(None)`.
    pub fn parse(input: &str) -> Result<Option<Rounded<DecimalNumber>>, ValueError> {
        let t = input.trim();
        if t.is_empty() {
            return Ok(None);
        }
        let parts = scan_decimal(t)?;
        let significant = parts
            .frac_digits
            .iter()
            .rposition(|&d| d != b'0')
            .map_or(0, |i| i + 1);
        let scale = significant.min(MAX_DECIMAL_SCALE as usize);
        let scaled = to_scaled(&parts, scale)?;
        Ok(Some(Rounded {
            value: DecimalNumber::new(scaled.value, scale as u32),
            rounded: scaled.rounded,
        }))
    }

    /// `mantissa / 10^scale`, normalised (no trailing fraction zeros).
    pub fn new(mantissa: i128, scale: u32) -> DecimalNumber {
        let (mut mantissa, mut scale) = (mantissa, scale);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        DecimalNumber { mantissa, scale }
    }

    /// A whole number.
    pub fn from_integer(value: i64) -> DecimalNumber {
        DecimalNumber::new(i128::from(value), 0)
    }

    /// The digits without the point.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// How many digits follow the point.
    pub fn scale(&self) -> u32 {
        self.scale
    }
}

impl Ord for DecimalNumber {
    /// Exact comparison: the operand with fewer fraction digits is scaled up; if that
    /// overflows i128 its magnitude is beyond anything the other can hold.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let (a, b) = (self.mantissa, other.mantissa);
        let rescale = |m: i128, by: u32| 10i128.checked_pow(by).and_then(|p| m.checked_mul(p));
        match self.scale.cmp(&other.scale) {
            Ordering::Equal => a.cmp(&b),
            Ordering::Less => match rescale(a, other.scale - self.scale) {
                Some(a) => a.cmp(&b),
                None if a < 0 => Ordering::Less,
                None => Ordering::Greater,
            },
            Ordering::Greater => match rescale(b, self.scale - other.scale) {
                Some(b) => a.cmp(&b),
                None if b < 0 => Ordering::Greater,
                None => Ordering::Less,
            },
        }
    }
}

impl PartialOrd for DecimalNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for DecimalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl From<DecimalNumber> for String {
    fn from(n: DecimalNumber) -> String {
        n.to_string()
    }
}

impl TryFrom<String> for DecimalNumber {
    type Error = ValueError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match DecimalNumber::parse(&s)? {
            Some(Rounded {
                value,
                rounded: false,
            }) => Ok(value),
            Some(_) => Err(ValueError::OutOfRange),
            None => Err(ValueError::NotADecimal),
        }
    }
}

/// Parses a HubSpot timestamp: ISO 8601 with or without milliseconds (`Z` or an offset;
/// none means UTC), epoch milliseconds as a string (`"1579514400000"`), or a date-only
/// `YYYY-MM-DD` (midnight UTC). Empty input is `Ok(None)`.
pub fn parse_timestamp(input: &str) -> Result<Option<DateTime<Utc>>, ValueError> {
    let t = input.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = t.parse().map_err(|_| ValueError::OutOfRange)?;
        return DateTime::from_timestamp_millis(ms)
            .map(Some)
            .ok_or(ValueError::OutOfRange);
    }
    if let Ok(date) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(Some(midnight_utc(date)));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(dt.with_timezone(&Utc)));
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(Some(naive.and_utc()));
    }
    Err(ValueError::NotATimestamp)
}

/// Parses a `date`-type property value: the date part of anything [`parse_timestamp`]
/// accepts (HubSpot stores dates as midnight UTC).
pub fn parse_date(input: &str) -> Result<Option<NaiveDate>, ValueError> {
    Ok(parse_timestamp(input)?.map(|dt| dt.date_naive()))
}

/// Midnight UTC at the start of `date`.
pub fn midnight_utc(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Formats a datetime as HubSpot returns and accepts it: ISO 8601, milliseconds, `Z`
/// (`2020-02-29T03:30:17.000Z`). Sub-millisecond digits are cut.
pub fn format_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats a date as HubSpot's `date` properties need it: `YYYY-MM-DD` (midnight UTC).
pub fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Parses a probability (`hs_deal_stage_probability`, stage `metadata.probability`):
/// a plain decimal, clamped to 0..=1 with [`Clamped::clamped`] set when it was outside.
pub fn parse_probability(input: &str) -> Result<Option<Clamped<f64>>, ValueError> {
    let t = input.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // Scan first so that "NaN", "inf" and "1e3", which f64 parsing accepts, are refused.
    scan_decimal(t)?;
    // `+ 0.0` turns "-0" into 0.0: a negative zero would serialise as `-0.0`.
    let raw: f64 = t.parse::<f64>().map_err(|_| ValueError::NotADecimal)? + 0.0;
    let value = raw.clamp(0.0, 1.0);
    Ok(Some(Clamped {
        value,
        clamped: value != raw,
    }))
}

/// Parses a HubSpot boolean: `"true"` / `"false"` (any case). Empty is `Ok(None)`.
pub fn parse_bool(input: &str) -> Result<Option<bool>, ValueError> {
    let t = input.trim();
    if t.is_empty() {
        Ok(None)
    } else if t.eq_ignore_ascii_case("true") {
        Ok(Some(true))
    } else if t.eq_ignore_ascii_case("false") {
        Ok(Some(false))
    } else {
        Err(ValueError::NotABool)
    }
}

/// Formats a boolean as HubSpot wants it: `"true"` / `"false"`.
pub fn format_bool(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Trims a free-text value; blank means no value.
pub fn clean_text(input: Option<&str>) -> Option<String> {
    input
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Joins `firstname` and `lastname` with one space, each trimmed; either may be missing
/// or blank, and with both missing there is no name.
pub fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    match (clean_text(first), clean_text(last)) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    }
}

/// Normalises a website or domain: trimmed, lower case, no `http://`/`https://` scheme,
/// no trailing slash (`"HTTPS://Example.com/"` -> `"example.com"`). Blank means none.
///
/// The result is a fixed point (normalising it again changes nothing), so a stored domain
/// compares equal to a freshly synced one: schemes are stripped as often as they repeat
/// (`"https://http://x.io"`, a copy-paste slip seen in CRMs) and blanks and slashes are
/// trimmed from the end together (`"x.io/ /"`).
pub fn normalize_web_address(input: &str) -> Option<String> {
    let lower = input.trim().to_lowercase();
    let mut rest = lower.as_str();
    while let Some(stripped) = ["https://", "http://", "//"]
        .iter()
        .find_map(|scheme| rest.strip_prefix(scheme))
    {
        rest = stripped.trim_start();
    }
    let trimmed = rest.trim_end_matches(|c: char| c == '/' || c.is_whitespace());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Longest address SMTP allows (RFC 5321 §4.5.3.1.3).
const MAX_EMAIL_LEN: usize = 254;
/// Longest local part SMTP allows.
const MAX_LOCAL_LEN: usize = 64;

/// Trims, lower-cases and validates an e-mail address.
///
/// The check is deliberately practical rather than full RFC 5322: one `@`; a local part of
/// letters, digits and `!#$%&'*+/=?^_`{|}~.-` without leading, trailing or doubled dots;
/// a domain of at least two dot-separated labels of letters, digits and inner hyphens,
/// whose last label is not all digits. Non-ASCII letters are accepted (internationalised
/// addresses exist in real CRMs). Quoted local parts and IP-literal domains are refused.
pub fn normalize_email(input: &str) -> Result<String, ValueError> {
    let email = input.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(ValueError::InvalidEmail);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(ValueError::InvalidEmail);
    };
    let local_ok = !local.is_empty()
        && local.len() <= MAX_LOCAL_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(ValueError::InvalidEmail)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cents(s: &str) -> Result<Option<(i64, bool)>, ValueError> {
        parse_money_cents(s).map(|o| o.map(|r| (r.value, r.rounded)))
    }

    #[test]
    fn money_strings_from_hubspot_become_exact_cents() {
        assert_eq!(cents("1234.5"), Ok(Some((123_450, false))));
        assert_eq!(cents("-0.01"), Ok(Some((-1, false))));
        assert_eq!(cents("1000000000"), Ok(Some((100_000_000_000, false))));
        assert_eq!(cents("0.10"), Ok(Some((10, false))));
        assert_eq!(cents(".5"), Ok(Some((50, false))));
        assert_eq!(cents("7."), Ok(Some((700, false))));
        assert_eq!(cents(" 12 "), Ok(Some((1200, false))));
    }

    #[test]
    fn empty_money_is_no_value_not_zero() {
        assert_eq!(cents(""), Ok(None));
        assert_eq!(cents("   "), Ok(None));
    }

    #[test]
    fn money_with_separators_or_symbols_is_refused() {
        for bad in [
            "1,234.50", "$12", "12 EUR", "1e3", "-", ".", "1.2.3", "NaN", "--1",
        ] {
            assert_eq!(cents(bad), Err(ValueError::NotADecimal), "{bad:?}");
        }
    }

    #[test]
    fn money_past_two_decimals_rounds_half_even_and_says_so() {
        assert_eq!(cents("0.125"), Ok(Some((12, true))));
        assert_eq!(cents("0.135"), Ok(Some((14, true))));
        assert_eq!(cents("0.1251"), Ok(Some((13, true))));
        assert_eq!(cents("-0.125"), Ok(Some((-12, true))));
        assert_eq!(cents("-0.001"), Ok(Some((0, true))));
        // Trailing zeros lose nothing, so they are not reported.
        assert_eq!(cents("1.2300"), Ok(Some((123, false))));
    }

    #[test]
    fn money_beyond_i64_cents_is_out_of_range() {
        assert_eq!(cents("92233720368547758.08"), Err(ValueError::OutOfRange));
        assert_eq!(cents("92233720368547758.07"), Ok(Some((i64::MAX, false))));
        assert_eq!(cents(&"9".repeat(60)), Err(ValueError::OutOfRange));
    }

    #[test]
    fn formatted_cents_read_back_identically() {
        for c in [0, 1, -1, 10, -10, 123_450, i64::MAX, i64::MIN] {
            assert_eq!(cents(&format_cents(c)), Ok(Some((c, false))), "{c}");
        }
        assert_eq!(format_cents(-1), "-0.01");
        assert_eq!(format_cents(123_450), "1234.50");
    }

    #[test]
    fn counts_are_whole_non_negative_numbers() {
        let count = |s| parse_count(s).map(|o| o.map(|r| (r.value, r.rounded)));
        assert_eq!(count("25"), Ok(Some((25, false))));
        assert_eq!(count("25.0"), Ok(Some((25, false))));
        assert_eq!(count("25.5"), Ok(Some((26, true))));
        assert_eq!(count("-3"), Err(ValueError::Negative));
        assert_eq!(count(""), Ok(None));
    }

    #[test]
    fn decimal_numbers_keep_every_digit() {
        let n = |s| DecimalNumber::parse(s).map(|o| o.map(|r| (r.value.to_string(), r.rounded)));
        assert_eq!(n("0.1"), Ok(Some(("0.1".into(), false))));
        assert_eq!(n("-12.3400"), Ok(Some(("-12.34".into(), false))));
        assert_eq!(n("-0.05"), Ok(Some(("-0.05".into(), false))));
        assert_eq!(n("1000"), Ok(Some(("1000".into(), false))));
        assert_eq!(
            n("0.1234567890123456789"),
            Ok(Some(("0.123456789012345679".into(), true)))
        );
    }

    #[test]
    fn timestamps_in_every_hubspot_format_parse_to_the_same_instant() {
        let want = Utc.with_ymd_and_hms(2020, 2, 29, 3, 30, 17).single();
        assert_eq!(
            parse_timestamp("2020-02-29T03:30:17.000Z").ok().flatten(),
            want
        );
        assert_eq!(parse_timestamp("2020-02-29T03:30:17Z").ok().flatten(), want);
        assert_eq!(
            parse_timestamp("2020-02-29T04:30:17+01:00").ok().flatten(),
            want
        );
        assert_eq!(parse_timestamp("2020-02-29T03:30:17").ok().flatten(), want);
        assert_eq!(parse_timestamp("1582947017000").ok().flatten(), want);
    }

    #[test]
    fn date_only_values_are_midnight_utc() {
        let want = Utc.with_ymd_and_hms(2024, 1, 31, 0, 0, 0).single();
        assert_eq!(parse_timestamp("2024-01-31").ok().flatten(), want);
        assert_eq!(
            format_date(NaiveDate::from_ymd_opt(2024, 1, 31).unwrap_or_default()),
            "2024-01-31"
        );
    }

    #[test]
    fn bad_timestamps_are_refused_not_guessed() {
        assert_eq!(
            parse_timestamp("2024-02-30"),
            Err(ValueError::NotATimestamp)
        );
        assert_eq!(parse_timestamp("yesterday"), Err(ValueError::NotATimestamp));
        assert_eq!(
            parse_timestamp("99999999999999999999"),
            Err(ValueError::OutOfRange)
        );
        assert_eq!(parse_timestamp(""), Ok(None));
    }

    #[test]
    fn datetimes_are_formatted_with_milliseconds_and_z() {
        let at = Utc.timestamp_millis_opt(1_582_947_017_042).single();
        assert_eq!(
            at.map(format_datetime).as_deref(),
            Some("2020-02-29T03:30:17.042Z")
        );
    }

    #[test]
    fn probabilities_outside_zero_to_one_are_clamped_and_reported() {
        let p = |s| parse_probability(s).map(|o| o.map(|c| (c.value, c.clamped)));
        assert_eq!(p("0.4"), Ok(Some((0.4, false))));
        assert_eq!(p("1.0"), Ok(Some((1.0, false))));
        assert_eq!(p("1.5"), Ok(Some((1.0, true))));
        assert_eq!(p("-0.2"), Ok(Some((0.0, true))));
        assert_eq!(p("-0"), Ok(Some((0.0, false))));
        let zero = parse_probability("-0.000").ok().flatten().map(|c| c.value);
        assert_eq!(zero.map(f64::is_sign_negative), Some(false));
        assert_eq!(p("NaN"), Err(ValueError::NotADecimal));
        assert_eq!(p("inf"), Err(ValueError::NotADecimal));
    }

    #[test]
    fn names_join_whatever_parts_exist() {
        assert_eq!(
            join_name(Some(" Ada "), Some("Lovelace ")),
            Some("Ada Lovelace".into())
        );
        assert_eq!(join_name(Some("Ada"), None), Some("Ada".into()));
        assert_eq!(
            join_name(Some("  "), Some("Lovelace")),
            Some("Lovelace".into())
        );
        assert_eq!(join_name(None, Some("")), None);
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_validated() {
        assert_eq!(
            normalize_email(" Ops@NorthWind.Example "),
            Ok("ops@northwind.example".into())
        );
        assert_eq!(
            normalize_email("a.b+tag@sub.example.co"),
            Ok("a.b+tag@sub.example.co".into())
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a..b@c.com",
            ".a@c.com",
            "a@-c.com",
            "a@c..com",
            "a@1.2.3.4",
            "\"q\"@c.com",
        ] {
            assert_eq!(
                normalize_email(bad),
                Err(ValueError::InvalidEmail),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn web_addresses_lose_scheme_case_and_trailing_slash() {
        assert_eq!(
            normalize_web_address("HTTPS://Example.com/"),
            Some("example.com".into())
        );
        assert_eq!(
            normalize_web_address("http://www.example.com/about/"),
            Some("www.example.com/about".into())
        );
        assert_eq!(
            normalize_web_address("example.com"),
            Some("example.com".into())
        );
        assert_eq!(normalize_web_address(" https:// "), None);
    }

    #[test]
    fn web_addresses_normalise_to_a_fixed_point() {
        for (input, want) in [
            ("https://http://Example.com", "example.com"),
            ("https:// example.com", "example.com"),
            ("example.com/ /", "example.com"),
            ("//example.com//", "example.com"),
        ] {
            let once = normalize_web_address(input);
            assert_eq!(once.as_deref(), Some(want), "{input:?}");
            assert_eq!(once.as_deref().and_then(normalize_web_address), once);
        }
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        assert_eq!(parse_bool("true"), Ok(Some(true)));
        assert_eq!(parse_bool("FALSE"), Ok(Some(false)));
        assert_eq!(parse_bool("yes"), Err(ValueError::NotABool));
        assert_eq!(format_bool(true), "true");
    }
}
