//! Identifier types, each validated where it is parsed so the rest of the code can trust it.
//!
//! - [`StreamName`]: 1..128 characters of `[a-zA-Z0-9_.-]`.
//! - [`ShardId`]: `shardId-` and twelve digits, unique for the life of a stream.
//! - [`HashKey`]: a point of the 0..2^128-1 key space: MD5 of a partition key read as a big-endian
//!   unsigned integer, or an explicit decimal hash key.
//! - [`SequenceNumber`]: `group id | log index | position in entry`, so every replica derives the
//!   same number from the log without talking, numbers only grow within a shard, and a child
//!   shard (whose group id is always larger) numbers above its parents.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::limits::MAX_STREAM_NAME_CHARS;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("stream name must be 1 to 128 characters of [a-zA-Z0-9_.-], got {0:?}")]
    StreamName(String),
    #[error("shard id must look like shardId-000000000000, got {0:?}")]
    ShardId(String),
    #[error("hash key must be a decimal integer in 0..2^128-1, got {0:?}")]
    HashKey(String),
    #[error("sequence number must match 0|([1-9]\\d{{0,128}}), got {0:?}")]
    SequenceNumber(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamName(String);

impl StreamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for StreamName {
    type Error = IdError;
    fn try_from(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_STREAM_NAME_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(StreamName(s.to_string()))
        } else {
            Err(IdError::StreamName(s.to_string()))
        }
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The per-stream shard number behind a `shardId-NNNNNNNNNNNN`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct ShardId(pub u64);

impl ShardId {
    pub const PREFIX: &'static str = "shardId-";
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:012}", Self::PREFIX, self.0)
    }
}

impl FromStr for ShardId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // Kinesis also accepts the bare number ("1" means shardId-000000000001).
        let digits = s.strip_prefix(Self::PREFIX).unwrap_or(s);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::ShardId(s.to_string()));
        }
        digits
            .parse()
            .map(ShardId)
            .map_err(|_| IdError::ShardId(s.to_string()))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct HashKey(pub u128);

impl HashKey {
    pub const MAX: HashKey = HashKey(u128::MAX);

    /// MD5 of the partition key's UTF-8 bytes, read as a big-endian unsigned 128-bit integer.
    pub fn of_partition_key(key: &str) -> HashKey {
        let digest: [u8; 16] = Md5::digest(key.as_bytes()).into();
        HashKey(u128::from_be_bytes(digest))
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for HashKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::HashKey(s.to_string()));
        }
        s.parse::<u128>()
            .map(HashKey)
            .map_err(|_| IdError::HashKey(s.to_string()))
    }
}

/// An inclusive range of hash keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HashKeyRange {
    pub start: HashKey,
    pub end: HashKey,
}

impl HashKeyRange {
    pub const FULL: HashKeyRange = HashKeyRange {
        start: HashKey(0),
        end: HashKey::MAX,
    };

    pub fn contains(&self, k: HashKey) -> bool {
        self.start <= k && k <= self.end
    }

    /// Splits the whole key space into `n` contiguous ranges of equal size (the last takes the
    /// remainder), as Kinesis does at stream creation.
    pub fn split_even(n: u32) -> Vec<HashKeyRange> {
        if n <= 1 {
            return vec![HashKeyRange::FULL];
        }
        let n = u128::from(n);
        // floor(2^128 / n), computed without overflowing u128, so n = 2 splits at 2^127 as
        // Kinesis does.
        let width = u128::MAX / n + u128::from(u128::MAX % n + 1 == n);
        (0..n)
            .map(|i| {
                let start = i * width;
                let end = if i + 1 == n {
                    u128::MAX
                } else {
                    (i + 1) * width - 1
                };
                HashKeyRange {
                    start: HashKey(start),
                    end: HashKey(end),
                }
            })
            .collect()
    }
}

/// A record's position in its shard. Layout, most significant first:
/// `group id (32 bits) | log index (64 bits) | position in the entry (16 bits)`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct SequenceNumber(pub u128);

impl SequenceNumber {
    /// Printed width: Kinesis sequence numbers are 56 digits.
    pub const DIGITS: usize = 56;
    pub const MAX_POSITION: u32 = u16::MAX as u32;

    pub fn new(group_id: u64, log_index: u64, position: u16) -> SequenceNumber {
        let g = u128::from(group_id as u32);
        SequenceNumber((g << 80) | (u128::from(log_index) << 16) | u128::from(position))
    }

