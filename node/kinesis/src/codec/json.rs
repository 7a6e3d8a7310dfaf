//! AWS JSON 1.1 bodies.
//!
//! Decoding goes straight from serde_json's tokens to [`Doc`] so map order survives (serde_json's
//! own `Value` sorts keys). Encoding is written by hand because timestamps must come out as plain
//! decimals of epoch seconds (`1700000000.123`), a form no f64 formatter guarantees.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::Doc;
use crate::error::KinesisError;

pub(super) fn decode(body: &[u8]) -> Result<Doc, KinesisError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let doc = JsonDoc::deserialize(&mut de)
        .and_then(|d| de.end().map(|()| d.0))
        .map_err(|e| {
            KinesisError::serialization(format!("The request body is not valid JSON: {e}"))
        })?;
    Ok(doc)
}

struct JsonDoc(Doc);

impl<'de> Deserialize<'de> for JsonDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor).map(JsonDoc)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Doc, E> {
        Ok(Doc::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Doc, E> {
        // Beyond i64 only a float can hold it; the typed accessors then report it out of range.
        Ok(i64::try_from(v).map_or(Doc::Float(v as f64), Doc::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Doc, E> {
        Ok(Doc::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Doc, E> {
        Ok(Doc::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Doc, E> {
        Ok(Doc::Str(v))
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(JsonDoc(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((k, JsonDoc(v))) = map.next_entry::<String, JsonDoc>()? {
            fields.push((k, v));
        }
        Ok(Doc::Map(fields))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Doc, E> {
        Ok(Doc::Blob(v.to_vec()))
    }
}

pub(super) fn encode(doc: &Doc) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_doc(&mut out, doc);
    out
}

fn write_doc(out: &mut Vec<u8>, doc: &Doc) {
    match doc {
        Doc::Null => out.extend_from_slice(b"null"),
        Doc::Bool(true) => out.extend_from_slice(b"true"),
        Doc::Bool(false) => out.extend_from_slice(b"false"),
        Doc::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Doc::Float(f) => write_float(out, *f),
        Doc::Str(s) => write_str(out, s),
        Doc::Blob(b) => {
            out.push(b'"');
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(b)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Doc::Timestamp(ms) => write_epoch_seconds(out, *ms),
        Doc::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_doc(out, item);
            }
            out.push(b']');
        }
        Doc::Map(fields) => {
            out.push(b'{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_doc(out, v);
            }
            out.push(b'}');
        }
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        // JSON has no NaN or infinity.
        out.extend_from_slice(b"null");
        return;
    }
    // Rust's Display never uses exponent notation and is the shortest round-tripping form.
    let s = f.to_string();
    out.extend_from_slice(s.as_bytes());
    if !s.contains('.') {
        // Keep it a float on the way back in.
        out.extend_from_slice(b".0");
    }
}

/// Epoch milliseconds as decimal epoch seconds, e.g. `1700000000.123`, `1700000000.5`,
/// `1700000000.0`, `-0.001`.
fn write_epoch_seconds(out: &mut Vec<u8>, ms: i64) {
    if ms < 0 {
        out.push(b'-');
    }
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    out.extend_from_slice(secs.to_string().as_bytes());
    out.push(b'.');
    let frac = format!("{frac:03}");
    let trimmed = frac.trim_end_matches('0');
    out.extend_from_slice(if trimmed.is_empty() { "0" } else { trimmed }.as_bytes());
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> String {
        String::from_utf8(encode(&Doc::Timestamp(ms))).unwrap()
    }

    #[test]
    fn timestamps_are_plain_decimal_epoch_seconds() {
        assert_eq!(ts(1_700_000_000_123), "1700000000.123");
        assert_eq!(ts(1_700_000_000_000), "1700000000.0");
        assert_eq!(ts(1_700_000_000_500), "1700000000.5");
        assert_eq!(ts(1_700_000_000_050), "1700000000.05");
        assert_eq!(ts(1_700_000_000_001), "1700000000.001");
        assert_eq!(ts(0), "0.0");
        assert_eq!(ts(999), "0.999");
        assert_eq!(ts(-1), "-0.001");
        assert_eq!(ts(-1_500), "-1.5");
        assert_eq!(ts(253_402_300_799_999), "253402300799.999");
        for ms in [
            1_700_000_000_123i64,
            1,
            10_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            let s = ts(ms);
            assert!(!s.contains(['e', 'E']), "{s}");
        }
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn timestamps_parse_back_to_the_same_number() {
        for ms in [1_700_000_000_123i64, 1_700_000_000_000, 1_440_938_160_007] {
            let text = ts(ms);
            let secs: f64 = text.parse().unwrap();
            assert_eq!((secs * 1000.0).round() as i64, ms);
        }
    }

    #[test]
    fn floats_stay_floats_without_exponents() {
        let out = |f: f64| String::from_utf8(encode(&Doc::Float(f))).unwrap();
        assert_eq!(out(1.0), "1.0");
        assert_eq!(out(1.5), "1.5");
        assert_eq!(out(-0.25), "-0.25");
        assert_eq!(out(1e20), "100000000000000000000.0");
        assert_eq!(out(f64::NAN), "null");
        assert_eq!(decode(out(1e20).as_bytes()).unwrap(), Doc::Float(1e20));
    }

    #[test]
    fn strings_are_escaped() {
        let s = "a\"b\\c\nd\u{0}e\u{1f}f\u{7f}é😀";
        let out = encode(&Doc::str(s));
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0000e\\u001ff\u{7f}é😀\""
        );
    }

    #[test]
    fn blobs_are_padded_standard_base64() {
        let out = encode(&Doc::blob(vec![0xfbu8, 0xff, 0xbf, 0x01]));
        assert_eq!(String::from_utf8(out).unwrap(), "\"+/+/AQ==\"");
    }

    #[test]
    fn numbers_decode_by_kind() {
        let doc = decode(br#"{"a":1,"b":-1,"c":1.5,"d":18446744073709551615,"e":1e3}"#).unwrap();
        assert_eq!(doc.get("a"), Some(&Doc::Int(1)));
        assert_eq!(doc.get("b"), Some(&Doc::Int(-1)));
        assert_eq!(doc.get("c"), Some(&Doc::Float(1.5)));
        assert_eq!(
            doc.get("d"),
            Some(&Doc::Float(18_446_744_073_709_551_615.0))
        );
        assert_eq!(doc.get("e"), Some(&Doc::Float(1000.0)));
    }
}
