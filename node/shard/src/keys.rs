//! Sled key layout of one shard inside the shared `shards` tree (after the 8-byte group prefix):
//!
//! - `0x01 | seq (16 bytes BE)` -> an entry: the records of one Put, keyed by the sequence number
//!   of its first record ([`crate::command::StoredEntry`]);
//! - `0x02` -> the shard's [`crate::ShardState`];
//! - `0x03 | arrival ms (8 bytes BE) | seq (16 bytes BE)` -> empty: the first record of each
//!   entry by arrival time, for AT_TIMESTAMP and retention;
//! - `0x04 | producer id (8 bytes BE)` -> the producer's newest stored number (8 bytes BE);
//! - `0x05 | producer id (8 bytes BE) | producer seq (8 bytes BE)` -> the sequence number that
//!   record got (16 bytes BE), for the producer's recent records only.

use streamd_storage::group_key;

pub(crate) const ENTRY: u8 = 0x01;
pub(crate) const STATE: u8 = 0x02;
pub(crate) const TIME: u8 = 0x03;
pub(crate) const PRODUCER: u8 = 0x04;
pub(crate) const PRODUCER_SEQ: u8 = 0x05;

pub(crate) fn entry(group: u64, seq: u128) -> Vec<u8> {
    let mut s = Vec::with_capacity(17);
    s.push(ENTRY);
    s.extend_from_slice(&seq.to_be_bytes());
    group_key(group, &s)
}

pub(crate) fn state(group: u64) -> Vec<u8> {
    group_key(group, &[STATE])
}

pub(crate) fn time(group: u64, arrival_ms: i64, seq: u128) -> Vec<u8> {
    let mut s = Vec::with_capacity(25);
    s.push(TIME);
    s.extend_from_slice(&(arrival_ms.max(0) as u64).to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    group_key(group, &s)
}

pub(crate) fn producer(group: u64, producer_id: u64) -> Vec<u8> {
    let mut s = Vec::with_capacity(9);
    s.push(PRODUCER);
    s.extend_from_slice(&producer_id.to_be_bytes());
    group_key(group, &s)
}

pub(crate) fn producer_seq(group: u64, producer_id: u64, seq: u64) -> Vec<u8> {
    let mut s = Vec::with_capacity(17);
    s.push(PRODUCER_SEQ);
    s.extend_from_slice(&producer_id.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    group_key(group, &s)
}

/// The first sequence number inside an entry key.
pub(crate) fn seq_of_entry_key(key: &[u8]) -> Option<u128> {
    let b: [u8; 16] = key.get(9..25)?.try_into().ok()?;
    Some(u128::from_be_bytes(b))
}

/// (arrival, seq) inside a time-index key.
pub(crate) fn parse_time_key(key: &[u8]) -> Option<(i64, u128)> {
    let t: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    let s: [u8; 16] = key.get(17..33)?.try_into().ok()?;
    Some((u64::from_be_bytes(t) as i64, u128::from_be_bytes(s)))
}
