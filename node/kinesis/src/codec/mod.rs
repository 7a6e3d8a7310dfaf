//! One document model for the two wire formats Kinesis clients speak: AWS JSON 1.1 (boto3, the
//! JavaScript and Go SDKs) and Kinesis's CBOR (the Java SDKs and the KPL/KCL). Actions read and
//! write [`Doc`]s and never see the format, so a field behaves the same in both.
//!
//! The formats differ in how they carry the two types JSON lacks: a blob is a byte string in CBOR
//! and a base64 string in JSON; a timestamp is tag 1 around integer epoch milliseconds in CBOR and
//! a number of epoch seconds in JSON.

mod cbor;
pub mod input;
mod json;

pub use input::{Input, Violations, validation, validation_null};

use crate::error::KinesisError;

/// The wire format of a request or response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    pub const JSON_CONTENT_TYPE: &'static str = "application/x-amz-json-1.1";
    pub const CBOR_CONTENT_TYPE: &'static str = "application/x-amz-cbor-1.1";

    /// Only the CBOR content type selects CBOR: clients that send nothing, `application/json` or
    /// something unexpected are answered in JSON, which every client can at least read an error
    /// from.
    pub fn from_content_type(ct: Option<&str>) -> Format {
        let Some(ct) = ct else {
            return Format::Json;
        };
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(Self::CBOR_CONTENT_TYPE) {
            Format::Cbor
        } else {
            Format::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => Self::JSON_CONTENT_TYPE,
            Format::Cbor => Self::CBOR_CONTENT_TYPE,
        }
    }
}

/// A decoded request or a response to encode. Maps keep their order so responses come out with
/// fields in the order the action wrote them.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Blob(Vec<u8>),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    List(Vec<Doc>),
    Map(Vec<(String, Doc)>),
}

