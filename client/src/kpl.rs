//! The Kinesis Producer Library's aggregated record format, so records packed here are unpacked
//! by KCL consumers (and the reverse).
//!
//! One Kinesis record carries many user records:
//!
//! ```text
//! F3 89 9A C2 | AggregatedRecord (protobuf, proto2) | MD5 of the protobuf bytes (16 bytes)
//! ```
//!
//! `AggregatedRecord` holds a table of partition keys, a table of explicit hash keys and the
//! records, each naming its keys by index into the tables (the schema is KPL's
//! `aggregation/messages.proto`; the structs below are that schema written with prost's
//! derive, because it never changes and a build step for three messages is not worth it).
//!
//! [`Aggregator`] packs user records into one such record; [`deaggregate`] unpacks one. A record
//! that does not start with the magic bytes, or whose trailing digest does not match, is not
//! aggregated and comes back unchanged as a single user record — exactly what KCL does, since a
//! user's own payload may happen to begin with the magic bytes.

use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use prost::Message;
use prost::encoding::encoded_len_varint;

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `required` matters: KPL's readers reject a record without `partition_key_index`, and a
/// proto3-style field would omit index 0 from the wire.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KplError {
    #[error("aggregated record does not decode: {0}")]
    Decode(String),
    #[error(
        "aggregated record {record} names {table} index {index}, but the table has {len} entries"
    )]
    BadIndex {
        record: usize,
        table: &'static str,
        index: u64,
        len: usize,
    },
}

/// One user record: what a producer was given, or what a consumer gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
    /// The position inside the aggregated record it came from; `None` for a record that was
    /// not aggregated.
    pub sub_sequence: Option<u32>,
}

/// Whether `data` is framed as an aggregated record (magic and digest both match).
pub fn is_aggregated(data: &[u8]) -> bool {
    framed_body(data).is_some()
}

/// The protobuf bytes between the magic and a matching digest.
fn framed_body(data: &[u8]) -> Option<&[u8]> {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    let computed: [u8; DIGEST_LEN] = Md5::digest(body).into();
    (computed[..] == digest[..]).then_some(body)
}

/// The user records inside one Kinesis record whose partition key is `partition_key`. A record
/// that is not aggregated comes back as itself, with no sub-sequence.
pub fn deaggregate(partition_key: &str, data: &Bytes) -> Result<Vec<UserRecord>, KplError> {
    let Some(body) = framed_body(data) else {
        return Ok(vec![UserRecord {
            partition_key: partition_key.to_string(),
            explicit_hash_key: None,
            data: data.clone(),
            sub_sequence: None,
        }]);
    };
    let agg = AggregatedRecord::decode(data.slice_ref(body))
        .map_err(|e| KplError::Decode(e.to_string()))?;
    let mut out = Vec::with_capacity(agg.records.len());
    for (i, r) in agg.records.into_iter().enumerate() {
        let key = lookup(
            &agg.partition_key_table,
            r.partition_key_index,
            i,
            "partition key",
        )?;
        let ehk = r
            .explicit_hash_key_index
            .map(|x| lookup(&agg.explicit_hash_key_table, x, i, "explicit hash key"))
            .transpose()?;
        out.push(UserRecord {
            partition_key: key.to_string(),
            explicit_hash_key: ehk.map(str::to_string),
            data: r.data,
            sub_sequence: Some(i as u32),
        });
    }
    Ok(out)
}

fn lookup<'a>(
    table: &'a [String],
    index: u64,
    record: usize,
    what: &'static str,
) -> Result<&'a str, KplError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .map(String::as_str)
        .ok_or(KplError::BadIndex {
            record,
            table: what,
            index,
            len: table.len(),
        })
}

/// Packs user records into one aggregated Kinesis record. Keys are stored once in the tables;
/// the outer record takes the first user record's partition key (and explicit hash key), as KPL
/// does, so it lands in the shard the first record would have.
#[derive(Debug, Default)]
pub struct Aggregator {
    agg: AggregatedRecord,
    /// Encoded length of `agg` so far, kept exactly so [`Aggregator::size_with`] costs nothing.
    body_len: usize,
}

