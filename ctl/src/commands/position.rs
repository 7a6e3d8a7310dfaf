//! `--from trim-horizon|latest|at-timestamp T|at-sequence S|after-sequence S`: where `get` and
//! `tail` start reading a shard.

use streamd_client::v1::ShardIteratorType;
use streamd_proto::ids::SequenceNumber;

use crate::error::CtlError;
use crate::time::parse_timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartPosition {
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
    /// Kept as typed: a short number parses to value 0 and would not print back the same.
    AtSequence(String),
    AfterSequence(String),
}

const FORMS: &str = "use trim-horizon, latest, at-timestamp T, at-sequence S or after-sequence S";

impl StartPosition {
    /// `values` is what `--from` collected: the position and, for some, its value (also
    /// accepted as `at-timestamp=T`).
    pub(crate) fn parse(values: &[String]) -> Result<StartPosition, CtlError> {
        let (kind, value) = match values {
            [one] => match one.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (one.as_str(), None),
            },
            [kind, value] => (kind.as_str(), Some(value.as_str())),
            _ => return Err(CtlError::Usage(format!("--from: {FORMS}"))),
        };
        let kind = kind.to_ascii_lowercase().replace('_', "-");
        let need = |what: &str| {
            value.ok_or_else(|| CtlError::Usage(format!("--from {kind} needs {what}")))
        };
        let seq = |v: &str| match v.parse::<SequenceNumber>() {
            Ok(_) => Ok(v.to_string()),
            Err(_) => Err(CtlError::Usage(format!(
                "--from {kind}: {v:?} is not a sequence number (a decimal number from a record)"
            ))),
        };
        let no_value = |p: StartPosition| match value {
            None => Ok(p),
            Some(v) => Err(CtlError::Usage(format!(
                "--from {kind} takes no value, got {v:?} (put the stream NAME before --from)"
            ))),
        };
        match kind.as_str() {
            "trim-horizon" | "earliest" | "oldest" => no_value(StartPosition::TrimHorizon),
            "latest" => no_value(StartPosition::Latest),
            "at-timestamp" => parse_timestamp(need("a timestamp")?)
                .map(StartPosition::AtTimestamp)
                .map_err(|e| CtlError::Usage(format!("--from at-timestamp: {e}"))),
            "at-sequence" => Ok(StartPosition::AtSequence(seq(need("a sequence number")?)?)),
            "after-sequence" => Ok(StartPosition::AfterSequence(seq(need(
                "a sequence number",
            )?)?)),
            other => Err(CtlError::Usage(format!("--from {other:?}: {FORMS}"))),
        }
    }

    /// The GetShardIterator arguments: type, sequence number, timestamp.
    pub(crate) fn iterator_args(&self) -> (ShardIteratorType, Option<String>, Option<i64>) {
        match self {
            StartPosition::TrimHorizon => (ShardIteratorType::TrimHorizon, None, None),
            StartPosition::Latest => (ShardIteratorType::Latest, None, None),
            StartPosition::AtTimestamp(ms) => (ShardIteratorType::AtTimestamp, None, Some(*ms)),
            StartPosition::AtSequence(s) => {
                (ShardIteratorType::AtSequenceNumber, Some(s.clone()), None)
            }
            StartPosition::AfterSequence(s) => (
                ShardIteratorType::AfterSequenceNumber,
                Some(s.clone()),
                None,
            ),
        }
    }

    /// The sequence number, for positions that name one (they pick their shard).
    pub(crate) fn sequence(&self) -> Option<SequenceNumber> {
        match self {
            StartPosition::AtSequence(s) | StartPosition::AfterSequence(s) => s.parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<StartPosition, CtlError> {
        StartPosition::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn every_form() {
        assert_eq!(p(&["trim-horizon"]).unwrap(), StartPosition::TrimHorizon);
        assert_eq!(p(&["TRIM_HORIZON"]).unwrap(), StartPosition::TrimHorizon);
        assert_eq!(p(&["latest"]).unwrap(), StartPosition::Latest);
        assert_eq!(
            p(&["at-timestamp", "0"]).unwrap(),
            StartPosition::AtTimestamp(0)
        );
        assert_eq!(
            p(&["at-timestamp=1000"]).unwrap(),
            StartPosition::AtTimestamp(1000)
        );
        assert_eq!(
            p(&["at-sequence", "42"]).unwrap(),
            StartPosition::AtSequence("42".into())
        );
        assert_eq!(
            p(&["after-sequence", "42"]).unwrap().sequence(),
            Some(SequenceNumber(0))
        );
    }

    #[test]
    fn mistakes_are_usage_errors_that_explain() {
        for (args, needle) in [
            (&["sometime"][..], "trim-horizon, latest"),
            (&["at-timestamp"][..], "needs a timestamp"),
            (&["at-sequence", "x"][..], "not a sequence number"),
            (&["latest", "orders"][..], "NAME before --from"),
            (&["at-timestamp", "noon"][..], "RFC 3339"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit(), crate::error::Exit::Usage);
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
    }
}
