//! Typed, AWS-faithful access to a decoded request.
//!
//! Kinesis answers a field of the wrong type with a `SerializationException` and a missing or
//! out-of-bounds field with a `ValidationException` whose text names the member in lowerCamelCase
//! (`Value null at 'streamName' failed to satisfy constraint: Member must not be null`). SDKs and
//! tests match on these, so every action reads its input through here rather than from a raw
//! [`Doc`].
//!
//! A JSON `null` counts as absent, as it does for Kinesis.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use super::{Doc, Format, cbor, civil};
use crate::error::KinesisError;

/// Standard alphabet; padding optional because some hand-rolled clients omit it.
const BLOB_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// AWS reports at most this many violations in one message.
const MAX_VIOLATIONS: usize = 10;

/// A request structure (the top level, or a nested structure / list element) with its format and
/// its member path for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    format: Format,
    fields: Vec<(String, Doc)>,
    /// Prefix of member names in messages: empty at the top level, `streamModeDetails.` in a
    /// nested structure, `records.3.member.` in the third element of a list of structures.
    path: String,
}

impl Input {
    /// Wraps a decoded top-level document, which [`super::decode`] guarantees is a map.
    pub fn new(format: Format, doc: Doc) -> Result<Input, KinesisError> {
        match doc {
            Doc::Map(fields) => Ok(Input {
                format,
                fields,
                path: String::new(),
            }),
            other => Err(type_error(&other, "a Structure")),
        }
    }