/// Bytes of a length-delimited field with a one-byte tag and `len` bytes of payload.
fn delimited_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.agg.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agg.records.is_empty()
    }

    /// The outer record's partition key: the first user record's.
    pub fn partition_key(&self) -> Option<&str> {
        self.agg.partition_key_table.first().map(String::as_str)
    }

    /// The size Kinesis counts against its record limit (data plus partition key) of the
    /// aggregated record as it stands.
    pub fn size(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.framed_len(self.body_len) + self.partition_key().map_or(0, str::len)
    }

    /// The size after adding this user record, without adding it.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let (added, _, _) = self.added_len(partition_key, explicit_hash_key, data.len());
        let outer_key = self.partition_key().unwrap_or(partition_key).len();
        self.framed_len(self.body_len + added) + outer_key
    }

    fn framed_len(&self, body: usize) -> usize {
        MAGIC.len() + body + DIGEST_LEN
    }

    /// Encoded bytes a new record adds, and the table indexes it would use (`Err` = new entry).
    fn added_len(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> (usize, Result<usize, usize>, Option<Result<usize, usize>>) {
        let mut added = 0;
        let pk = index_of(&self.agg.partition_key_table, partition_key);
        if pk.is_err() {
            added += delimited_len(partition_key.len());
        }
        let ehk = explicit_hash_key.map(|e| index_of(&self.agg.explicit_hash_key_table, e));
        if let (Some(Err(_)), Some(e)) = (&ehk, explicit_hash_key) {
            added += delimited_len(e.len());
        }
        let pk_index = pk.unwrap_or_else(|n| n);
        let mut record = 1 + encoded_len_varint(pk_index as u64) + delimited_len(data_len);
        if let Some(e) = &ehk {
            record += 1 + encoded_len_varint(*e.as_ref().unwrap_or_else(|n| n) as u64);
        }
        added += delimited_len(record);
        (added, pk, ehk)
    }

    pub fn push(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: Bytes) {
        let (added, pk, ehk) = self.added_len(partition_key, explicit_hash_key, data.len());
        let partition_key_index = match pk {
            Ok(i) => i,
            Err(i) => {
                self.agg.partition_key_table.push(partition_key.to_string());
                i
            }
        };
        let explicit_hash_key_index = match (ehk, explicit_hash_key) {
            (Some(Ok(i)), _) => Some(i as u64),
            (Some(Err(i)), Some(e)) => {
                self.agg.explicit_hash_key_table.push(e.to_string());
                Some(i as u64)
            }
            _ => None,
        };
        self.agg.records.push(Record {
            partition_key_index: partition_key_index as u64,
            explicit_hash_key_index,
            data,
            tags: Vec::new(),
        });
        self.body_len += added;
        debug_assert_eq!(self.body_len, self.agg.encoded_len());
    }

    /// The aggregated record: (outer partition key, outer explicit hash key, data). `None` when
    /// nothing was pushed.
    pub fn finish(self) -> Option<(String, Option<String>, Bytes)> {
        let first = self.agg.records.first()?;
        let key = self.agg.partition_key_table.first()?.clone();
        let ehk = first
            .explicit_hash_key_index
            .and_then(|i| self.agg.explicit_hash_key_table.get(i as usize))
            .cloned();
        let mut out = BytesMut::with_capacity(self.framed_len(self.body_len));
        out.put_slice(&MAGIC);
        let body = self.agg.encode_to_vec();
        let digest: [u8; DIGEST_LEN] = Md5::digest(&body).into();
        out.put_slice(&body);
        out.put_slice(&digest);
        Some((key, ehk, out.freeze()))
    }
}