    /// The smallest sequence number a group can hold.
    pub fn first_of_group(group_id: u64) -> SequenceNumber {
        SequenceNumber::new(group_id, 0, 0)
    }

    pub fn group_id(self) -> u64 {
        (self.0 >> 80) as u64
    }

    pub fn log_index(self) -> u64 {
        ((self.0 >> 16) & u128::from(u64::MAX)) as u64
    }

    pub fn position(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    pub fn next(self) -> SequenceNumber {
        SequenceNumber(self.0.saturating_add(1))
    }
}

impl fmt::Display for SequenceNumber {
    /// Kinesis-shaped: 56 digits with no leading zero (the API's pattern is
    /// `0|([1-9]\d{0,128})`), a `1` then the value zero-padded to 55 digits, so every issued
    /// number has the same length and string order equals numeric order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1{:0width$}", self.0, width = Self::DIGITS - 1)
    }
}

impl FromStr for SequenceNumber {
    type Err = IdError;
    /// Accepts any number the API's pattern allows. Numbers streamd never issues keep their
    /// order against those it does: shorter ones sort before all of them (value 0), longer ones
    /// after (the largest value).
    fn from_str(s: &str) -> Result<Self, IdError> {
        let well_formed = !s.is_empty()
            && s.len() <= 129
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if !well_formed {
            return Err(IdError::SequenceNumber(s.to_string()));
        }
        if s.len() < Self::DIGITS {
            return Ok(SequenceNumber(0));
        }
        if s.len() > Self::DIGITS || !s.starts_with('1') {
            return Ok(SequenceNumber(u128::MAX));
        }
        Ok(SequenceNumber(s[1..].parse::<u128>().unwrap_or(u128::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hash_key_matches_kinesis() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        let k = HashKey::of_partition_key("a");
        assert_eq!(k.0, 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn even_split_covers_the_space_without_gaps() {
        for n in [1u32, 2, 3, 4, 7, 8, 100] {
            let r = HashKeyRange::split_even(n);
            assert_eq!(r.len(), n as usize);
            assert_eq!(r[0].start.0, 0);
            assert_eq!(r[r.len() - 1].end, HashKey::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].end.0 + 1, w[1].start.0);
            }
        }
        let two = HashKeyRange::split_even(2);
        assert_eq!(two[0].end.0, (1u128 << 127) - 1);
    }

    #[test]
    fn sequence_numbers_order_by_group_then_index_then_position() {
        let a = SequenceNumber::new(1, 5, 9);
        let b = SequenceNumber::new(1, 6, 0);
        let c = SequenceNumber::new(2, 1, 0);
        assert!(a < b && b < c);
        assert_eq!((b.group_id(), b.log_index(), b.position()), (1, 6, 0));
        let s = a.to_string();
        assert_eq!(s.len(), SequenceNumber::DIGITS);
        assert!(s.starts_with('1'));
        assert_eq!(s.parse::<SequenceNumber>().unwrap(), a);
        // String order equals numeric order.
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
    }

    #[test]
    fn bad_ids_are_refused() {
        assert!(StreamName::try_from("").is_err());
        assert!(StreamName::try_from("a b").is_err());
        assert!(StreamName::try_from("x".repeat(129).as_str()).is_err());
        assert!(StreamName::try_from("ok_name-1.2").is_ok());
        assert!("shardId-abc".parse::<ShardId>().is_err());
        assert_eq!(
            "shardId-000000000007".parse::<ShardId>().unwrap(),
            ShardId(7)
        );
        assert_eq!(ShardId(7).to_string(), "shardId-000000000007");
        assert!("-1".parse::<HashKey>().is_err());
        assert!(
            "340282366920938463463374607431768211456"
                .parse::<HashKey>()
                .is_err()
        );
        assert!("12a".parse::<SequenceNumber>().is_err());
        assert!("0123".parse::<SequenceNumber>().is_err());
        assert!("1".repeat(130).parse::<SequenceNumber>().is_err());
        assert_eq!("0".parse::<SequenceNumber>().unwrap(), SequenceNumber(0));
        assert_eq!(
            "1".repeat(129).parse::<SequenceNumber>().unwrap(),
            SequenceNumber(u128::MAX)
        );
    }
}
