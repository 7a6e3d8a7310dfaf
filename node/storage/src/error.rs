//! The one error type of this crate.

use std::io;

/// Everything that can go wrong while storing or loading bytes.
#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    /// An operating-system call failed; `context` says what was being done.
    #[error("i/o error while {context}: {source}")]
    Io {
        /// What the engine was doing, e.g. "syncing segment 00000000000000000003.wal".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A log segment holds bytes that do not decode (bad checksum, impossible length, ...)
    /// somewhere other than the torn tail of the last segment.
    #[error("corrupt wal segment {segment} at offset {offset}: {reason}")]
    Corrupt {
        /// File name of the segment.
        segment: String,
        /// Byte offset of the bad record within the segment.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The engine's writer has stopped (the engine was dropped or its thread ended).
    #[error("log engine is closed")]
    Closed,
    /// The caller asked for something the engine refuses (e.g. a gap in log indices).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// sled reported an error.
    #[error("sled error: {0}")]
    Sled(#[from] sled::Error),
    /// sled could not load its files: it refused them (an unreadable configuration, a
    /// checksum that does not match) or panicked while decoding them.
    #[error("corrupt sled database in {path}: {reason}")]
    SledCorrupt {
        /// The database directory.
        path: String,
        /// sled's own words.
        reason: String,
    },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }

    /// A copy of this error, for handing the same failure to several waiters.
    /// (`io::Error` is not `Clone`; the copy keeps its kind and message.)
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            StorageError::Io { context, source } => StorageError::Io {
                context: context.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            StorageError::Corrupt {
                segment,
                offset,
                reason,
            } => StorageError::Corrupt {
                segment: segment.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            StorageError::Closed => StorageError::Closed,
            StorageError::Invalid(s) => StorageError::Invalid(s.clone()),
            StorageError::Sled(e) => StorageError::Io {
                context: "using sled".to_owned(),
                source: io::Error::other(e.to_string()),
            },
            StorageError::SledCorrupt { path, reason } => StorageError::SledCorrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
        }
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            StorageError::Io { source, .. } => source.kind(),
            StorageError::Corrupt { .. } | StorageError::SledCorrupt { .. } => {
                io::ErrorKind::InvalidData
            }
            StorageError::Closed => io::ErrorKind::BrokenPipe,
            StorageError::Invalid(_) => io::ErrorKind::InvalidInput,
            StorageError::Sled(sled::Error::Io(e)) => e.kind(),
            StorageError::Sled(sled::Error::Corruption { .. }) => io::ErrorKind::InvalidData,
            StorageError::Sled(_) => io::ErrorKind::Other,
        }
    }
}

impl From<StorageError> for io::Error {
    /// Keeps the kind of the underlying failure; the message is the full `StorageError` text.
    fn from(e: StorageError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_io_error_keeps_kind_and_message() {
        let e = StorageError::io(
            "syncing x",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
        assert!(io.to_string().starts_with("i/o error while syncing x: "));

        let io: io::Error = StorageError::Corrupt {
            segment: "s".into(),
            offset: 3,
            reason: "bad crc".into(),
        }
        .into();
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        assert_eq!(io.to_string(), "corrupt wal segment s at offset 3: bad crc");
    }
}
