//! A condition's policy values, parsed once when the policy loads, and how one request value
//! is compared with them.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use ipnet::IpNet;

use super::operator::{Family, Ordering};
use crate::glob;

/// The policy side of one condition (one operator, one key), typed by operator family so a
/// request never pays for parsing the policy again and a bad value is refused at load time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expected {
    Strings(Vec<String>),
    /// Already lowercased.
    StringsIgnoreCase(Vec<String>),
    Patterns(Vec<String>),
    Arns(Vec<String>),
    Numbers(Ordering, Vec<f64>),
    /// Milliseconds since the Unix epoch.
    Dates(Ordering, Vec<i64>),
    Bools(Vec<bool>),
    Networks(Vec<IpNet>),
    /// `Null`: `true` asks that the key be absent, `false` that it be present.
    Null(Vec<bool>),
}

impl Expected {
    /// `raw` is the policy's values as text; the error says what is wrong with which one.
    pub(crate) fn parse(family: Family, raw: Vec<String>) -> Result<Self, String> {
        Ok(match family {
            Family::String | Family::Binary => Expected::Strings(raw),
            Family::StringIgnoreCase => {
                Expected::StringsIgnoreCase(raw.iter().map(|s| s.to_lowercase()).collect())
            }
            Family::StringLike => Expected::Patterns(raw),
            Family::Arn => Expected::Arns(raw),
            Family::Numeric(ordering) => {
                Expected::Numbers(ordering, each(&raw, parse_number, "is not a number")?)
            }
            Family::Date(ordering) => Expected::Dates(
                ordering,
                each(&raw, parse_date, "is not an ISO 8601 date or epoch seconds")?,
            ),
            Family::Bool => Expected::Bools(each(&raw, parse_bool, "is not true or false")?),
            Family::Null => Expected::Null(each(&raw, parse_bool, "is not true or false")?),
            Family::IpAddress => Expected::Networks(each(
                &raw,
                parse_network,
                "is not an IP address or CIDR block",
            )?),
        })
    }

    /// Whether one request value matches at least one policy value (the values of one key
    /// are OR-ed). A request value that cannot be read as the family's type matches nothing.
    pub(crate) fn any_matches(&self, request: &str) -> bool {
        match self {
            Expected::Strings(values) => values.iter().any(|v| v == request),
            Expected::StringsIgnoreCase(values) => {
                let request = request.to_lowercase();
                values.contains(&request)
            }
            Expected::Patterns(patterns) => patterns.iter().any(|p| glob::matches(p, request)),
            Expected::Arns(patterns) => patterns.iter().any(|p| glob::arn_matches(p, request)),
            Expected::Numbers(ordering, values) => {
                parse_number(request).is_some_and(|r| values.iter().any(|v| ordering.holds(&r, v)))
            }
            Expected::Dates(ordering, values) => {
                parse_date(request).is_some_and(|r| values.iter().any(|v| ordering.holds(&r, v)))
            }
            Expected::Bools(values) => parse_bool(request).is_some_and(|r| values.contains(&r)),
            Expected::Networks(networks) => request
                .parse::<IpAddr>()
                .is_ok_and(|ip| networks.iter().any(|n| n.contains(&ip.to_canonical()))),
            // Null looks at whether the key exists, never at a value.
            Expected::Null(_) => false,
        }
    }
}

fn each<T>(
    raw: &[String],
    parse: impl Fn(&str) -> Option<T>,
    problem: &str,
) -> Result<Vec<T>, String> {
    raw.iter()
        .map(|s| parse(s).ok_or_else(|| format!("{s:?} {problem}")))
        .collect()
}

fn parse_number(s: &str) -> Option<f64> {
    // Rust reads "inf" and "NaN" as floats; IAM numbers are finite.
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A single address is a network of one.
fn parse_network(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|net| match net {
            // An IPv4-mapped IPv6 block names IPv4 addresses; requests carry those as IPv4.
            IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) if v6.prefix_len() >= 96 => {
                    IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net)
                }
                _ => net,
            },
            IpNet::V4(_) => net,
        })
        .map(|net| net.trunc())
}

