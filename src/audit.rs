//! The audit log's hash chains: every submission, rejection, routing decision, publication,
//! acknowledgment and refusal is appended as a record whose hash covers its own content, its
//! position and the previous record's hash. Changing, removing or reordering any record breaks
//! the chain from that record on, and [`verify`] names the first one.
//!
//! **One chain per writer.** The embedded store has one writer and one chain (`gateway`). On a
//! store that several gateways write at once, each gateway appends to a chain of its own (named
//! after the instance): one chain for all would make every write of the region wait for the
//! previous one's commit, the global lock the store avoids. The chains are **anchored
//! together**: a chain's first record (`audit.chain-opened`) names the head (position and hash)
//! of every other chain at that moment, so a chain cut short below a head that a later chain
//! anchored is caught, as a kept head or a receipt's hash is. A chain that no later chain
//! anchored can lose its end unseen, as the single chain can: keep heads elsewhere (`--expect`).
//!
//! Records are appended in the same transaction as what they describe ([`append`], through the
//! store's [`Ledger`]); this module defines the records, their hashes, the append and the walk.

use serde::Serialize;
use serde_json::Value;

use crate::clock::Millis;
use crate::store::{Ledger, Store, StoreError};

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

pub use crate::store::{AuditRecord, ChainHead};

/// The hash of a record at position `seq` after `prev_hash`: SHA-256 over an unambiguous JSON
/// array of every field, in lower-case hex.
pub fn record_hash(prev_hash: &str, seq: i64, at: Millis, participant: &str, action: &str, subject: &str, detail: &str) -> String {
    let canonical = serde_json::json!([prev_hash, seq, at, participant, action, subject, detail]).to_string();
    crate::digest::sha256_hex(canonical.as_bytes())
}

/// The action of a chain's first record when other chains exist.
pub const CHAIN_OPENED: &str = "audit.chain-opened";

