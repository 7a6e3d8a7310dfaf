//! Sequence numbers as the checker sees them: decimal strings compared as integers of any length
//! (streamd's are 56 digits, beyond `u128`; the API allows up to 128). The checker relies on no
//! particular layout.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Seq(String);

impl Seq {
    /// A decimal of one or more digits; leading zeros are dropped.
    pub fn parse(s: &str) -> Option<Seq> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = s.trim_start_matches('0');
        Some(Seq(if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The next integer.
    pub fn next(&self) -> Seq {
        let mut digits: Vec<u8> = self.0.bytes().collect();
        for d in digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return Seq(String::from_utf8_lossy(&digits).into_owned());
            }
        }
        Seq(format!("1{}", String::from_utf8_lossy(&digits)))
    }
}

impl Ord for Seq {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<u128> for Seq {
    fn from(n: u128) -> Seq {
        Seq(n.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_integers_of_any_length() {
        let p = |s: &str| Seq::parse(s).unwrap();
        let a = p("10000000000000000000000000000003626777458843887524315136");
        let b = p("10000000000000000000000000000003626777458843887524315137");
        assert!(a < b);
        assert!(p("9") < p("10"));
        assert_eq!(p("007"), p("7"));
        assert_eq!(p("000"), p("0"));
        assert!(
            Seq::parse("").is_none() && Seq::parse("1a").is_none() && Seq::parse("-1").is_none()
        );
        assert_eq!(a.next(), b);
        assert_eq!(p("199").next(), p("200"));
        assert_eq!(p("999").next(), p("1000"));
    }
}
