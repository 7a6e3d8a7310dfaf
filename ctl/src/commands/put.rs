//! `streamctl put NAME [RECORD...] [--key K] [--file PATH]`: one record per argument, or per
//! line of the file or of stdin, sent in PutRecords batches.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use streamd_client::{ErrorCode, v1};
use streamd_proto::limits::MAX_PUT_RECORDS;

use super::Ctx;
use crate::cli::PutArgs;
use crate::error::CtlError;

/// Bytes per PutRecords call: Kinesis's 5 MiB, whatever the server allows above it.
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Times a record refused with a retryable code (throughput, a reshard) is sent again.
const MAX_ATTEMPTS: u32 = 10;

/// Where records come from.
enum Input {
    Args(std::vec::IntoIter<String>),
    Lines {
        reader: Box<dyn BufRead>,
        path: std::path::PathBuf,
    },
}

impl Input {
    fn open(args: &PutArgs) -> Result<Input, CtlError> {
        if let Some(path) = &args.file {
            let file = std::fs::File::open(path).map_err(|source| CtlError::ReadInput {
                path: path.clone(),
                source,
            })?;
            return Ok(Input::Lines {
                reader: Box::new(std::io::BufReader::new(file)),
                path: path.clone(),
            });
        }
        if !args.records.is_empty() {
            return Ok(Input::Args(args.records.clone().into_iter()));
        }
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            // Otherwise a bare `streamctl put NAME` looks hung.
            eprintln!("reading records from stdin, one per line; end with Ctrl-D");
        }
        Ok(Input::Lines {
            reader: Box::new(stdin.lock()),
            path: "stdin".into(),
        })
    }

    /// The next record's data; blank lines are skipped.
    fn next(&mut self) -> Result<Option<Vec<u8>>, CtlError> {
        match self {
            Input::Args(it) => Ok(it.next().map(String::into_bytes)),
            Input::Lines { reader, path } => loop {
                let mut line = Vec::new();
                let n =
                    reader
                        .read_until(b'\n', &mut line)
                        .map_err(|source| CtlError::ReadInput {
                            path: path.clone(),
                            source,
                        })?;
                if n == 0 {
                    return Ok(None);
                }
                let data = trim_newline(line);
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            },
        }
    }
}

fn trim_newline(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    line
}

fn random_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[derive(Debug, Serialize)]
pub(crate) struct PutResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Debug, Serialize)]
struct PutView {
    stream: String,
    records: u64,
    acknowledged: u64,
    failed: u64,
    /// One per record, in input order.
    results: Vec<PutResult>,
}

pub(crate) async fn run(ctx: &Ctx, args: PutArgs) -> Result<(), CtlError> {
    let name = args.name.clone();
    let mut input = Input::open(&args)?;
    let mut view = PutView {
        stream: name.clone(),
        records: 0,
        acknowledged: 0,
        failed: 0,
        results: Vec::new(),
    };
    let mut first_error = None;
    let mut batch: Vec<v1::PutRecordsRequestEntry> = Vec::new();
    let mut batch_bytes = 0;
    loop {
        let next = input.next()?;
        let full = next.as_ref().is_some_and(|d| {
            batch.len() == MAX_PUT_RECORDS || batch_bytes + d.len() + 256 > MAX_BATCH_BYTES
        });
        if (next.is_none() || full) && !batch.is_empty() {
            let sent = std::mem::take(&mut batch);
            batch_bytes = 0;
            let results = send(ctx, &name, sent).await.map_err(|e| {
                // Tell how far it got: the records before this batch are written; this
                // batch's outcome is unknown.
                match e {
                    CtlError::Client(c) if view.acknowledged > 0 => CtlError::RecordsFailed {
                        failed: view.records - view.acknowledged,
                        total: view.records,
                        acked: view.acknowledged,
                        first_error: c.to_string(),
                    },
                    other => other,
                }
            })?;
            for r in results {
                if r.error_code.is_some() {
                    view.failed += 1;
                    first_error.get_or_insert_with(|| {
                        format!(
                            "{}: {}",
                            r.error_code.clone().unwrap_or_default(),
                            r.error_message.clone().unwrap_or_default()
                        )
                    });
                } else {
                    view.acknowledged += 1;
                }
                view.results.push(r);
            }
        }
        let Some(data) = next else { break };
        let key = args.key.clone().unwrap_or_else(random_key);
        batch_bytes += data.len() + key.len();
        view.records += 1;
        batch.push(streamd_client::client::entry(key, Bytes::from(data)));
    }
    if view.records == 0 {
        return Err(CtlError::Usage(
            "no records to put: give them as arguments, with --file, or on stdin".into(),
        ));
    }
    ctx.out.emit(&view, |v| {
        format!(
            "put {} records to stream '{}': {} acknowledged, {} failed",
            v.records, v.stream, v.acknowledged, v.failed
        )
    })?;
    match first_error {
        Some(first_error) => Err(CtlError::RecordsFailed {
            failed: view.failed,
            total: view.records,
            acked: view.acknowledged,
            first_error,
        }),
        None => Ok(()),
    }
}

/// Sends one batch; records refused with a retryable code are sent again (they were not
/// written), up to [`MAX_ATTEMPTS`]. A failed call is not retried: its outcome is unknown.
async fn send(
    ctx: &Ctx,
    stream: &str,
    entries: Vec<v1::PutRecordsRequestEntry>,
) -> Result<Vec<PutResult>, CtlError> {
    let mut results: Vec<Option<PutResult>> = entries.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, v1::PutRecordsRequestEntry)> =
        entries.into_iter().enumerate().collect();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let batch: Vec<_> = pending.iter().map(|(_, e)| e.clone()).collect();
        let resp = ctx
            .client
            .put_records(stream, batch)
            .await
            .map_err(|e| CtlError::about_stream(stream, e))?;
        let mut retry = Vec::new();
        for ((index, entry), r) in pending.into_iter().zip(resp.records) {
            let retryable = r
                .error_code
                .as_deref()
                .and_then(ErrorCode::from_name)
                .is_some_and(ErrorCode::retryable);
            if retryable && attempt < MAX_ATTEMPTS {
                retry.push((index, entry));
                continue;
            }
            results[index] = Some(PutResult {
                shard_id: r.shard_id,
                sequence_number: r.sequence_number,
                error_code: r.error_code,
                error_message: r.error_message,
            });
        }
        if !retry.is_empty() {
            // Throughput refusals clear within a second; reshards within a few.
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
        }
        pending = retry;
    }
    // A reply with fewer results than records leaves some unanswered: their outcome is unknown.
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(PutResult {
                shard_id: None,
                sequence_number: None,
                error_code: Some("InternalFailure".into()),
                error_message: Some("the server returned no result for this record".into()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_trimmed_and_keys_random() {
        assert_eq!(trim_newline(b"a\r\n".to_vec()), b"a");
        assert_eq!(trim_newline(b"a".to_vec()), b"a");
        assert_ne!(random_key(), random_key());
        assert_eq!(random_key().len(), 32);
    }

    #[test]
    fn lines_skip_blanks() {
        let mut input = Input::Lines {
            reader: Box::new(std::io::Cursor::new(b"a\n\nb\r\n".to_vec())),
            path: "t".into(),
        };
        assert_eq!(input.next().unwrap(), Some(b"a".to_vec()));
        assert_eq!(input.next().unwrap(), Some(b"b".to_vec()));
        assert_eq!(input.next().unwrap(), None);
    }
}