/// Tables are small (one entry per distinct key of one aggregated record), so a scan is fine.
fn index_of(table: &[String], value: &str) -> Result<usize, usize> {
    table.iter().position(|v| v == value).ok_or(table.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written out by hand from the format: two keys, one explicit hash key, two records.
    const BODY: &str = concat!(
        "0a0161",         // partition_key_table: "a"
        "0a0162",         // partition_key_table: "b"
        "120139",         // explicit_hash_key_table: "9"
        "1a06",           // records[0], 6 bytes:
        "0800",           //   partition_key_index 0 (present although 0: `required`)
        "1a026869",       //   data "hi"
        "1a0b",           // records[1], 11 bytes:
        "0801",           //   partition_key_index 1
        "1000",           //   explicit_hash_key_index 0
        "1a057468657265", //   data "there"
    );
    /// MD5 of BODY (python3 -c "import hashlib; print(hashlib.md5(bytes.fromhex(BODY)).hexdigest())").
    const DIGEST: &str = "dc2ea6717d390b8fa60b5ef4033de943";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn vector() -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend(unhex(BODY));
        v.extend(unhex(DIGEST));
        v
    }

    #[test]
    fn aggregates_to_the_hand_built_bytes() {
        let mut a = Aggregator::new();
        a.push("a", None, Bytes::from_static(b"hi"));
        a.push("b", Some("9"), Bytes::from_static(b"there"));
        let size = a.size();
        let (key, ehk, data) = a.finish().unwrap();
        assert_eq!(key, "a");
        assert_eq!(ehk, None);
        assert_eq!(data.to_vec(), vector());
        assert_eq!(size, data.len() + 1);
    }

    #[test]
    fn deaggregates_the_hand_built_bytes() {
        let records = deaggregate("a", &Bytes::from(vector())).unwrap();
        assert_eq!(
            records,
            vec![
                UserRecord {
                    partition_key: "a".into(),
                    explicit_hash_key: None,
                    data: Bytes::from_static(b"hi"),
                    sub_sequence: Some(0),
                },
                UserRecord {
                    partition_key: "b".into(),
                    explicit_hash_key: Some("9".into()),
                    data: Bytes::from_static(b"there"),
                    sub_sequence: Some(1),
                },
            ]
        );
    }

    #[test]
    fn plain_records_and_bad_digests_pass_through_unchanged() {
        for data in [
            Bytes::from_static(b"plain"),
            Bytes::from_static(&MAGIC),
            Bytes::new(),
            {
                let mut v = vector();
                let last = v.len() - 1;
                v[last] ^= 1;
                Bytes::from(v)
            },
        ] {
            let out = deaggregate("k", &data).unwrap();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].data, data);
            assert_eq!(out[0].partition_key, "k");
            assert_eq!(out[0].sub_sequence, None);
            assert!(!is_aggregated(&data));
        }
        assert!(is_aggregated(&vector()));
    }

    #[test]
    fn a_bad_index_is_an_error() {
        let agg = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![],
            }],
        };
        let body = agg.encode_to_vec();
        let mut data = MAGIC.to_vec();
        data.extend(&body);
        data.extend(Md5::digest(&body));
        let err = deaggregate("a", &Bytes::from(data)).unwrap_err();
        assert!(
            matches!(
                err,
                KplError::BadIndex {
                    index: 3,
                    len: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn round_trips_and_sizes_are_exact() {
        let mut a = Aggregator::new();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let key = format!("key-{}", i % 7);
            let ehk = (i % 5 == 0).then(|| format!("{}", u128::MAX - i as u128));
            let data = Bytes::from(vec![i as u8; (i as usize * 37) % 700]);
            let predicted = a.size_with(&key, ehk.as_deref(), &data);
            a.push(&key, ehk.as_deref(), data.clone());
            assert_eq!(a.size(), predicted, "record {i}");
            expected.push((key, ehk, data));
        }
        let size = a.size();
        let (key, _, data) = a.finish().unwrap();
        assert_eq!(size, data.len() + key.len());
        let out = deaggregate(&key, &data).unwrap();
        assert_eq!(out.len(), expected.len());
        for (i, (r, (k, e, d))) in out.iter().zip(expected).enumerate() {
            assert_eq!(
                (&r.partition_key, &r.explicit_hash_key, &r.data),
                (&k, &e, &d)
            );
            assert_eq!(r.sub_sequence, Some(i as u32));
        }
    }

    #[test]
    fn tags_decode() {
        let agg = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 0,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![Tag {
                    key: "t".into(),
                    value: Some("v".into()),
                }],
            }],
        };
        let decoded = AggregatedRecord::decode(&agg.encode_to_vec()[..]).unwrap();
        assert_eq!(decoded, agg);
    }

    #[test]
    fn empty_aggregator_finishes_to_nothing() {
        let a = Aggregator::new();
        assert_eq!(a.size(), 0);
        assert!(a.finish().is_none());
    }
}
