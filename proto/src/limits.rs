//! Kinesis Data Streams limits (DESIGN.md section 7). Every check against them lives in the
//! gateway; the numbers live here so the client and the shim agree with it.

/// Records in one PutRecords call.
pub const MAX_PUT_RECORDS: usize = 500;
/// Bytes (data plus partition keys) in one PutRecords call.
pub const MAX_PUT_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// Bytes of one record's data plus its partition key, unless the stream's maximum record size
/// (1 to 10 MiB) allows more.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Unicode characters in a partition key.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Records one GetRecords call returns.
pub const MAX_GET_RECORDS: u32 = 10_000;
/// Bytes one GetRecords call returns.
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// Retention bounds, in hours.
pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Characters in a stream name.
pub const MAX_STREAM_NAME_CHARS: usize = 128;
/// Shards one stream may be created with.
pub const MAX_SHARDS_PER_STREAM: u32 = 1024;
/// Shard iterators expire after this long.
pub const ITERATOR_TTL_MS: i64 = 5 * 60 * 1000;
/// Per-shard write limits (Kinesis's defaults; `--shard-limits off` lifts them).
pub const SHARD_WRITE_BYTES_PER_SEC: u64 = 1024 * 1024;
pub const SHARD_WRITE_RECORDS_PER_SEC: u64 = 1000;
/// Per-shard read limits.
pub const SHARD_READ_BYTES_PER_SEC: u64 = 2 * 1024 * 1024;
pub const SHARD_READ_CALLS_PER_SEC: u64 = 5;
