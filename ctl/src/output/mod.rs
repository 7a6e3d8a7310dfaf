//! Writing results: one view struct per command, printed as a human table or as JSON.
//!
//! Commands build a `Serialize` view in a pure function and hand it here with a text renderer;
//! nothing else in the crate writes to stdout (progress and errors go to stderr).

mod table;

use std::io::Write;

use serde::Serialize;

pub(crate) use table::Table;

use crate::cli::OutputFormat;
use crate::error::CtlError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) format: OutputFormat,
}

impl Printer {
    /// Prints `view` as pretty JSON, or as `text(view)`.
    pub(crate) fn emit<T: Serialize>(
        &self,
        view: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(), CtlError> {
        let out = match self.format {
            OutputFormat::Json => to_json(view)? + "\n",
            OutputFormat::Text => {
                let mut s = text(view);
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
        };
        write_stdout(out.as_bytes())
    }

    /// One item of a stream of results (tail): a JSON object per line, or a text line.
    pub(crate) fn line<T: Serialize>(
        &self,
        item: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(), CtlError> {
        let mut out = match self.format {
            OutputFormat::Json => serde_json::to_string(item).map_err(json_error)?,
            OutputFormat::Text => text(item),
        };
        out.push('\n');
        write_stdout(out.as_bytes())
    }
}

fn to_json<T: Serialize>(view: &T) -> Result<String, CtlError> {
    serde_json::to_string_pretty(view).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> CtlError {
    CtlError::Write {
        what: "JSON output".into(),
        source: std::io::Error::other(e),
    }
}

/// Writes and flushes, so piped readers (`streamctl tail x | head`) see each line at once. A
/// closed pipe ends the program quietly, as `head` expects.
fn write_stdout(bytes: &[u8]) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(source) => Err(CtlError::Write {
            what: "stdout".into(),
            source,
        }),
    }
}

/// Writes `view` as pretty JSON to `path` (bench results).
pub(crate) fn write_json_file<T: Serialize>(
    path: &std::path::Path,
    view: &T,
) -> Result<(), CtlError> {
    let text = to_json(view)? + "\n";
    std::fs::write(path, text).map_err(|source| CtlError::Write {
        what: path.display().to_string(),
        source,
    })
}
