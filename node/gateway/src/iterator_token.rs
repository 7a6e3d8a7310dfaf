//! Shard iterators: opaque tokens naming (stream, shard, position, issue time), authenticated
//! with an HMAC-SHA256 under the cluster's secret so a client cannot forge or alter one, and
//! expiring five minutes after issue as Kinesis's do.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use streamd_proto::limits::ITERATOR_TTL_MS;

const MAC_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IteratorToken {
    pub stream: String,
    pub shard_id: u64,
    pub group_id: u64,
    /// The next sequence number to return.
    pub position: u128,
    pub issued_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IteratorError {
    #[error("Invalid ShardIterator.")]
    Malformed,
    #[error(
        "Iterator expired. The iterator was created at time {issued_ms} while right now it is {now_ms} which is further in the future than the tolerated delay of 300000 milliseconds."
    )]
    Expired { issued_ms: i64, now_ms: i64 },
}

fn mac(secret: &[u8], payload: &[u8]) -> Result<[u8; MAC_BYTES], IteratorError> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| IteratorError::Malformed)?;
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    Ok(out)
}

impl IteratorToken {
    pub fn encode(&self, secret: &[u8]) -> String {
        let mut bytes = bincode::serialize(self).unwrap_or_default();
        if let Ok(tag) = mac(secret, &bytes) {
            bytes.extend_from_slice(&tag);
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(token: &str, secret: &[u8], now_ms: i64) -> Result<IteratorToken, IteratorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| IteratorError::Malformed)?;
        if bytes.len() <= MAC_BYTES {
            return Err(IteratorError::Malformed);
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
        let mut m = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| IteratorError::Malformed)?;
        m.update(payload);
        m.verify_truncated_left(tag)
            .map_err(|_| IteratorError::Malformed)?;
        let t: IteratorToken =
            bincode::deserialize(payload).map_err(|_| IteratorError::Malformed)?;
        if now_ms - t.issued_ms > ITERATOR_TTL_MS {
            return Err(IteratorError::Expired {
                issued_ms: t.issued_ms,
                now_ms,
            });
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> IteratorToken {
        IteratorToken {
            stream: "s".into(),
            shard_id: 3,
            group_id: 7,
            position: 42,
            issued_ms: 1_000,
        }
    }

    #[test]
    fn round_trip() {
        let s = token().encode(b"secret");
        assert_eq!(
            IteratorToken::decode(&s, b"secret", 2_000).unwrap(),
            token()
        );
    }

    #[test]
    fn tampering_is_detected() {
        let s = token().encode(b"secret");
        for i in 0..s.len() {
            let mut b = s.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            if t != s {
                assert_eq!(
                    IteratorToken::decode(&t, b"secret", 2_000),
                    Err(IteratorError::Malformed)
                );
            }
        }
        assert_eq!(
            IteratorToken::decode(&s, b"other", 2_000),
            Err(IteratorError::Malformed)
        );
        assert_eq!(
            IteratorToken::decode("garbage!", b"secret", 2_000),
            Err(IteratorError::Malformed)
        );
    }

    #[test]
    fn expires_after_five_minutes() {
        let s = token().encode(b"secret");
        assert!(IteratorToken::decode(&s, b"secret", 1_000 + 300_000).is_ok());
        assert!(matches!(
            IteratorToken::decode(&s, b"secret", 1_000 + 300_001),
            Err(IteratorError::Expired { .. })
        ));
    }
}