/// Appends `entry` to this writer's chain, in the transaction of `ledger`; returns its hash.
pub fn append(ledger: &mut dyn Ledger, entry: &AuditEntry) -> Result<String, StoreError> {
    let chain = ledger.audit_chain();
    let (last_seq, prev_hash) = match ledger.audit_head()? {
        Some(head) => head,
        None => open_chain(ledger, &chain, entry.at)?,
    };
    let seq = last_seq + 1;
    let detail = entry.detail.to_string();
    let hash = record_hash(&prev_hash, seq, entry.at, &entry.participant, entry.action, &entry.subject, &detail);
    ledger.insert_audit_record(&AuditRecord {
        chain,
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

/// A new chain's start: a first record anchoring the heads of the other chains, when there are
/// any; the head to append after.
fn open_chain(ledger: &mut dyn Ledger, chain: &str, at: Millis) -> Result<(i64, String), StoreError> {
    let anchors: Vec<ChainHead> = ledger.audit_heads()?.into_iter().filter(|h| h.chain != chain).collect();
    if anchors.is_empty() {
        return Ok((0, GENESIS.to_owned()));
    }
    let detail = serde_json::json!({ "anchors": anchors }).to_string();
    let hash = record_hash(GENESIS, 1, at, "gateway", CHAIN_OPENED, chain, &detail);
    ledger.insert_audit_record(&AuditRecord {
        chain: chain.to_owned(),
        seq: 1,
        at,
        participant: "gateway".into(),
        action: CHAIN_OPENED.into(),
        subject: chain.to_owned(),
        detail,
        prev_hash: GENESIS.to_owned(),
        hash: hash.clone(),
    })?;
    Ok((1, hash))
}

/// Appends a record on its own (for refusals; everything else is audited in the same
/// transaction as the change it records). Returns its hash.
pub async fn record(store: &dyn Store, entry: AuditEntry) -> Result<String, StoreError> {
    store.write_with(Vec::new(), move |l| append(l, &entry)).await
}

/// Appends several records in one commit.
pub async fn record_all(store: &dyn Store, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
    store
        .write_with(Vec::new(), move |l| {
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

/// Where the log first breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainBreak {
    /// A break inside one of several chains.
    #[error("audit chain {chain}: {source}")]
    InChain { chain: String, source: Box<ChainBreak> },
    #[error("audit chain {chain} lacks its record {seq} with hash {hash}, which the opening of chain {anchored_by} anchored: \
             records were removed from its end, or the chain was replaced")]
    AnchorMissing { chain: String, seq: i64, hash: String, anchored_by: String },
    #[error("audit record {seq} was changed: its content does not match its hash")]
    Changed { seq: i64 },
    #[error("audit record {expected} was removed: the chain goes from record {previous} to record {found}")]
    Removed { expected: i64, previous: i64, found: i64 },
    #[error("audit record {seq} is out of order: it holds the record that belongs at position {belongs_at}")]
    Reordered { seq: i64, belongs_at: i64 },
    #[error("audit record {seq} does not follow record {previous}: its link to the previous hash is wrong")]
    Unlinked { seq: i64, previous: i64 },
}

/// What a successful walk found in one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    pub chain: String,
    pub records: u64,
    /// The last record's hash (the genesis hash when the chain is empty).
    pub head: String,
}

/// What a successful walk found in the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    pub records: u64,
    /// Each chain, by name.
    pub chains: Vec<ChainSummary>,
}

impl std::fmt::Display for LogSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.chains.as_slice() {
            [] => write!(f, "0 records, head {GENESIS}"),
            [one] => write!(f, "{} records, head {}", one.records, one.head),
            all => {
                write!(f, "{} records in {} chains;", self.records, all.len())?;
                all.iter().try_for_each(|c| write!(f, " {} ({} records, head {})", c.chain, c.records, c.head))
            }
        }
    }
}

/// Walks the records of each chain in `seq` order and checks every hash, link and anchor.
/// `records` come chain by chain (as `Ledger::audit_records` gives them).
pub fn verify(records: impl IntoIterator<Item = AuditRecord>) -> Result<LogSummary, ChainBreak> {
    verify_expecting(records, &[]).map(|(summary, _)| summary)
}

/// [`verify`], also looking for `expected` hashes (from receipts, or a head kept elsewhere):
/// returns those not found in the log. A receipt whose hash is missing means its record was
/// removed or the log replaced; a kept head that is missing means the log was cut short.
pub fn verify_expecting(
    records: impl IntoIterator<Item = AuditRecord>,
    expected: &[String],
) -> Result<(LogSummary, Vec<String>), ChainBreak> {
    let mut missing: Vec<String> = expected.iter().map(|h| h.to_ascii_lowercase()).collect();
    let mut chains: Vec<(String, Vec<AuditRecord>)> = Vec::new();
    for r in records {
        match chains.last_mut() {
            Some((name, rs)) if *name == r.chain => rs.push(r),
            _ => chains.push((r.chain.clone(), vec![r])),
        }
    }
    let several = chains.len() > 1;
    let mut summaries = Vec::with_capacity(chains.len());
    let mut hashes: std::collections::HashMap<(String, i64), String> = std::collections::HashMap::new();
    let mut anchors: Vec<(String, ChainHead)> = Vec::new();
    for (chain, records) in chains {
        if let Some(first) = records.first().filter(|r| r.seq == 1 && r.action == CHAIN_OPENED) {
            let named: Vec<ChainHead> = serde_json::from_str::<Value>(&first.detail)
                .ok()
                .and_then(|d| serde_json::from_value(d["anchors"].clone()).ok())
                .unwrap_or_default();
            anchors.extend(named.into_iter().map(|h| (chain.clone(), h)));
        }
        for r in &records {
            hashes.insert((chain.clone(), r.seq), r.hash.clone());
        }
        let summary = verify_chain(&chain, records, &mut missing)
            .map_err(|e| if several { ChainBreak::InChain { chain: chain.clone(), source: Box::new(e) } } else { e })?;
        summaries.push(summary);
    }
    for (anchored_by, head) in anchors {
        if hashes.get(&(head.chain.clone(), head.seq)) != Some(&head.hash) {
            return Err(ChainBreak::AnchorMissing { chain: head.chain, seq: head.seq, hash: head.hash, anchored_by });
        }
    }
    let records = summaries.iter().map(|c| c.records).sum();
    Ok((LogSummary { records, chains: summaries }, missing))
}

/// Checks one chain's records, in `seq` order; strikes the hashes found off `missing`.
fn verify_chain(chain: &str, records: Vec<AuditRecord>, missing: &mut Vec<String>) -> Result<ChainSummary, ChainBreak> {
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
    Ok(ChainSummary { chain: chain.to_owned(), records: count, head: prev_hash })
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
                    chain: "gateway".into(),
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
        assert_eq!(verify(Vec::new()).unwrap().records, 0);
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