    pub fn decode(format: Format, body: &[u8]) -> Result<Input, KinesisError> {
        Input::new(format, super::decode(format, body)?)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn fields(&self) -> &[(String, Doc)] {
        &self.fields
    }

    /// The value under `key`, `None` when absent or null. A repeated key: the last one wins.
    pub fn get(&self, key: &str) -> Option<&Doc> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// Removes `key` (every occurrence) and returns its value, `None` when absent or null.
    pub fn take(&mut self, key: &str) -> Option<Doc> {
        let mut taken = None;
        self.fields.retain_mut(|(k, v)| {
            if k == key {
                taken = Some(std::mem::replace(v, Doc::Null));
                false
            } else {
                true
            }
        });
        taken.filter(|v| !v.is_null())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The member name AWS uses in messages for `key`: lowerCamelCase, with the path of the
    /// enclosing structure (`records.1.member.partitionKey`).
    pub fn member(&self, key: &str) -> String {
        format!("{}{}", self.path, lower_first(key))
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, KinesisError> {
        value.ok_or_else(|| validation_null(&self.member(key)))
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>, KinesisError> {
        self.get(key).map(to_string).transpose()
    }

    pub fn req_str(&self, key: &str) -> Result<String, KinesisError> {
        let v = self.opt_str(key)?;
        self.required(key, v)
    }

    /// A Long member. A fractional number is floored rather than refused.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, KinesisError> {
        self.get(key).map(|v| to_i64(v, "a Long")).transpose()
    }

    pub fn req_i64(&self, key: &str) -> Result<i64, KinesisError> {
        let v = self.opt_i64(key)?;
        self.required(key, v)
    }

    /// An Integer member; outside the 32-bit range is a SerializationException.
    pub fn opt_i32(&self, key: &str) -> Result<Option<i32>, KinesisError> {
        self.get(key).map(to_i32).transpose()
    }

    pub fn req_i32(&self, key: &str) -> Result<i32, KinesisError> {
        let v = self.opt_i32(key)?;
        self.required(key, v)
    }

    /// An Integer member that cannot be negative: a negative value is the ValidationException
    /// "Member must have value greater than or equal to 0"; actions check tighter minimums
    /// (e.g. 1) themselves with [`validation`].
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, KinesisError> {
        match self.opt_i32(key)? {
            None => Ok(None),
            Some(i) => u32::try_from(i).map(Some).map_err(|_| {
                validation(
                    &self.member(key),
                    &i.to_string(),
                    "Member must have value greater than or equal to 0",
                )
            }),
        }
    }

    pub fn req_u32(&self, key: &str) -> Result<u32, KinesisError> {
        let v = self.opt_u32(key)?;
        self.required(key, v)
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, KinesisError> {
        self.get(key)
            .map(|v| match v {
                Doc::Bool(b) => Ok(*b),
                other => Err(type_error(other, "a Boolean")),
            })
            .transpose()
    }

    pub fn req_bool(&self, key: &str) -> Result<bool, KinesisError> {
        let v = self.opt_bool(key)?;
        self.required(key, v)
    }

    /// A Blob member: base64 text in JSON, a byte string in CBOR (where base64 text is accepted
    /// too, for clients that encode blobs the JSON way whatever the format).
    pub fn opt_blob(&self, key: &str) -> Result<Option<Vec<u8>>, KinesisError> {
        self.get(key).map(to_blob).transpose()
    }

    /// [`Input::opt_blob`] that moves a CBOR byte string out instead of copying it.
    pub fn take_blob(&mut self, key: &str) -> Result<Option<Vec<u8>>, KinesisError> {
        match self.take(key) {
            Some(Doc::Blob(b)) => Ok(Some(b)),
            Some(other) => to_blob(&other).map(Some),
            None => Ok(None),
        }
    }

    pub fn req_blob(&self, key: &str) -> Result<Vec<u8>, KinesisError> {
        let v = self.opt_blob(key)?;
        self.required(key, v)
    }

    /// A Timestamp member as epoch milliseconds. JSON: a number of epoch seconds (integer or
    /// fractional), or a string holding one or an RFC 3339 date-time. CBOR: a tagged timestamp,
    /// an integer of epoch milliseconds or a float of epoch seconds (the tag-1 rules), or a
    /// string as in JSON.
    pub fn opt_timestamp(&self, key: &str) -> Result<Option<i64>, KinesisError> {
        let format = self.format;
        self.get(key).map(|v| to_timestamp(v, format)).transpose()
    }

    pub fn req_timestamp(&self, key: &str) -> Result<i64, KinesisError> {
        let v = self.opt_timestamp(key)?;
        self.required(key, v)
    }

    /// A list member's raw items.
    pub fn opt_list(&self, key: &str) -> Result<Option<Vec<Doc>>, KinesisError> {
        self.get(key)
            .map(|v| match v {
                Doc::List(items) => Ok(items.clone()),
                other => Err(list_expected(other)),
            })
            .transpose()
    }

    pub fn req_list(&self, key: &str) -> Result<Vec<Doc>, KinesisError> {
        let v = self.opt_list(key)?;
        self.required(key, v)
    }

    /// A list of structures (PutRecords' `Records`), each item an [`Input`] whose messages name
    /// it `records.<n>.member.<field>` with n counted from 1.
    pub fn opt_struct_list(&self, key: &str) -> Result<Option<Vec<Input>>, KinesisError> {
        self.get(key)
            .cloned()
            .map(|v| self.struct_list(key, v))
            .transpose()
    }

    /// [`Input::opt_struct_list`] that moves the items out instead of copying them: PutRecords
    /// carries up to 5 MiB of record data that should be copied no more than necessary.
    pub fn take_struct_list(&mut self, key: &str) -> Result<Option<Vec<Input>>, KinesisError> {
        self.take(key).map(|v| self.struct_list(key, v)).transpose()
    }

    fn struct_list(&self, key: &str, v: Doc) -> Result<Vec<Input>, KinesisError> {
        let Doc::List(items) = v else {
            return Err(list_expected(&v));
        };
        let base = self.member(key);
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{base}.{}.member", i + 1);
                match item {
                    Doc::Map(fields) => Ok(Input {
                        format: self.format,
                        fields,
                        path: format!("{path}."),
                    }),
                    Doc::Null => Err(validation_null(&path)),
                    Doc::List(_) => Err(type_error(&item, "a Structure")),
                    _ => Err(KinesisError::serialization("Expected null")),
                }
            })
            .collect()
    }

    pub fn req_struct_list(&self, key: &str) -> Result<Vec<Input>, KinesisError> {
        let v = self.opt_struct_list(key)?;
        self.required(key, v)
    }

    /// A nested structure member (`StreamModeDetails`, `ShardFilter`, `StartingPosition`).
    pub fn opt_map(&self, key: &str) -> Result<Option<Input>, KinesisError> {
        self.get(key)
            .map(|v| match v {
                Doc::Map(fields) => Ok(Input {
                    format: self.format,
                    fields: fields.clone(),
                    path: format!("{}.", self.member(key)),
                }),
                other => Err(map_expected(other)),
            })
            .transpose()
    }

    pub fn req_map(&self, key: &str) -> Result<Input, KinesisError> {
        let v = self.opt_map(key)?;
        self.required(key, v)
    }

    /// A map of strings to strings (`Tags`), in request order. A null value reads as empty.
    pub fn opt_string_map(&self, key: &str) -> Result<Option<Vec<(String, String)>>, KinesisError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Doc::Map(fields) = v else {
            return Err(map_expected(v));
        };
        fields
            .iter()
            .map(|(k, v)| match v {
                Doc::Null => Ok((k.clone(), String::new())),
                other => Ok((k.clone(), to_string(other)?)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn req_string_map(&self, key: &str) -> Result<Vec<(String, String)>, KinesisError> {
        let v = self.opt_string_map(key)?;
        self.required(key, v)
    }

    /// A list of strings (`TagKeys`, `ShardLevelMetrics`).
    pub fn opt_string_list(&self, key: &str) -> Result<Option<Vec<String>>, KinesisError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Doc::List(items) = v else {
            return Err(list_expected(v));
        };
        let base = self.member(key);
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Doc::Null => Err(validation_null(&format!("{base}.{}.member", i + 1))),
                other => to_string(other),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn req_string_list(&self, key: &str) -> Result<Vec<String>, KinesisError> {
        let v = self.opt_string_list(key)?;
        self.required(key, v)
    }
}

/// `Value '<value>' at '<member>' failed to satisfy constraint: <constraint>` as a
/// one-violation ValidationException.
pub fn validation(member: &str, value: &str, constraint: &str) -> KinesisError {
    let mut v = Violations::new();
    v.push(member, value, constraint);
    v.into_error()
        .unwrap_or_else(|| KinesisError::validation(String::new()))
}

/// The ValidationException for a required member that is absent.
pub fn validation_null(member: &str) -> KinesisError {
    let mut v = Violations::new();
    v.push_null(member);
    v.into_error()
        .unwrap_or_else(|| KinesisError::validation(String::new()))
}

/// Collects constraint violations so one ValidationException reports them all, as AWS does:
/// `2 validation errors detected: Value ... ; Value ...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    items: Vec<String>,
}

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    pub fn push(&mut self, member: &str, value: &str, constraint: &str) {
        if self.items.len() < MAX_VIOLATIONS {
            self.items.push(format!(
                "Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
            ));
        }
    }

    pub fn push_null(&mut self, member: &str) {
        if self.items.len() < MAX_VIOLATIONS {
            self.items.push(format!(
                "Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The ValidationException reporting every violation, or `None` when there are none.
    pub fn into_error(self) -> Option<KinesisError> {
        let n = self.items.len();
        (n > 0).then(|| {
            KinesisError::validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.items.join("; ")
            ))
        })
    }

    pub fn into_result(self) -> Result<(), KinesisError> {
        self.into_error().map_or(Ok(()), Err)
    }
}

fn lower_first(key: &str) -> String {
    let mut chars = key.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The SerializationException for a value of the wrong JSON/CBOR type, in the wording of
/// Kinesis's deserializer. `target` carries its article: "a String", "an Integer".
fn type_error(found: &Doc, target: &str) -> KinesisError {
    let kind = match found {
        Doc::Map(_) => {
            return KinesisError::serialization(
                "Start of structure or map found where not expected.",
            );
        }
        Doc::List(_) => {
            return KinesisError::serialization("Start of list found where not expected");
        }
        Doc::Int(_) | Doc::Float(_) => "NUMBER_VALUE",
        Doc::Str(_) => "STRING_VALUE",
        Doc::Bool(_) => "BOOLEAN_VALUE",
        Doc::Blob(_) => "BLOB_VALUE",
        Doc::Timestamp(_) => "TIMESTAMP_VALUE",
        Doc::Null => "NULL_VALUE",
    };
    KinesisError::serialization(format!("{kind} can not be converted to {target}"))
}

fn list_expected(found: &Doc) -> KinesisError {
    match found {
        Doc::Map(_) => type_error(found, "a List"),
        _ => KinesisError::serialization("Expected list or null"),
    }
}

fn map_expected(found: &Doc) -> KinesisError {
    match found {
        Doc::List(_) => type_error(found, "a Map"),
        _ => KinesisError::serialization("Expected map or null"),
    }
}

fn to_string(v: &Doc) -> Result<String, KinesisError> {
    match v {
        Doc::Str(s) => Ok(s.clone()),
        other => Err(type_error(other, "a String")),
    }
}

fn to_i64(v: &Doc, target: &str) -> Result<i64, KinesisError> {
    match v {
        Doc::Int(i) => Ok(*i),
        Doc::Float(f) => super::float_to_i64(f.floor()).ok_or_else(|| {
            KinesisError::serialization(format!("Numeric value ({f}) out of range of long"))
        }),
        other => Err(type_error(other, target)),
    }
}

fn to_i32(v: &Doc) -> Result<i32, KinesisError> {
    let i = to_i64(v, "an Integer")?;
    i32::try_from(i).map_err(|_| {
        KinesisError::serialization(format!("Numeric value ({i}) out of range of int"))
    })
}

fn to_blob(v: &Doc) -> Result<Vec<u8>, KinesisError> {
    match v {
        Doc::Blob(b) => Ok(b.clone()),
        Doc::Str(s) => BLOB_BASE64.decode(s).map_err(|e| {
            KinesisError::serialization(format!(
                "'{}' can not be converted to a Blob: {e}",
                abbreviate(s)
            ))
        }),
        other => Err(type_error(other, "a Blob")),
    }
}

fn to_timestamp(v: &Doc, format: Format) -> Result<i64, KinesisError> {
    let out_of_range = || KinesisError::serialization("The timestamp is out of range");
    match (v, format) {
        (Doc::Timestamp(ms), _) => Ok(*ms),
        (Doc::Int(secs), Format::Json) => secs.checked_mul(1000).ok_or_else(out_of_range),
        (Doc::Int(ms), Format::Cbor) => Ok(*ms),
        (Doc::Float(secs), _) => cbor::float_seconds_to_millis(*secs).ok_or_else(out_of_range),
        (Doc::Str(s), _) => {
            let trimmed = s.trim();
            if let Ok(secs) = trimmed.parse::<f64>() {
                return cbor::float_seconds_to_millis(secs).ok_or_else(out_of_range);
            }
            civil::parse_rfc3339_millis(trimmed).ok_or_else(|| {
                KinesisError::serialization(format!(
                    "'{}' can not be converted to a Timestamp",
                    abbreviate(s)
                ))
            })
        }
        (other, _) => Err(type_error(other, "a Timestamp")),
    }
}

/// Echoing a 1 MiB field back in an error helps nobody.
fn abbreviate(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Input {
        Input::decode(Format::Json, body.as_bytes()).unwrap()
    }

    fn cbor(doc: &Doc) -> Input {
        Input::decode(Format::Cbor, &super::super::encode(Format::Cbor, doc)).unwrap()
    }

    fn assert_serialization(r: Result<impl std::fmt::Debug, KinesisError>, text: &str) {
        let e = r.unwrap_err();
        assert_eq!(e.type_name, "SerializationException");
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains(text),
            "{:?} does not contain {text:?}",
            e.message
        );
    }

    #[test]
    fn strings() {
        let i = json(r#"{"StreamName":"s1","N":5,"M":{},"L":[],"Z":null}"#);
        assert_eq!(i.opt_str("StreamName").unwrap().as_deref(), Some("s1"));
        assert_eq!(i.req_str("StreamName").unwrap(), "s1");
        assert_eq!(i.opt_str("Missing").unwrap(), None);
        assert_eq!(i.opt_str("Z").unwrap(), None, "null is absent");
        assert_serialization(
            i.opt_str("N"),
            "NUMBER_VALUE can not be converted to a String",
        );
        assert_serialization(
            i.opt_str("M"),
            "Start of structure or map found where not expected",
        );
        assert_serialization(i.opt_str("L"), "Start of list found where not expected");
    }

    #[test]
    fn missing_required_members_are_validation_errors() {
        let i = json("{}");
        let e = i.req_str("StreamName").unwrap_err();
        assert_eq!(e.type_name, "ValidationException");
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'streamName' failed to satisfy \
             constraint: Member must not be null"
        );
        assert_eq!(
            i.req_str("StreamARN").unwrap_err().message,
            "1 validation error detected: Value null at 'streamARN' failed to satisfy \
             constraint: Member must not be null"
        );
        for e in [
            i.req_i64("X").unwrap_err(),
            i.req_i32("X").unwrap_err(),
            i.req_u32("X").unwrap_err(),
            i.req_bool("X").unwrap_err(),
            i.req_blob("X").unwrap_err(),
            i.req_timestamp("X").unwrap_err(),
            i.req_list("X").unwrap_err(),
            i.req_struct_list("X").unwrap_err(),
            i.req_map("X").unwrap_err(),
            i.req_string_map("X").unwrap_err(),
            i.req_string_list("X").unwrap_err(),
        ] {
            assert_eq!(e.type_name, "ValidationException");
            assert!(e.message.contains("Value null at 'x'"), "{}", e.message);
        }
    }

    #[test]
    fn integers() {
        let i = json(r#"{"A":5,"B":-3,"C":2.9,"D":"5","E":true,"F":3000000000,"G":1e30,"H":-2.5}"#);
        assert_eq!(i.opt_i64("A").unwrap(), Some(5));
        assert_eq!(i.opt_i32("A").unwrap(), Some(5));
        assert_eq!(i.opt_u32("A").unwrap(), Some(5));
        assert_eq!(i.opt_i64("C").unwrap(), Some(2));
        assert_eq!(i.opt_i64("H").unwrap(), Some(-3));
        assert_eq!(i.opt_i64("F").unwrap(), Some(3_000_000_000));
        assert_serialization(
            i.opt_i64("D"),
            "STRING_VALUE can not be converted to a Long",
        );
        assert_serialization(
            i.opt_i32("D"),
            "STRING_VALUE can not be converted to an Integer",
        );
        assert_serialization(
            i.opt_i64("E"),
            "BOOLEAN_VALUE can not be converted to a Long",
        );
        assert_serialization(i.opt_i32("F"), "out of range of int");
        assert_serialization(i.opt_u32("F"), "out of range of int");
        assert_serialization(i.opt_i64("G"), "out of range of long");
        let e = i.opt_u32("B").unwrap_err();
        assert_eq!(e.type_name, "ValidationException");
        assert_eq!(
            e.message,
            "1 validation error detected: Value '-3' at 'b' failed to satisfy constraint: \
             Member must have value greater than or equal to 0"
        );
    }

    #[test]
    fn booleans() {
        let i = json(r#"{"A":true,"B":1,"C":"true"}"#);
        assert_eq!(i.opt_bool("A").unwrap(), Some(true));
        assert_serialization(
            i.opt_bool("B"),
            "NUMBER_VALUE can not be converted to a Boolean",
        );
        assert_serialization(
            i.opt_bool("C"),
            "STRING_VALUE can not be converted to a Boolean",
        );
    }

    #[test]
    fn blobs() {
        let i = json(r#"{"Data":"aGVsbG8=","NoPad":"aGVsbG8","Bad":"a$b=","Num":1,"Empty":""}"#);
        assert_eq!(i.opt_blob("Data").unwrap().unwrap(), b"hello");
        assert_eq!(i.opt_blob("NoPad").unwrap().unwrap(), b"hello");
        assert_eq!(i.opt_blob("Empty").unwrap().unwrap(), b"");
        assert_serialization(i.opt_blob("Bad"), "'a$b=' can not be converted to a Blob");
        assert_serialization(
            i.opt_blob("Num"),
            "NUMBER_VALUE can not be converted to a Blob",
        );

        let c = cbor(&Doc::map([
            ("Data", Doc::blob(b"\x00\xffraw".to_vec())),
            ("Text", Doc::str("aGVsbG8=")),
        ]));
        assert_eq!(c.opt_blob("Data").unwrap().unwrap(), b"\x00\xffraw");
        assert_eq!(c.opt_blob("Text").unwrap().unwrap(), b"hello");
    }

    #[test]
    fn long_bad_blobs_are_abbreviated() {
        let body = format!(r#"{{"Data":"{}!"}}"#, "A".repeat(10_000));
        let e = json(&body).opt_blob("Data").unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }

    #[test]
    fn timestamps() {
        let i = json(
            r#"{"I":1700000000,"F":1700000000.123,"S":"1700000000.5","R":"2023-11-14T22:13:20.250Z","B":"soon","T":true}"#,
        );
        assert_eq!(i.opt_timestamp("I").unwrap(), Some(1_700_000_000_000));
        assert_eq!(i.opt_timestamp("F").unwrap(), Some(1_700_000_000_123));
        assert_eq!(i.opt_timestamp("S").unwrap(), Some(1_700_000_000_500));
        assert_eq!(i.opt_timestamp("R").unwrap(), Some(1_700_000_000_250));
        assert_serialization(
            i.opt_timestamp("B"),
            "'soon' can not be converted to a Timestamp",
        );
        assert_serialization(
            i.opt_timestamp("T"),
            "BOOLEAN_VALUE can not be converted to a Timestamp",
        );

        let c = cbor(&Doc::map([
            ("T", Doc::Timestamp(1_700_000_000_123)),
            ("I", Doc::Int(1_700_000_000_123)),
            ("F", Doc::Float(1_700_000_000.5)),
        ]));
        assert_eq!(c.opt_timestamp("T").unwrap(), Some(1_700_000_000_123));
        assert_eq!(c.opt_timestamp("I").unwrap(), Some(1_700_000_000_123));
        assert_eq!(c.opt_timestamp("F").unwrap(), Some(1_700_000_000_500));
    }

    #[test]
    fn nested_structures_name_their_members_with_a_path() {
        let i = json(
            r#"{"StreamModeDetails":{"StreamMode":"ON_DEMAND"},"Empty":{},"Records":[{"Data":"AA==","PartitionKey":"k"},{"Data":"AA=="}],"NotList":{"a":1},"NotMap":[1]}"#,
        );
        let smd = i.req_map("StreamModeDetails").unwrap();
        assert_eq!(smd.req_str("StreamMode").unwrap(), "ON_DEMAND");
        let e = i
            .req_map("Empty")
            .unwrap()
            .req_str("StreamMode")
            .unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'empty.streamMode' failed to satisfy \
             constraint: Member must not be null"
        );
        let records = i.req_struct_list("Records").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].req_str("PartitionKey").unwrap(), "k");
        assert_eq!(records[0].req_blob("Data").unwrap(), vec![0]);
        assert_eq!(
            records[1].member("PartitionKey"),
            "records.2.member.partitionKey"
        );
        assert!(
            records[1]
                .req_str("PartitionKey")
                .unwrap_err()
                .message
                .contains("Value null at 'records.2.member.partitionKey'")
        );
        assert_serialization(
            i.opt_struct_list("NotList"),
            "Start of structure or map found",
        );
        assert_serialization(i.opt_list("NotList"), "Start of structure or map found");
        assert_serialization(
            i.opt_map("NotMap"),
            "Start of list found where not expected",
        );
        assert_serialization(
            i.opt_map("Records"),
            "Start of list found where not expected",
        );
        let scalars = json(r#"{"A":1}"#);
        assert_serialization(scalars.opt_list("A"), "Expected list or null");
        assert_serialization(scalars.opt_map("A"), "Expected map or null");
    }

    #[test]
    fn string_maps_and_lists() {
        let i = json(
            r#"{"Tags":{"b":"2","a":"1","n":null},"Keys":["x","y"],"BadTags":{"a":1},"BadKeys":["x",2]}"#,
        );
        assert_eq!(
            i.req_string_map("Tags").unwrap(),
            vec![
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
                ("n".to_string(), String::new()),
            ]
        );
        assert_eq!(i.req_string_list("Keys").unwrap(), vec!["x", "y"]);
        assert_serialization(i.opt_string_map("BadTags"), "NUMBER_VALUE");
        assert_serialization(i.opt_string_list("BadKeys"), "NUMBER_VALUE");
        assert_eq!(
            i.opt_list("Keys").unwrap().unwrap(),
            vec![Doc::str("x"), Doc::str("y")]
        );
    }

    #[test]
    fn constraint_messages() {
        assert_eq!(
            validation(
                "shardCount",
                "0",
                "Member must have value greater than or equal to 1"
            )
            .message,
            "1 validation error detected: Value '0' at 'shardCount' failed to satisfy \
             constraint: Member must have value greater than or equal to 1"
        );
        let mut v = Violations::new();
        assert!(v.is_empty());
        assert_eq!(v.clone().into_result(), Ok(()));
        v.push("a", "x", "c1");
        v.push_null("b");
        assert_eq!(v.len(), 2);
        let e = v.into_result().unwrap_err();
        assert_eq!(e.type_name, "ValidationException");
        assert_eq!(
            e.message,
            "2 validation errors detected: Value 'x' at 'a' failed to satisfy constraint: c1; \
             Value null at 'b' failed to satisfy constraint: Member must not be null"
        );
        let mut many = Violations::new();
        for i in 0..20 {
            many.push_null(&i.to_string());
        }
        assert_eq!(many.len(), MAX_VIOLATIONS);
    }

    #[test]
    fn take_moves_values_out() {
        let mut i = cbor(&Doc::map([
            (
                "Records",
                Doc::list([
                    Doc::map([
                        ("Data", Doc::blob(vec![1u8, 2])),
                        ("PartitionKey", Doc::str("a")),
                    ]),
                    Doc::map([("Data", Doc::str("AwQ="))]),
                ]),
            ),
            ("Z", Doc::Null),
        ]));
        let mut records = i.take_struct_list("Records").unwrap().unwrap();
        assert!(!i.contains("Records"));
        assert_eq!(i.take_struct_list("Records").unwrap(), None);
        assert_eq!(i.take("Z"), None);
        assert_eq!(records[0].take_blob("Data").unwrap(), Some(vec![1, 2]));
        assert_eq!(records[0].take_blob("Data").unwrap(), None);
        assert_eq!(records[1].take_blob("Data").unwrap(), Some(vec![3, 4]));
        assert_eq!(
            records[1].member("PartitionKey"),
            "records.2.member.partitionKey"
        );

        let mut dup = json(r#"{"A":"1","A":"2","B":1}"#);
        assert_eq!(dup.take("A"), Some(Doc::str("2")));
        assert!(!dup.contains("A"));
        assert!(dup.take_blob("B").is_err());
    }

    #[test]
    fn repeated_keys_last_wins() {
        let i = json(r#"{"A":"1","A":"2"}"#);
        assert_eq!(i.req_str("A").unwrap(), "2");
        assert!(i.contains("A"));
        assert_eq!(i.format(), Format::Json);
    }
}
