//! Replays audited in a bounded form, as refusals are (`http/refusals.rs`): a document or an
//! amendment sent again is answered with its first receipt and changes nothing, and no stream of
//! resends, however long, makes the audit log grow without bound.
//!
//! A participant's first [`PER_PARTICIPANT`] replays in a window of [`WINDOW_MS`] are recorded
//! one by one (`submission.replayed`, `amendment.replayed`); past that they are counted, and one
//! `replay.summary` record per participant closes the window (how many, by action, the first
//! documents). A window's summaries are written when the participant's next replay comes after
//! its end, or by the gateway's periodic flush ([`ReplayAudit::flush_due`]), or at the stop.
//! Each record is appended to the audit chain like any other (`ventanilla audit verify`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::json;

use crate::audit::AuditEntry;
use crate::clock::Millis;

/// How long one window of counting lasts.
pub const WINDOW_MS: Millis = 60_000;
/// Replays of one participant recorded one by one per window.
pub const PER_PARTICIPANT: u32 = 20;
/// Documents named in a summary.
const FIRST_SUBJECTS: usize = 5;
/// The action of a window's summary of one participant's replays.
pub const SUMMARY: &str = "replay.summary";

#[derive(Default)]
struct Tally {
    recorded: u32,
    counted: u64,
    actions: BTreeMap<&'static str, u64>,
    first: Vec<String>,
}

#[derive(Default)]
struct Window {
    started: Millis,
    participants: HashMap<String, Tally>,
}

impl Window {
    /// One summary per participant whose replays went past its records.
    fn summaries(self, ended: Millis) -> Vec<AuditEntry> {
        let from = crate::clock::rfc3339(self.started);
        let mut out: Vec<AuditEntry> = self
            .participants
            .into_iter()
            .filter(|(_, t)| t.counted > 0)
            .map(|(p, t)| AuditEntry {
                at: ended,
                subject: format!("participant {p}"),
                participant: p,
                action: SUMMARY,
                detail: json!({
                    "replayed": t.counted,
                    "recordedOneByOne": t.recorded,
                    "actions": t.actions,
                    "firstDocuments": t.first,
                    "from": from,
                    "to": crate::clock::rfc3339(ended),
                }),
            })
            .collect();
        // The same order whatever the map's: the records' order is the chain's.
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }
}

/// The gateway's counting of replays.
#[derive(Default)]
pub struct ReplayAudit {
    window: Mutex<Window>,
}

impl ReplayAudit {
    /// Notes the replay `own` (its own record, participant, action and subject) at `now`: the
    /// records to append now (its own, while the participant has records left in the window,
    /// and the summaries of a window that has ended).
    pub fn note(&self, now: Millis, own: AuditEntry) -> Vec<AuditEntry> {
        let Ok(mut w) = self.window.lock() else { return Vec::new() };
        let mut out = Vec::new();
        if now >= w.started + WINDOW_MS {
            let ended = std::mem::replace(&mut *w, Window { started: now, ..Default::default() });
            out = ended.summaries(now);
        }
        let t = w.participants.entry(own.participant.clone()).or_default();
        if t.recorded < PER_PARTICIPANT {
            t.recorded += 1;
            out.push(own);
        } else {
            t.counted += 1;
            *t.actions.entry(own.action).or_default() += 1;
            if t.first.len() < FIRST_SUBJECTS && !t.first.contains(&own.subject) {
                t.first.push(own.subject);
            }
        }
        out
    }

    /// The summaries of a window that ended by `now` (the periodic flush), or of the current
    /// one when `closing` (the stop).
    pub fn flush_due(&self, now: Millis, closing: bool) -> Vec<AuditEntry> {
        let Ok(mut w) = self.window.lock() else { return Vec::new() };
        if closing || now >= w.started + WINDOW_MS {
            let ended = std::mem::replace(&mut *w, Window { started: now, ..Default::default() });
            ended.summaries(now)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(participant: &str, at: Millis) -> AuditEntry {
        AuditEntry { at, participant: participant.into(), action: "submission.replayed", subject: "doc-1".into(), detail: json!({}) }
    }

    #[test]
    fn a_participant_gets_its_first_replays_recorded_then_one_summary_per_window() {
        let audit = ReplayAudit::default();
        let mut written = 0;
        for i in 0..507 {
            written += audit.note(1_000 + i, replay("trader", 1_000 + i)).len();
        }
        assert_eq!(written as u32, PER_PARTICIPANT, "the first ones one by one, the rest counted");
        // Another participant's replays are its own.
        assert_eq!(audit.note(2_000, replay("other", 2_000)).len(), 1);
        // The next replay after the window's end writes the summary, and is recorded itself.
        let next = audit.note(1_000 + WINDOW_MS, replay("trader", 1_000 + WINDOW_MS));
        assert_eq!(next.len(), 2);
        assert_eq!((next[0].action, next[0].participant.as_str()), (SUMMARY, "trader"));
        assert_eq!(next[0].detail["replayed"], 507 - u64::from(PER_PARTICIPANT));
        assert_eq!(next[0].detail["actions"]["submission.replayed"], 507 - u64::from(PER_PARTICIPANT));
        assert_eq!(next[0].detail["firstDocuments"], json!(["doc-1"]));
        assert_eq!(next[1].action, "submission.replayed");
        assert!(audit.flush_due(1_001 + WINDOW_MS, true).is_empty(), "nothing counted past the records yet");
    }

    #[test]
    fn the_periodic_flush_writes_an_ended_window_once() {
        let audit = ReplayAudit::default();
        for i in 0..30 {
            audit.note(i, replay("trader", i));
        }
        assert!(audit.flush_due(10, false).is_empty(), "the window goes on");
        let summaries = audit.flush_due(WINDOW_MS, false);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].detail["replayed"], 10);
        assert!(audit.flush_due(WINDOW_MS + 1, true).is_empty(), "nothing twice");
    }
}