/// The forms IAM accepts for dates, as milliseconds since the epoch: epoch seconds (`aws:EpochTime`),
/// full ISO 8601 with an offset (`2024-01-01T00:00:00Z`, `...+02:00`, fractions allowed), ISO
/// 8601 without an offset (read as UTC), and a bare date (midnight UTC).
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(secs) = parse_epoch_seconds(s) {
        return Some((secs * 1000.0).round() as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_millis());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// `[-]digits[.digits]`; anything else (`2024-01-01` included) is left to the date forms.
fn parse_epoch_seconds(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn dates_in_every_accepted_form() {
        let midnight = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        assert_eq!(parse_date("2024-01-01T00:00:00Z"), Some(midnight));
        assert_eq!(parse_date("2024-01-01T02:00:00+02:00"), Some(midnight));
        assert_eq!(parse_date("2024-01-01T00:00:00.250Z"), Some(midnight + 250));
        assert_eq!(parse_date("2024-01-01T00:00:00"), Some(midnight));
        assert_eq!(parse_date("2024-01-01T00:00"), Some(midnight));
        assert_eq!(parse_date("2024-01-01"), Some(midnight));
        assert_eq!(parse_date("1704067200"), Some(midnight));
        assert_eq!(parse_date("1704067200.5"), Some(midnight + 500));
        assert_eq!(parse_date("0"), Some(0));
    }

    #[test]
    fn non_dates_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-02-30T00:00:00Z",
            "1.2.3",
            "--1",
            "inf",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_are_finite_decimals() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-2.5"), Some(-2.5));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("ten"), None);
    }

    #[test]
    fn bad_policy_values_name_the_value() {
        let err =
            Expected::parse(Family::Numeric(Ordering::Less), strings(&["10", "ten"])).unwrap_err();
        assert_eq!(err, "\"ten\" is not a number");
        assert!(Expected::parse(Family::IpAddress, strings(&["10.0.0.0/33"])).is_err());
        assert!(Expected::parse(Family::Bool, strings(&["yes"])).is_err());
        assert!(Expected::parse(Family::Date(Ordering::Less), strings(&["soon"])).is_err());
        assert!(Expected::parse(Family::Null, strings(&["maybe"])).is_err());
    }

    #[test]
    fn networks_match_v4_and_v6_and_single_addresses() {
        let nets = Expected::parse(
            Family::IpAddress,
            strings(&["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]),
        )
        .unwrap();
        assert!(nets.any_matches("203.0.113.200"));
        assert!(!nets.any_matches("203.0.114.1"));
        assert!(nets.any_matches("2001:db8:1::5"));
        assert!(!nets.any_matches("2001:db9::1"));
        assert!(nets.any_matches("198.51.100.7"));
        assert!(!nets.any_matches("198.51.100.8"));
        assert!(!nets.any_matches("not an address"));
    }

    #[test]
    fn ipv4_mapped_requests_match_ipv4_blocks() {
        let nets = Expected::parse(Family::IpAddress, strings(&["10.0.0.0/8"])).unwrap();
        assert!(nets.any_matches("::ffff:10.1.2.3"));
        let mapped = Expected::parse(Family::IpAddress, strings(&["::ffff:10.0.0.0/104"])).unwrap();
        assert!(mapped.any_matches("10.9.9.9"));
        assert!(!mapped.any_matches("11.0.0.1"));
    }

    #[test]
    fn ip_blocks_with_host_bits_set_still_name_their_network() {
        let nets = Expected::parse(Family::IpAddress, strings(&["10.1.2.3/16"])).unwrap();
        assert!(nets.any_matches("10.1.200.1"));
    }

    #[test]
    fn ignore_case_folds_both_sides() {
        let e = Expected::parse(Family::StringIgnoreCase, strings(&["Prod"])).unwrap();
        assert!(e.any_matches("PROD"));
        assert!(e.any_matches("prod"));
        assert!(!e.any_matches("prod2"));
    }

    #[test]
    fn bools_read_either_case() {
        let e = Expected::parse(Family::Bool, strings(&["TRUE"])).unwrap();
        assert!(e.any_matches("true"));
        assert!(!e.any_matches("false"));
        assert!(!e.any_matches("1"));
    }

    #[test]
    fn a_request_value_of_the_wrong_type_matches_nothing() {
        let n = Expected::parse(Family::Numeric(Ordering::Less), strings(&["10"])).unwrap();
        assert!(n.any_matches("9"));
        assert!(!n.any_matches("nine"));
        let d = Expected::parse(Family::Date(Ordering::Greater), strings(&["2024-01-01"])).unwrap();
        assert!(d.any_matches("2024-06-01T00:00:00Z"));
        assert!(!d.any_matches("June"));
    }
}
