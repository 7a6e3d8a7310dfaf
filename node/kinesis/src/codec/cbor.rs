//! Kinesis's CBOR bodies (`application/x-amz-cbor-1.1`), as the Java SDKs and the KPL send them.
//!
//! Decoding uses ciborium, which accepts every encoding a client may choose (indefinite-length
//! strings, arrays and maps, half/single/double floats). Encoding is a few lines written directly
//! from [`Doc`]: it cannot fail, writes large blobs without an intermediate value tree and always
//! produces definite lengths, which every CBOR reader handles.

use ciborium::Value;

use super::{Doc, civil};
use crate::error::KinesisError;

/// Tag 0: an RFC 3339 date-time string.
const TAG_DATETIME_STRING: u64 = 0;
/// Tag 1: an epoch-based date-time. AWS's CBOR protocol puts integer epoch *milliseconds* under
/// it (not seconds, as RFC 8949 has it); a float is read as seconds, the standard meaning.
const TAG_EPOCH: u64 = 1;

pub(super) fn decode(body: &[u8]) -> Result<Doc, KinesisError> {
    let mut reader = body;
    let value: Value = ciborium::de::from_reader(&mut reader).map_err(|e| {
        KinesisError::serialization(format!("The request body is not valid CBOR: {e}"))
    })?;
    if !reader.is_empty() {
        return Err(KinesisError::serialization(
            "The request body is not valid CBOR: unexpected data after the top-level item",
        ));
    }
    from_value(value)
}

