//! Timestamps as people type and read them: `2026-11-26T08:00:00Z` or epoch milliseconds
//! (durations are `streamd_client::duration`). Civil-date arithmetic is a few lines, not worth
//! a date crate (the Kinesis shim makes the same choice in node/kinesis/src/codec/mod.rs).

pub(crate) use streamd_client::duration::parse_duration;

/// Epoch milliseconds of `s`: all digits are epoch milliseconds; otherwise RFC 3339
/// (`2026-11-26T08:00:00Z`, `2026-11-26T09:00:00.5+01:00`).
pub(crate) fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| format!("timestamp {s:?} is out of range"));
    }
    parse_rfc3339_millis(s).ok_or_else(|| {
        format!(
            "not a timestamp: {s:?} (use RFC 3339 like 2026-11-26T08:00:00Z, or epoch milliseconds)"
        )
    })
}

/// `2026-11-26T08:00:00.123Z`.
pub(crate) fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(sec);
    let mut rest = s.get(19..)?;
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Sub-millisecond digits are dropped: arrival times have millisecond precision.
        let ms: String = frac[..digits.min(3)].chars().collect();
        millis = format!("{ms:0<3}").parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest.get(1..)?;
            if hm.len() != 5 || hm.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i64 = hm.get(0..2)?.parse().ok()?;
            let om: i64 = hm.get(3..5)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some((secs - offset_secs) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = parse_timestamp("2026-11-26T08:00:00.123Z").unwrap();
        assert_eq!(format_millis(ms), "2026-11-26T08:00:00.123Z");
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(parse_timestamp("1764144000000").unwrap(), 1_764_144_000_000);
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00.5Z").unwrap() % 1000,
            500
        );
    }

    #[test]
    fn bad_timestamps_say_what_to_type() {
        for bad in [
            "yesterday",
            "2023-02-29T00:00:00Z",
            "2026-11-26T08:00:00",
            "2026-13-01T00:00:00Z",
        ] {
            let e = parse_timestamp(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
