//! Consumer-group leases: which worker of an application processes which shard of a stream, and
//! how far it got.
//!
//! A lease is a compare-and-set record, as KCL keeps in DynamoDB, but replicated through the
//! metadata group. Its `counter` grows on every change of owner and fences a worker that lost
//! its lease: renewals and checkpoints must name the counter they hold. Expiry is judged on the
//! metadata leader's clock, stamped into the command when it is proposed (`now_ms`), and never
//! goes backwards across leader changes (`LeaseTable::clock_ms`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streamd_proto::ErrorCode;

/// The checkpoint a worker writes once it read a closed shard to its end.
pub const SHARD_END: &str = "SHARD_END";

/// Longest lease a worker may ask for: a dead worker's shards must not stall longer than this.
pub const MAX_LEASE_MS: u64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: Option<String>,
    /// Grows on every change of owner; a worker's claim on the lease is (owner, counter).
    pub counter: u64,
    pub expires_ms: i64,
    /// The last sequence number processed, or [`SHARD_END`].
    pub checkpoint: Option<String>,
}

impl Lease {
    pub fn is_held(&self, now_ms: i64) -> bool {
        self.owner.is_some() && self.expires_ms > now_ms
    }
}

/// The leases of one application on one stream, by shard id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTable {
    pub leases: BTreeMap<String, Lease>,
    /// The newest clock reading applied, so expiry never moves backwards when the metadata
    /// leader (and so the clock) changes.
    pub clock_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseOp {
    /// Takes the lease when it is free, expired or already ours; with `steal`, also from a live
    /// owner, provided its counter is still `expect_counter` (rebalancing takes one lease at a
    /// time from the busiest worker).
    Take {
        steal: bool,
        expect_counter: Option<u64>,
        lease_ms: u64,
    },
    Renew {
        counter: u64,
        lease_ms: u64,
    },
    Checkpoint {
        counter: u64,
        checkpoint: String,
    },
    Release {
        counter: u64,
    },
}

/// Why a lease operation was refused: a catalogue error and a message.
pub(crate) type LeaseError = (ErrorCode, String);

impl LeaseTable {
    /// Applies `op` by `owner` on `shard` at leader time `now_ms`; the lease as it stands after.
    pub fn apply(
        &mut self,
        shard: &str,
        owner: &str,
        op: &LeaseOp,
        now_ms: i64,
    ) -> Result<Lease, LeaseError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let now = self.clock_ms;
        let lease = self.leases.entry(shard.to_string()).or_default();
        let mine = lease.owner.as_deref() == Some(owner);
        let lost = |lease: &Lease| -> LeaseError {
            (
                ErrorCode::LeaseConflict,
                format!(
                    "the lease on {shard} is held by {} with counter {}; {owner} no longer holds it",
                    lease.owner.as_deref().unwrap_or("nobody"),
                    lease.counter
                ),
            )
        };
        match op {
            LeaseOp::Take {
                steal,
                expect_counter,
                lease_ms,
            } => {
                let free = !lease.is_held(now);
                let stealable = *steal && expect_counter.is_some_and(|c| c == lease.counter);
                if !(free || mine || stealable) {
                    return Err(lost(lease));
                }
                if !mine || !lease.is_held(now) {
                    lease.counter += 1;
                }
                lease.owner = Some(owner.to_string());
                lease.expires_ms = now.saturating_add((*lease_ms).min(MAX_LEASE_MS) as i64);
            }
            LeaseOp::Renew { counter, lease_ms } => {
                if !(mine && lease.counter == *counter && lease.is_held(now)) {
                    return Err(lost(lease));
                }
                lease.expires_ms = now.saturating_add((*lease_ms).min(MAX_LEASE_MS) as i64);
            }
            LeaseOp::Checkpoint {
                counter,
                checkpoint,
            } => {
                if !(mine && lease.counter == *counter && lease.is_held(now)) {
                    return Err(lost(lease));
                }
                lease.checkpoint = Some(checkpoint.clone());
            }
            LeaseOp::Release { counter } => {
                if !(mine && lease.counter == *counter) {
                    return Err(lost(lease));
                }
                lease.owner = None;
                lease.expires_ms = 0;
            }
        }
        Ok(lease.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(lease_ms: u64) -> LeaseOp {
        LeaseOp::Take {
            steal: false,
            expect_counter: None,
            lease_ms,
        }
    }

    #[test]
    fn a_live_lease_is_fenced_and_an_expired_one_moves_with_a_new_counter() {
        let mut t = LeaseTable::default();
        let a = t.apply("s0", "a", &take(1_000), 10_000).unwrap();
        assert_eq!((a.owner.as_deref(), a.counter), (Some("a"), 1));
        // Held: b cannot take it, a can renew and checkpoint.
        assert!(t.apply("s0", "b", &take(1_000), 10_500).is_err());
        t.apply(
            "s0",
            "a",
            &LeaseOp::Renew {
                counter: 1,
                lease_ms: 1_000,
            },
            10_600,
        )
        .unwrap();
        t.apply(
            "s0",
            "a",
            &LeaseOp::Checkpoint {
                counter: 1,
                checkpoint: "42".into(),
            },
            10_700,
        )
        .unwrap();
        // Expired: b takes it, and a's old claim is fenced off.
        let b = t.apply("s0", "b", &take(1_000), 11_700).unwrap();
        assert_eq!((b.owner.as_deref(), b.counter), (Some("b"), 2));
        assert_eq!(b.checkpoint.as_deref(), Some("42"));
        let fenced = LeaseOp::Checkpoint {
            counter: 1,
            checkpoint: "43".into(),
        };
        assert_eq!(
            t.apply("s0", "a", &fenced, 11_800).unwrap_err().0,
            ErrorCode::LeaseConflict
        );
    }

    #[test]
    fn a_steal_needs_the_counter_it_saw_and_the_clock_never_goes_back() {
        let mut t = LeaseTable::default();
        t.apply("s0", "a", &take(5_000), 10_000).unwrap();
        let steal = |c| LeaseOp::Take {
            steal: true,
            expect_counter: Some(c),
            lease_ms: 5_000,
        };
        assert!(t.apply("s0", "b", &steal(7), 10_001).is_err());
        assert_eq!(t.apply("s0", "b", &steal(1), 10_002).unwrap().counter, 2);
        // A new leader with a slower clock does not revive expired leases or shorten live ones.
        let l = t
            .apply(
                "s0",
                "b",
                &LeaseOp::Renew {
                    counter: 2,
                    lease_ms: 5_000,
                },
                1,
            )
            .unwrap();
        assert_eq!(l.expires_ms, 15_002);
    }
}