fn from_value(value: Value) -> Result<Doc, KinesisError> {
    Ok(match value {
        Value::Null => Doc::Null,
        Value::Bool(b) => Doc::Bool(b),
        Value::Integer(i) => {
            let i = i128::from(i);
            // Beyond i64 only a float can hold it; the typed accessors then report it out of range.
            i64::try_from(i).map_or(Doc::Float(i as f64), Doc::Int)
        }
        Value::Float(f) => Doc::Float(f),
        Value::Text(s) => Doc::Str(s),
        Value::Bytes(b) => Doc::Blob(b),
        Value::Array(items) => Doc::List(
            items
                .into_iter()
                .map(from_value)
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(pairs) => Doc::Map(
            pairs
                .into_iter()
                .map(|(k, v)| match k {
                    Value::Text(k) => Ok((k, from_value(v)?)),
                    _ => Err(KinesisError::serialization(
                        "The request body is not valid: a map key is not a text string",
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Value::Tag(TAG_EPOCH, inner) => Doc::Timestamp(epoch_millis(&inner)?),
        Value::Tag(TAG_DATETIME_STRING, inner) => match *inner {
            Value::Text(s) => Doc::Timestamp(civil::parse_rfc3339_millis(&s).ok_or_else(|| {
                KinesisError::serialization(format!("'{s}' is not a valid RFC 3339 date-time"))
            })?),
            _ => {
                return Err(KinesisError::serialization(
                    "A date-time string (tag 0) must hold a text string",
                ));
            }
        },
        // Other tags add meaning this protocol does not use; the tagged item stands for itself.
        Value::Tag(_, inner) => from_value(*inner)?,
        other => {
            return Err(KinesisError::serialization(format!(
                "Unsupported CBOR item: {other:?}"
            )));
        }
    })
}

fn epoch_millis(inner: &Value) -> Result<i64, KinesisError> {
    let out_of_range = || KinesisError::serialization("The timestamp is out of range");
    match inner {
        Value::Integer(i) => i64::try_from(i128::from(*i)).map_err(|_| out_of_range()),
        Value::Float(secs) => float_seconds_to_millis(*secs).ok_or_else(out_of_range),
        _ => Err(KinesisError::serialization(
            "An epoch date-time (tag 1) must hold a number",
        )),
    }
}

/// Epoch seconds as a float to whole milliseconds, `None` when not finite or out of range.
pub(super) fn float_seconds_to_millis(secs: f64) -> Option<i64> {
    super::float_to_i64((secs * 1000.0).round())
}

pub(super) fn encode(doc: &Doc) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_doc(&mut out, doc);
    out
}

const MAJOR_UINT: u8 = 0;
const MAJOR_NEGINT: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.push(m | 24);
        out.push(n);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(m | 25);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(m | 26);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_head(out, MAJOR_UINT, i as u64);
    } else {
        // CBOR stores a negative n as -1 - n, which is the bitwise complement.
        write_head(out, MAJOR_NEGINT, !i as u64);
    }
}

fn write_doc(out: &mut Vec<u8>, doc: &Doc) {
    match doc {
        Doc::Null => out.push(0xf6),
        Doc::Bool(false) => out.push(0xf4),
        Doc::Bool(true) => out.push(0xf5),
        Doc::Int(i) => write_int(out, *i),
        Doc::Float(f) => {
            out.push(0xfb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Doc::Str(s) => {
            write_head(out, MAJOR_TEXT, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Doc::Blob(b) => {
            write_head(out, MAJOR_BYTES, b.len() as u64);
            out.extend_from_slice(b);
        }
        Doc::Timestamp(ms) => {
            write_head(out, MAJOR_TAG, TAG_EPOCH);
            write_int(out, *ms);
        }
        Doc::List(items) => {
            write_head(out, MAJOR_ARRAY, items.len() as u64);
            for item in items {
                write_doc(out, item);
            }
        }
        Doc::Map(fields) => {
            write_head(out, MAJOR_MAP, fields.len() as u64);
            for (k, v) in fields {
                write_head(out, MAJOR_TEXT, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                write_doc(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_ciborium(bytes: &[u8]) -> Value {
        ciborium::de::from_reader(bytes).unwrap()
    }

    fn cbor_of(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    }

    #[test]
    fn timestamps_encode_as_tag_1_integer_millis() {
        let bytes = encode(&Doc::Timestamp(1_700_000_000_123));
        assert_eq!(bytes[0], 0xc1, "tag 1");
        assert_eq!(
            via_ciborium(&bytes),
            Value::Tag(1, Box::new(Value::Integer(1_700_000_000_123i64.into())))
        );
    }

    #[test]
    fn tag_1_decodes_integers_as_millis_and_floats_as_seconds() {
        let map = |v: Value| {
            cbor_of(&Value::Map(vec![(
                Value::Text("T".into()),
                Value::Tag(1, Box::new(v)),
            )]))
        };
        let doc = decode(&map(Value::Integer(1_700_000_000_123i64.into()))).unwrap();
        assert_eq!(doc.get("T"), Some(&Doc::Timestamp(1_700_000_000_123)));
        let doc = decode(&map(Value::Float(1_700_000_000.123))).unwrap();
        assert_eq!(doc.get("T"), Some(&Doc::Timestamp(1_700_000_000_123)));
        let e = decode(&map(Value::Text("x".into()))).unwrap_err();
        assert_eq!(e.type_name, "SerializationException");
    }

    #[test]
    fn tag_0_strings_decode_as_timestamps() {
        let bytes = cbor_of(&Value::Map(vec![(
            Value::Text("T".into()),
            Value::Tag(0, Box::new(Value::Text("2015-08-30T12:36:00.250Z".into()))),
        )]));
        assert_eq!(
            decode(&bytes).unwrap().get("T"),
            Some(&Doc::Timestamp(1_440_938_160_250))
        );
    }

    #[test]
    fn indefinite_lengths_decode() {
        let mut b = vec![0xbf]; // map, indefinite
        // key "StreamName" as an indefinite text of two chunks
        b.extend_from_slice(&[0x7f, 0x66]);
        b.extend_from_slice(b"Stream");
        b.push(0x64);
        b.extend_from_slice(b"Name");
        b.push(0xff);
        b.push(0x63);
        b.extend_from_slice(b"abc");
        // key "Data": indefinite bytes of two chunks
        b.push(0x64);
        b.extend_from_slice(b"Data");
        b.extend_from_slice(&[0x5f, 0x42, 1, 2, 0x41, 3, 0xff]);
        // key "L": indefinite array of [1, {indefinite map "k": -2}]
        b.extend_from_slice(&[0x61, b'L', 0x9f, 0x01, 0xbf, 0x61, b'k', 0x21, 0xff, 0xff]);
        b.push(0xff);
        let doc = decode(&b).unwrap();
        assert_eq!(
            doc,
            Doc::map([
                ("StreamName", Doc::str("abc")),
                ("Data", Doc::blob(vec![1u8, 2, 3])),
                (
                    "L",
                    Doc::list([Doc::Int(1), Doc::map([("k", Doc::Int(-2))])])
                ),
            ])
        );
    }

    #[test]
    fn encoding_matches_ciborium_for_every_size_class() {
        for i in [
            0i64,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -24,
            -25,
            -256,
            -257,
            i64::MIN,
        ] {
            assert_eq!(
                via_ciborium(&encode(&Doc::Int(i))),
                Value::Integer(i.into()),
                "{i}"
            );
        }
        for len in [0usize, 23, 24, 255, 256, 70_000] {
            let s = "x".repeat(len);
            assert_eq!(via_ciborium(&encode(&Doc::str(s.clone()))), Value::Text(s));
            let b = vec![7u8; len];
            assert_eq!(
                via_ciborium(&encode(&Doc::blob(b.clone()))),
                Value::Bytes(b)
            );
        }
        assert_eq!(via_ciborium(&encode(&Doc::Float(-2.5))), Value::Float(-2.5));
        assert_eq!(via_ciborium(&encode(&Doc::Null)), Value::Null);
        assert_eq!(via_ciborium(&encode(&Doc::Bool(true))), Value::Bool(true));
    }

    #[test]
    fn maps_are_definite_length() {
        let bytes = encode(&Doc::map([("a", Doc::Int(1)), ("b", Doc::Int(2))]));
        assert_eq!(bytes[0], 0xa2);
        assert_eq!(encode(&Doc::empty_map()), vec![0xa0]);
    }

    #[test]
    fn non_text_keys_are_rejected() {
        let bytes = cbor_of(&Value::Map(vec![(Value::Integer(1.into()), Value::Null)]));
        assert_eq!(
            decode(&bytes).unwrap_err().type_name,
            "SerializationException"
        );
    }

    #[test]
    fn trailing_data_is_rejected() {
        assert!(decode(&[0xa0, 0x00]).is_err());
    }

    #[test]
    fn float_seconds_conversion_bounds() {
        assert_eq!(float_seconds_to_millis(1.5), Some(1500));
        assert_eq!(float_seconds_to_millis(-0.001), Some(-1));
        assert_eq!(float_seconds_to_millis(f64::NAN), None);
        assert_eq!(float_seconds_to_millis(1e300), None);
    }
}
