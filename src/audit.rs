//! The audit log's hash chain: every submission, rejection, routing decision, publication,
//! acknowledgment and refusal is appended as a record whose hash covers its own content, its
//! position and the previous record's hash. Changing, removing or reordering any record breaks
//! the chain from that record on, and [`verify`] names the first one.
//!
//! Records are appended in the same transaction as what they describe ([`append`], through the
//! store's [`Ledger`]); this module defines the records, their hashes, the append and the walk.

use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::store::{Ledger, Store, StoreError, WriteMode};

/// The hash the first record points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, by whom, to what. `detail` never holds secrets: no tokens, keys or
/// certificates, only ids, codes and reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: Millis,
    /// The participant id, or `anonymous` for an unauthenticated caller, or `gateway`.
    pub participant: String,
    /// e.g. `submission.accepted`, `submission.refused`, `delivery.published`.
    pub action: &'static str,
    /// The document, delivery or request the record is about.
    pub subject: String,
    pub detail: Value,
}

pub use crate::store::AuditRecord;

/// The hash of a record at position `seq` after `prev_hash`: SHA-256 over an unambiguous JSON
/// array of every field, in lower-case hex.
pub fn record_hash(prev_hash: &str, seq: i64, at: Millis, participant: &str, action: &str, subject: &str, detail: &str) -> String {
    let canonical = serde_json::json!([prev_hash, seq, at, participant, action, subject, detail]).to_string();
    crate::gateway::sha256_hex(canonical.as_bytes())
}

/// Appends `entry` to the chain, in the transaction of `ledger`; returns its hash.
pub fn append(ledger: &mut dyn Ledger, entry: &AuditEntry) -> Result<String, StoreError> {
    let (last_seq, prev_hash) = ledger.audit_head()?.unwrap_or((0, GENESIS.to_owned()));
    let seq = last_seq + 1;
    let detail = entry.detail.to_string();
    let hash = record_hash(&prev_hash, seq, entry.at, &entry.participant, entry.action, &entry.subject, &detail);
    ledger.insert_audit_record(&AuditRecord {
        seq,
        at: entry.at,
        participant: entry.participant.clone(),
        action: entry.action.to_owned(),
        subject: entry.subject.clone(),
        detail,
        prev_hash,
        hash: hash.clone(),
    })?;
    Ok(hash)
}

/// Appends a record on its own (for refusals; everything else is audited in the same
/// transaction as the change it records). Returns its hash.
pub async fn record(store: &dyn Store, entry: AuditEntry) -> Result<String, StoreError> {
    store.write_with(WriteMode::Undoable, move |l| append(l, &entry)).await
}

/// Appends several records in one commit.
pub async fn record_all(store: &dyn Store, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
    store
        .write_with(WriteMode::Undoable, move |l| {
            for e in &entries {
                append(l, e)?;
            }
            Ok(())
        })
        .await
}

/// An entry of `participant` about `subject`.
pub fn entry(at: Millis, participant: &str, action: &'static str, subject: String, detail: Value) -> AuditEntry {
    AuditEntry { at, participant: participant.to_owned(), action, subject, detail }
}

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    #[error("audit record {seq} was changed: its content does not match its hash")]
    Changed { seq: i64 },
    #[error("audit record {expected} was removed: the chain goes from record {previous} to record {found}")]
    Removed { expected: i64, previous: i64, found: i64 },
    #[error("audit record {seq} is out of order: it holds the record that belongs at position {belongs_at}")]
    Reordered { seq: i64, belongs_at: i64 },
    #[error("audit record {seq} does not follow record {previous}: its link to the previous hash is wrong")]
    Unlinked { seq: i64, previous: i64 },
}

/// What a successful walk found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    pub records: u64,
    /// The last record's hash (the genesis hash when the log is empty).
    pub head: String,
}

/// Walks records in `seq` order and checks every hash and link.
pub fn verify(records: impl IntoIterator<Item = AuditRecord>) -> Result<ChainSummary, ChainBreak> {
    verify_expecting(records, &[]).map(|(summary, _)| summary)
}