impl Doc {
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Doc)>) -> Doc {
        Doc::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn empty_map() -> Doc {
        Doc::Map(Vec::new())
    }

    pub fn list(items: impl IntoIterator<Item = Doc>) -> Doc {
        Doc::List(items.into_iter().collect())
    }

    pub fn str(s: impl Into<String>) -> Doc {
        Doc::Str(s.into())
    }

    pub fn blob(b: impl Into<Vec<u8>>) -> Doc {
        Doc::Blob(b.into())
    }

    pub fn int(i: impl Into<i64>) -> Doc {
        Doc::Int(i.into())
    }

    pub fn timestamp_millis(ms: i64) -> Doc {
        Doc::Timestamp(ms)
    }

    /// Appends a field to a map; a no-op on any other variant, so builders can chain it freely.
    pub fn with(mut self, key: impl Into<String>, value: Doc) -> Doc {
        self.push(key, value);
        self
    }

    /// Appends a field only when there is a value: optional response fields are omitted, never
    /// sent as null, as Kinesis does.
    pub fn with_opt(mut self, key: impl Into<String>, value: Option<Doc>) -> Doc {
        if let Some(value) = value {
            self.push(key, value);
        }
        self
    }

    pub fn push(&mut self, key: impl Into<String>, value: Doc) {
        if let Doc::Map(fields) = self {
            fields.push((key.into(), value));
        }
    }

    /// The last value under `key` when `self` is a map (JSON parsers let a repeated key win).
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Map(fields) => fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Doc::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            Doc::Blob(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Doc]> {
        match self {
            Doc::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(String, Doc)]> {
        match self {
            Doc::Map(fields) => Some(fields),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }
}

impl From<&str> for Doc {
    fn from(s: &str) -> Doc {
        Doc::Str(s.to_string())
    }
}

impl From<String> for Doc {
    fn from(s: String) -> Doc {
        Doc::Str(s)
    }
}

impl From<bool> for Doc {
    fn from(b: bool) -> Doc {
        Doc::Bool(b)
    }
}

impl From<i64> for Doc {
    fn from(i: i64) -> Doc {
        Doc::Int(i)
    }
}

impl From<i32> for Doc {
    fn from(i: i32) -> Doc {
        Doc::Int(i.into())
    }
}

impl From<u32> for Doc {
    fn from(i: u32) -> Doc {
        Doc::Int(i.into())
    }
}

impl From<Vec<u8>> for Doc {
    fn from(b: Vec<u8>) -> Doc {
        Doc::Blob(b)
    }
}

impl From<Vec<Doc>> for Doc {
    fn from(items: Vec<Doc>) -> Doc {
        Doc::List(items)
    }
}

/// Decodes a request body. An empty body is an empty structure (some clients send nothing for
/// actions without required input); anything other than a structure at the top level is a
/// SerializationException, as is malformed input.
pub fn decode(format: Format, body: &[u8]) -> Result<Doc, KinesisError> {
    if body.is_empty() {
        return Ok(Doc::empty_map());
    }
    let doc = match format {
        Format::Json => json::decode(body)?,
        Format::Cbor => cbor::decode(body)?,
    };
    match doc {
        Doc::Map(_) => Ok(doc),
        Doc::List(_) => Err(KinesisError::serialization(
            "Start of list found where not expected",
        )),
        _ => Err(KinesisError::serialization(
            "Expected a structure at the top level of the request body",
        )),
    }
}

pub fn encode(format: Format, doc: &Doc) -> Vec<u8> {
    match format {
        Format::Json => json::encode(doc),
        Format::Cbor => cbor::encode(doc),
    }
}

/// A whole-valued float as an i64, `None` when not finite or outside i64's range.
pub(crate) fn float_to_i64(f: f64) -> Option<i64> {
    // -2^63 and 2^63 are exact f64s; the range is half-open because 2^63 itself overflows.
    (f.is_finite() && (i64::MIN as f64..i64::MAX as f64).contains(&f)).then_some(f as i64)
}

/// Civil (proleptic Gregorian, UTC) date arithmetic, shared by timestamp parsing here and the
/// request dates of SigV4; small enough that a date crate is not worth its weight.
pub(crate) mod civil {
    /// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
    pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(m);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The civil date of a day count since 1970-01-01.
    pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (if m <= 2 { y + 1 } else { y }, m, d)
    }

    pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
        match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 0,
        }
    }

    /// Epoch seconds of a validated civil date and time, `None` when a field is out of range.
    pub(crate) fn epoch_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
            return None;
        }
        // 60 admits a leap second, which POSIX time folds into the next minute.
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        Some(
            days_from_civil(y, mo, d) * 86_400
                + i64::from(h) * 3600
                + i64::from(mi) * 60
                + i64::from(s),
        )
    }

    /// Splits epoch seconds into (year, month, day, hour, minute, second).
    pub(crate) fn from_epoch_seconds(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (
            y,
            m,
            d,
            (rem / 3600) as u32,
            (rem % 3600 / 60) as u32,
            (rem % 60) as u32,
        )
    }

    /// Parses an RFC 3339 / ISO 8601 extended date-time such as `2024-01-01T00:00:00.123Z` or
    /// `2024-01-01T01:00:00+01:00` into epoch milliseconds.
    pub(crate) fn parse_rfc3339_millis(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let y = i64::from(num(0..4)?);
        let secs = epoch_seconds(
            y,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        )?;
        let mut rest = &s[19..];
        let mut millis = 0i64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            // Sub-millisecond digits are dropped: timestamps here have millisecond precision.
            for (i, c) in frac.bytes().take(3).enumerate().take(digits) {
                millis += i64::from(c - b'0') * [100, 10, 1][i];
            }
            rest = &frac[digits..];
        }
        let offset_secs = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || rb[3] != b':' || !matches!(rb[0], b'+' | b'-') {
                    return None;
                }
                let hh: i64 = rest.get(1..3)?.parse().ok()?;
                let mm: i64 = rest.get(4..6)?.parse().ok()?;
                if hh > 23 || mm > 59 {
                    return None;
                }
                let off = hh * 3600 + mm * 60;
                if rb[0] == b'-' { -off } else { off }
            }
        };
        (secs - offset_secs).checked_mul(1000)?.checked_add(millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Doc {
        Doc::map([
            ("Null", Doc::Null),
            ("True", Doc::Bool(true)),
            ("False", Doc::Bool(false)),
            ("Int", Doc::Int(-42)),
            ("Big", Doc::Int(i64::MAX)),
            ("Small", Doc::Int(i64::MIN)),
            ("Float", Doc::Float(1.5)),
            ("Str", Doc::str("héllo \"world\"\n\t\u{1}")),
            ("Empty", Doc::str("")),
            ("Blob", Doc::blob(vec![0u8, 1, 2, 254, 255])),
            ("EmptyBlob", Doc::blob(Vec::new())),
            ("Ts", Doc::Timestamp(1_700_000_000_123)),
            ("TsWhole", Doc::Timestamp(1_700_000_000_000)),
            (
                "List",
                Doc::list([Doc::Int(1), Doc::str("two"), Doc::empty_map()]),
            ),
            ("Nested", Doc::map([("Inner", Doc::list([]))])),
        ])
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type(None), Format::Json);
        assert_eq!(
            Format::from_content_type(Some("application/x-amz-json-1.1")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/json")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/x-amz-cbor-1.1")),
            Format::Cbor
        );
        assert_eq!(
            Format::from_content_type(Some("Application/X-Amz-Cbor-1.1; charset=utf-8")),
            Format::Cbor
        );
        assert_eq!(Format::Json.content_type(), "application/x-amz-json-1.1");
        assert_eq!(Format::Cbor.content_type(), "application/x-amz-cbor-1.1");
    }

    #[test]
    fn cbor_round_trips_every_variant() {
        let doc = every_variant();
        let bytes = encode(Format::Cbor, &doc);
        assert_eq!(decode(Format::Cbor, &bytes).unwrap(), doc);
    }

    #[test]
    fn json_round_trips_every_variant_up_to_json_types() {
        // JSON has no blob or timestamp type: they come back as their carriers (a base64 string
        // and a number of seconds), which the typed accessors of `Input` read back.
        let doc = every_variant();
        let bytes = encode(Format::Json, &doc);
        let back = decode(Format::Json, &bytes).unwrap();
        let expected = Doc::Map(
            doc.as_map()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Doc::Blob(b) => Doc::Str(base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            b,
                        )),
                        Doc::Timestamp(1_700_000_000_123) => Doc::Float(1_700_000_000.123),
                        Doc::Timestamp(1_700_000_000_000) => Doc::Float(1_700_000_000.0),
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        );
        assert_eq!(back, expected);
    }

    #[test]
    fn empty_body_is_an_empty_structure() {
        assert_eq!(decode(Format::Json, b"").unwrap(), Doc::empty_map());
        assert_eq!(decode(Format::Cbor, b"").unwrap(), Doc::empty_map());
    }

    #[test]
    fn top_level_must_be_a_structure() {
        for body in [&b"[]"[..], b"1", b"\"x\"", b"null"] {
            let e = decode(Format::Json, body).unwrap_err();
            assert_eq!(e.type_name, "SerializationException", "{body:?}");
            assert_eq!(e.status, 400);
        }
        // CBOR: an array of one element, and the integer 1.
        for body in [&[0x81u8, 0x01][..], &[0x01]] {
            let e = decode(Format::Cbor, body).unwrap_err();
            assert_eq!(e.type_name, "SerializationException");
        }
    }

    #[test]
    fn malformed_input_is_a_serialization_exception() {
        for body in [&b"{"[..], b"{\"a\":}", b"hello", b"{} trailing"] {
            let e = decode(Format::Json, body).unwrap_err();
            assert_eq!(e.type_name, "SerializationException", "{body:?}");
        }
        // A map announcing one pair and ending early; then a lone break byte.
        for body in [&[0xa1u8, 0x61, b'a'][..], &[0xff]] {
            let e = decode(Format::Cbor, body).unwrap_err();
            assert_eq!(e.type_name, "SerializationException", "{body:?}");
        }
    }

    #[test]
    fn map_order_is_preserved() {
        let doc = Doc::map([
            ("Zeta", Doc::Int(1)),
            ("Alpha", Doc::Int(2)),
            ("Mid", Doc::Int(3)),
        ]);
        assert_eq!(
            String::from_utf8(encode(Format::Json, &doc)).unwrap(),
            r#"{"Zeta":1,"Alpha":2,"Mid":3}"#
        );
        assert_eq!(
            decode(Format::Json, &encode(Format::Json, &doc)).unwrap(),
            doc
        );
        assert_eq!(
            decode(Format::Cbor, &encode(Format::Cbor, &doc)).unwrap(),
            doc
        );
    }

    #[test]
    fn builders() {
        let doc = Doc::empty_map()
            .with("A", Doc::from("x"))
            .with_opt("B", None)
            .with_opt("C", Some(Doc::from(3i64)));
        assert_eq!(doc, Doc::map([("A", Doc::str("x")), ("C", Doc::Int(3))]));
        assert_eq!(doc.get("A").and_then(Doc::as_str), Some("x"));
        assert_eq!(doc.get("C").and_then(Doc::as_i64), Some(3));
        assert!(doc.get("B").is_none());
    }

    #[test]
    fn civil_dates() {
        use civil::*;
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-800_000i64, -1, 0, 1, 59, 60, 11_016, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(epoch_seconds(2015, 8, 30, 12, 36, 0), Some(1_440_938_160));
        assert_eq!(from_epoch_seconds(1_440_938_160), (2015, 8, 30, 12, 36, 0));
        assert_eq!(epoch_seconds(2023, 2, 29, 0, 0, 0), None);
        assert!(epoch_seconds(2024, 2, 29, 0, 0, 0).is_some());
        assert_eq!(
            parse_rfc3339_millis("2015-08-30T12:36:00Z"),
            Some(1_440_938_160_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2015-08-30T12:36:00.5Z"),
            Some(1_440_938_160_500)
        );
        assert_eq!(
            parse_rfc3339_millis("2015-08-30T14:36:00.123456+02:00"),
            Some(1_440_938_160_123)
        );
        assert_eq!(parse_rfc3339_millis("2015-08-30"), None);
        assert_eq!(parse_rfc3339_millis("2015-13-30T12:36:00Z"), None);
        assert_eq!(parse_rfc3339_millis("2015-08-30T12:36:00"), None);
    }
}
