//! `results.json` and the summary printed at the end of a run. The last stdout line is the
//! stable interface scripts read:
//! `jepsen: valid=true ops=N acked=N lost=0 duplicated=0 anomalies=0`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::checkers::{Facts, PropertyResult, Verdict};
use crate::history::{OpType, Outcome};

#[derive(Debug, Clone, Default, Serialize)]
pub struct OutcomeCounts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Client operations (invoke/completion pairs): appends, iterators, reads, drains.
    pub ops: usize,
    /// PutRecords calls by their completion type.
    pub appends: OutcomeCounts,
    /// Records sent, by their own outcome.
    pub records: OutcomeCounts,
    pub distinct_values: usize,
    /// Records returned to tailing readers, and by the final drains.
    pub records_read: usize,
    pub records_drained: usize,
    pub faults: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub ops: usize,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub retried_duplicates: usize,
    pub anomalies: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub valid: bool,
    /// Set when the harness itself failed: the verdict then says nothing about streamd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harness_error: Option<String>,
    pub summary: Summary,
    pub counts: Counts,
    /// Facts about the run (seed, topology, nemeses and whether each ran, timings).
    pub run: Value,
    pub properties: Vec<PropertyResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

pub fn counts(facts: &Facts) -> Counts {
    let mut c = Counts {
        ops: facts.client_ops,
        ..Counts::default()
    };
    for call in &facts.calls {
        match call.ty {
            OpType::Ok => c.appends.ok += 1,
            OpType::Fail => c.appends.fail += 1,
            OpType::Info | OpType::Invoke => c.appends.info += 1,
        }
    }
    let mut values = std::collections::HashSet::new();
    for a in &facts.attempts {
        values.insert(a.value.as_str());
        match a.outcome {
            Outcome::Ok => c.records.ok += 1,
            Outcome::Fail => c.records.fail += 1,
            Outcome::Info => c.records.info += 1,
        }
    }
    c.distinct_values = values.len();
    for v in &facts.views {
        if v.is_drain() {
            c.records_drained += v.records.len();
        } else {
            c.records_read += v.records.len();
        }
    }
    for f in &facts.faults {
        *c.faults.entry(f.kind.clone()).or_default() += 1;
    }
    c
}

fn stat(properties: &[PropertyResult], id: u8, key: &str) -> usize {
    properties
        .iter()
        .find(|p| p.id == id)
        .and_then(|p| p.stats.get(key))
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize
}

pub fn summary(facts: &Facts, properties: &[PropertyResult]) -> Summary {
    Summary {
        ops: facts.client_ops,
        acked: facts
            .attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Ok)
            .count(),
        lost: stat(properties, 1, "lost"),
        duplicated: stat(properties, 5, "server_made_duplicates"),
        retried_duplicates: stat(properties, 5, "retried_duplicates"),
        anomalies: properties.iter().map(|p| p.anomaly_count).sum(),
    }
}

/// Properties that must have been checked for a run to be valid: without them (no final drain,
/// say) the verdict is unknown, which is not valid.
pub const REQUIRED: std::ops::RangeInclusive<u8> = 1..=8;

/// Valid when no property found an anomaly, every required property was checked, and the harness
/// did its job.
pub fn is_valid(properties: &[PropertyResult], harness_error: Option<&str>) -> bool {
    harness_error.is_none()
        && properties.iter().all(|p| {
            p.verdict == Verdict::Valid
                || (p.verdict == Verdict::NotChecked && !REQUIRED.contains(&p.id))
        })
}

pub fn last_line(valid: bool, s: &Summary) -> String {
    format!(
        "jepsen: valid={valid} ops={} acked={} lost={} duplicated={} anomalies={}",
        s.ops, s.acked, s.lost, s.duplicated, s.anomalies
    )
}

/// One line per property, for the console.
pub fn property_lines(properties: &[PropertyResult]) -> Vec<String> {
    properties
        .iter()
        .map(|p| {
            let verdict = match p.verdict {
                Verdict::Valid => match &p.reason {
                    Some(note) => format!("valid ({note})"),
                    None => "valid".to_string(),
                },
                Verdict::Invalid => format!("INVALID ({} anomalies)", p.anomaly_count),
                Verdict::NotChecked => format!(
                    "not checked: {}",
                    p.reason.as_deref().unwrap_or("no reason given")
                ),
            };
            let first = p
                .anomalies
                .first()
                .map(|a| format!("\n      first: {} (ops {:?})", a.message, a.ops))
                .unwrap_or_default();
            format!("  {:>2} {:<38} {verdict}{first}", p.id, p.name)
        })
        .collect()
}

pub fn write(path: &Path, results: &Results) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::fixture::H;
    use crate::checkers::{CheckConfig, run_all};

    #[test]
    fn the_last_line_has_the_documented_shape() {
        let s = Summary {
            ops: 10,
            acked: 7,
            ..Summary::default()
        };
        assert_eq!(
            last_line(true, &s),
            "jepsen: valid=true ops=10 acked=7 lost=0 duplicated=0 anomalies=0"
        );
    }

    #[test]
    fn a_lost_record_makes_the_run_invalid_and_is_counted() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1), ("b", "s0", 2)]);
        h.append("w1", 0, 5, &[("c", "s0", Outcome::Info, None)]);
        h.drain(1, "s0", 9, &[(1, "a")]);
        let facts = h.facts();
        let props = run_all(&facts, &CheckConfig::default());
        let s = summary(&facts, &props);
        assert_eq!((s.acked, s.lost), (2, 1));
        assert!(!is_valid(&props, None));
        let c = counts(&facts);
        assert_eq!((c.appends.ok, c.appends.info), (1, 1));
        assert_eq!((c.records.ok, c.records.info), (2, 1));
        assert_eq!(c.records_drained, 1);
        assert!(property_lines(&props)[0].contains("INVALID"));
    }

    #[test]
    fn a_harness_error_is_never_valid() {
        assert!(is_valid(&[], None));
        assert!(!is_valid(&[], Some("nodes never became ready")));
    }

    #[test]
    fn an_unchecked_required_property_is_not_valid() {
        let mut h = H::default();
        h.append_ok("w0", 0, 5, &[("a", "s0", 1)]);
        let props = run_all(&h.facts(), &CheckConfig::default());
        assert!(props.iter().all(|p| p.verdict != Verdict::Invalid));
        assert!(
            !is_valid(&props, None),
            "no drain: property 1 was not checked"
        );
    }
}