/// [`verify`], also looking for `expected` hashes (from receipts, or a head kept elsewhere):
/// returns those not found in the chain. A receipt whose hash is missing means its record was
/// removed or the log replaced; a kept head that is missing means the log was cut short.
pub fn verify_expecting(
    records: impl IntoIterator<Item = AuditRecord>,
    expected: &[String],
) -> Result<(ChainSummary, Vec<String>), ChainBreak> {
    let mut missing: Vec<String> = expected.iter().map(|h| h.to_ascii_lowercase()).collect();
    let mut prev_hash = GENESIS.to_owned();
    let mut prev_seq = 0i64;
    let mut count = 0u64;
    for r in records {
        let expected = prev_seq + 1;
        if r.seq != expected {
            return Err(ChainBreak::Removed { expected, previous: prev_seq, found: r.seq });
        }
        let own = record_hash(&r.prev_hash, r.seq, r.at, &r.participant, &r.action, &r.subject, &r.detail);
        if own != r.hash {
            // A record moved from elsewhere is consistent with another position.
            let moved = (r.seq - 8..=r.seq + 8).filter(|s| *s != r.seq && *s > 0).find(|s| {
                record_hash(&r.prev_hash, *s, r.at, &r.participant, &r.action, &r.subject, &r.detail) == r.hash
            });
            return Err(match moved {
                Some(belongs_at) => ChainBreak::Reordered { seq: r.seq, belongs_at },
                None => ChainBreak::Changed { seq: r.seq },
            });
        }
        if r.prev_hash != prev_hash {
            return Err(ChainBreak::Unlinked { seq: r.seq, previous: prev_seq });
        }
        missing.retain(|h| *h != r.hash);
        prev_hash = r.hash;
        prev_seq = r.seq;
        count += 1;
    }
    Ok((ChainSummary { records: count, head: prev_hash }, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let detail = format!("{{\"n\":{seq}}}");
                let hash = record_hash(&prev, seq, 1000 + seq, "p", "a", "s", &detail);
                let r = AuditRecord {
                    seq,
                    at: 1000 + seq,
                    participant: "p".into(),
                    action: "a".into(),
                    subject: "s".into(),
                    detail,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_each_kind_of_tampering_is_named() {
        let ok = chain(6);
        assert_eq!(verify(ok.clone()).unwrap().records, 6);
        assert_eq!(verify(Vec::new()).unwrap().head, GENESIS);
        let (_, missing) = verify_expecting(ok.clone(), &[ok[2].hash.clone(), "f".repeat(64)]).unwrap();
        assert_eq!(missing, vec!["f".repeat(64)], "a receipt's hash is found; an unknown one is reported");
        let (_, missing) = verify_expecting(ok[..4].to_vec(), &[ok[5].hash.clone()]).unwrap();
        assert_eq!(missing.len(), 1, "a kept head catches a log cut short");

        let mut changed = ok.clone();
        changed[2].detail = "{\"n\":99}".into();
        assert_eq!(verify(changed), Err(ChainBreak::Changed { seq: 3 }));

        let mut removed = ok.clone();
        removed.remove(3);
        assert_eq!(verify(removed), Err(ChainBreak::Removed { expected: 4, previous: 3, found: 5 }));

        // Swap the contents of positions 2 and 4, keeping the positions.
        let mut swapped = ok.clone();
        let (a, b) = (swapped[1].clone(), swapped[3].clone());
        swapped[1] = AuditRecord { seq: 2, ..b };
        swapped[3] = AuditRecord { seq: 4, ..a };
        assert_eq!(verify(swapped), Err(ChainBreak::Reordered { seq: 2, belongs_at: 4 }));

        // A record rewritten with a fresh, self-consistent hash no longer links.
        let mut relinked = ok;
        relinked[4].detail = "{\"n\":0}".into();
        relinked[4].hash = record_hash(&relinked[4].prev_hash, 5, relinked[4].at, "p", "a", "s", &relinked[4].detail);
        assert_eq!(verify(relinked), Err(ChainBreak::Unlinked { seq: 6, previous: 5 }));
    }
}
