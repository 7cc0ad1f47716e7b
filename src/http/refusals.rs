//! Refusals audited in a bounded form: the audit log records what was refused, but no request
//! stream, however hostile, makes it grow without bound.
//!
//! - An **authenticated** participant's refusals are recorded one by one, up to
//!   [`PER_PARTICIPANT`] in a window of [`WINDOW_MS`]; past that they are counted, and one
//!   `request.refused.summary` record per participant closes the window (how many, by code, the
//!   first paths).
//! - **Anonymous** refusals (no credentials, or unknown ones) are never recorded one by one:
//!   they are counted per source address and window, one summary record each, for at most
//!   [`SOURCES`] sources a window (the rest in one record for all other sources).
//! - A refused batch is one record, however many of its items were refused (`routes.rs`).
//!
//! A window's summaries are written when the next refusal comes after its end, or by the
//! gateway's periodic flush ([`RefusalAudit::flush_due`]), or at the stop.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::json;

use crate::audit::AuditEntry;
use crate::clock::Millis;

/// How long one window of counting lasts.
pub const WINDOW_MS: Millis = 60_000;
/// Refusals of one participant recorded one by one per window.
pub const PER_PARTICIPANT: u32 = 20;
/// Anonymous sources counted apart per window.
pub const SOURCES: usize = 1_000;
/// Paths kept in a summary.
const FIRST_SUBJECTS: usize = 5;

/// What a refused request was.
pub struct Refused<'a> {
    /// The participant, when it authenticated.
    pub participant: Option<&'a str>,
    /// The peer's address.
    pub source: Option<IpAddr>,
    /// `METHOD /path`, clipped.
    pub subject: &'a str,
    pub status: u16,
    pub code: Option<&'a str>,
}

#[derive(Default)]
struct Tally {
    recorded: u32,
    counted: u64,
    codes: BTreeMap<String, u64>,
    first: Vec<String>,
}

impl Tally {
    fn count(&mut self, r: &Refused<'_>) {
        self.counted += 1;
        *self.codes.entry(r.code.unwrap_or("none").to_owned()).or_default() += 1;
        if self.first.len() < FIRST_SUBJECTS {
            self.first.push(r.subject.to_owned());
        }
    }
}

#[derive(Default)]
struct Window {
    started: Millis,
    participants: HashMap<String, Tally>,
    sources: HashMap<IpAddr, Tally>,
    other_sources: Tally,
}

impl Window {
    /// The summary records of this window: one per participant that went past its records,
    /// one per anonymous source, one for the sources past [`SOURCES`].
    fn summaries(self, ended: Millis) -> Vec<AuditEntry> {
        let summary = |participant: String, subject: String, t: Tally| AuditEntry {
            at: ended,
            participant,
            action: "request.refused.summary",
            subject,
            detail: json!({
                "refused": t.counted,
                "codes": t.codes,
                "firstPaths": t.first,
                "from": crate::clock::rfc3339(self.started),
                "to": crate::clock::rfc3339(ended),
            }),
        };
        let mut out = Vec::new();
        for (p, t) in self.participants {
            if t.counted > 0 {
                out.push(summary(p.clone(), format!("participant {p}"), t));
            }
        }
        for (ip, t) in self.sources {
            out.push(summary("anonymous".into(), format!("source {ip}"), t));
        }
        if self.other_sources.counted > 0 {
            out.push(summary("anonymous".into(), "other sources".into(), self.other_sources));
        }
        out
    }
}

/// The gateway's counting of refusals.
#[derive(Default)]
pub struct RefusalAudit {
    window: Mutex<Window>,
}

impl RefusalAudit {
    /// Notes a refusal at `now`: the records to append now (the refusal's own, when it gets one,
    /// and the summaries of a window that has ended).
    pub fn note(&self, now: Millis, r: &Refused<'_>, own: impl FnOnce() -> AuditEntry) -> Vec<AuditEntry> {
        let Ok(mut w) = self.window.lock() else { return Vec::new() };
        let mut out = Vec::new();
        if now >= w.started + WINDOW_MS {
            let ended = std::mem::replace(&mut *w, Window { started: now, ..Default::default() });
            out = ended.summaries(now);
        }
        match r.participant {
            Some(p) => {
                let t = w.participants.entry(p.to_owned()).or_default();
                if t.recorded < PER_PARTICIPANT {
                    t.recorded += 1;
                    out.push(own());
                } else {
                    t.count(r);
                }
            }
            None => match r.source {
                Some(ip) if w.sources.contains_key(&ip) || w.sources.len() < SOURCES => w.sources.entry(ip).or_default().count(r),
                _ => w.other_sources.count(r),
            },
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

    fn refused<'a>(participant: Option<&'a str>, source: &str) -> Refused<'a> {
        Refused { participant, source: source.parse().ok(), subject: "GET /v1/nope", status: 404, code: Some("not-found") }
    }

    fn own() -> AuditEntry {
        AuditEntry { at: 0, participant: "p".into(), action: "request.refused", subject: "s".into(), detail: json!({}) }
    }

    #[test]
    fn twenty_thousand_anonymous_refusals_are_one_record_per_source_and_window() {
        let audit = RefusalAudit::default();
        let mut written = 0;
        for i in 0..20_000 {
            written += audit.note(1_000 + i, &refused(None, "203.0.113.7"), own).len();
        }
        assert_eq!(written, 0, "counted, not recorded one by one");
        let summaries = audit.flush_due(1_000 + WINDOW_MS, false);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].subject, "source 203.0.113.7");
        assert_eq!(summaries[0].detail["refused"], 20_000);
        assert!(audit.flush_due(1_000 + WINDOW_MS + 1, false).is_empty(), "nothing twice");
    }

    #[test]
    fn a_participant_gets_its_first_refusals_recorded_then_a_summary() {
        let audit = RefusalAudit::default();
        let mut own_records = 0;
        for i in 0..1_000 {
            own_records += audit.note(i, &refused(Some("trader"), "192.0.2.1"), own).len();
        }
        assert_eq!(own_records as u32, PER_PARTICIPANT);
        // The next refusal after the window's end writes its summary, and is recorded itself.
        let next = audit.note(WINDOW_MS + 5, &refused(Some("trader"), "192.0.2.1"), own);
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].action, "request.refused.summary");
        assert_eq!(next[0].detail["refused"], 1_000 - u64::from(PER_PARTICIPANT));
        assert_eq!(next[1].action, "request.refused");
    }

    #[test]
    fn sources_past_the_bound_share_one_record() {
        let audit = RefusalAudit::default();
        for i in 0..(SOURCES + 50) {
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            audit.note(1, &refused(None, &ip), own);
        }
        let summaries = audit.flush_due(0, true);
        assert_eq!(summaries.len(), SOURCES + 1);
        assert!(summaries.iter().any(|s| s.subject == "other sources" && s.detail["refused"] == 50));
    }
}
