//! IAM's wildcards: `*` matches any run of characters (including none), `?` exactly one.
//!
//! Written here rather than taken from a crate: IAM's rules are two metacharacters with no
//! escapes, classes or path separators, and the glob crates (glob, globset, wildmatch) either
//! give `/` a meaning IAM does not or pull in a regex engine. The matcher keeps only the last
//! `*` as a backtrack point, so it runs in O(pattern × value) at worst: a policy written by a
//! tenant cannot make a request pay an exponential match.

/// Whether `value` matches `pattern`, comparing characters exactly (ARNs, condition strings).
pub(crate) fn matches(pattern: &str, value: &str) -> bool {
    if pattern.is_ascii() && value.is_ascii() {
        matches_units(pattern.as_bytes(), value.as_bytes(), b'*', b'?', |a, b| {
            a == b
        })
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let v: Vec<char> = value.chars().collect();
        matches_units(&p, &v, '*', '?', |a, b| a == b)
    }
}

/// Whether `value` matches `pattern`, ignoring case (action names: `kinesis:putrecord` is
/// `kinesis:PutRecord` to IAM).
pub(crate) fn matches_ignore_case(pattern: &str, value: &str) -> bool {
    if pattern.is_ascii() && value.is_ascii() {
        matches_units(pattern.as_bytes(), value.as_bytes(), b'*', b'?', |a, b| {
            a.eq_ignore_ascii_case(&b)
        })
    } else {
        let p: Vec<char> = pattern.chars().collect();
        let v: Vec<char> = value.chars().collect();
        matches_units(&p, &v, '*', '?', |a, b| {
            a.to_lowercase().eq(b.to_lowercase())
        })
    }
}

/// Whether the ARN `value` matches the ARN pattern, one colon-separated field at a time, as
/// IAM compares `Resource` entries and the `Arn*` condition operators: a `*` in the region
/// field cannot swallow the account. The sixth field (the resource) may itself hold colons, as
/// a consumer ARN's does. A pattern with fewer than six fields (`*`, `arn:aws:kinesis:*`) is
/// matched against the whole value.
pub(crate) fn arn_matches(pattern: &str, value: &str) -> bool {
    let pattern_fields: Vec<&str> = pattern.splitn(6, ':').collect();
    if pattern_fields.len() < 6 {
        return matches(pattern, value);
    }
    let value_fields: Vec<&str> = value.splitn(6, ':').collect();
    value_fields.len() == 6
        && pattern_fields
            .iter()
            .zip(&value_fields)
            .all(|(p, v)| matches(p, v))
}

fn matches_units<T: Copy + PartialEq>(
    pattern: &[T],
    value: &[T],
    star: T,
    question: T,
    eq: impl Fn(T, T) -> bool,
) -> bool {
    let (mut p, mut v) = (0, 0);
    // The most recent `*` and the value position it has been stretched to. An earlier `*`
    // never needs revisiting: whatever it could absorb, the later one can too.
    let mut backtrack: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(&c) if c == star => {
                backtrack = Some((p, v));
                p += 1;
            }
            Some(&c) if c == question || eq(c, value[v]) => {
                p += 1;
                v += 1;
            }
            _ => match backtrack {
                Some((star_at, absorbed_to)) => {
                    backtrack = Some((star_at, absorbed_to + 1));
                    p = star_at + 1;
                    v = absorbed_to + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("stream/s1", "stream/s1"));
        assert!(!matches("stream/s1", "stream/s10"));
        assert!(!matches("stream/s10", "stream/s1"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything at all"));
        assert!(matches("logs-*", "logs-"));
        assert!(matches("logs-*", "logs-eu/1"));
        assert!(!matches("logs-*", "metrics-1"));
        assert!(matches("*-prod", "api-prod"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("a**b", "ab"));
    }

    #[test]
    fn star_backtracks_past_a_false_start() {
        // The first "ab" tempts the matcher; only the second leads to a match.
        assert!(matches("*abc", "ababc"));
        assert!(matches("*a*abc", "xaxabxabc"));
        assert!(!matches("*abc", "ababd"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("s?", "s1"));
        assert!(!matches("s?", "s"));
        assert!(!matches("s?", "s12"));
        assert!(matches("s??", "s12"));
        assert!(matches("?*", "x"));
        assert!(!matches("?*", ""));
    }

    #[test]
    fn question_mark_counts_characters_not_bytes() {
        assert!(matches("caf?", "café"));
        assert!(matches("?", "é"));
        assert!(!matches("??", "é"));
    }

    #[test]
    fn exact_matching_is_case_sensitive() {
        assert!(!matches("stream/Logs", "stream/logs"));
        assert!(!matches("Stream/*", "stream/logs"));
    }

    #[test]
    fn ignore_case_folds_ascii_and_unicode() {
        assert!(matches_ignore_case("kinesis:Get*", "KINESIS:getrecords"));
        assert!(matches_ignore_case(
            "kinesis:putrecord",
            "kinesis:PutRecord"
        ));
        assert!(!matches_ignore_case(
            "kinesis:PutRecord",
            "kinesis:PutRecords"
        ));
        assert!(matches_ignore_case("ÉTÉ", "été"));
    }

    #[test]
    fn metacharacters_in_the_value_are_plain_characters() {
        assert!(!matches("a", "*"));
        assert!(!matches("a", "?"));
        assert!(matches("*", "*"));
        assert!(matches("?", "?"));
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        // A backtracking matcher takes exponential time on this; ours does at most
        // pattern × value steps (about 3,000 here).
        let pattern = "a*".repeat(30) + "b";
        let value = "a".repeat(100);
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &value));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn arn_fields_are_matched_one_by_one() {
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/logs-app";
        assert!(arn_matches("arn:aws:kinesis:*:*:stream/logs-*", arn));
        assert!(arn_matches(
            "arn:aws:kinesis:us-*:000000000000:stream/*",
            arn
        ));
        assert!(!arn_matches("arn:aws:kinesis:*:111111111111:stream/*", arn));
        assert!(!arn_matches("arn:aws:kinesis:us-*::stream/logs-app", arn));
    }

    #[test]
    fn a_star_in_one_arn_field_does_not_run_into_the_next() {
        let pattern = "arn:aws:kinesis:*:*:stream/s1";
        let value = "arn:aws:kinesis:us-east-1:000000000000:x:stream/s1";
        // As one string the account `*` would swallow "000000000000:x".
        assert!(matches(pattern, value));
        assert!(!arn_matches(pattern, value));
    }

    #[test]
    fn arn_resource_field_keeps_its_colons() {
        let consumer = "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/app:1700000000";
        assert!(arn_matches(
            "arn:aws:kinesis:*:*:stream/s1/consumer/*",
            consumer
        ));
        assert!(arn_matches(
            "arn:aws:kinesis:*:*:stream/s1/consumer/app:*",
            consumer
        ));
        assert!(!arn_matches("arn:aws:kinesis:*:*:stream/s1", consumer));
    }

    #[test]
    fn short_arn_patterns_match_the_whole_value() {
        let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/s1";
        assert!(arn_matches("*", arn));
        assert!(arn_matches("arn:aws:kinesis:*", arn));
        assert!(!arn_matches("arn:aws:s3:*", arn));
    }

    #[test]
    fn a_six_field_pattern_never_matches_a_non_arn() {
        assert!(!arn_matches("arn:aws:kinesis:*:*:*", "*"));
        assert!(!arn_matches("arn:aws:kinesis:*:*:*", "arn:aws:kinesis"));
    }
}
