//! The participants' credentials: client certificates matched by their SHA-256 fingerprint and
//! tokens by their SHA-256, the only forms the configuration holds; demo participants count only
//! on a plain-HTTP loopback gateway. The extractors that authenticate a request with them are
//! `super::policy`'s.

use std::collections::HashMap;
use crate::config::ParticipantConfig;
use crate::digest::sha256_hex;
use crate::gateway::Participant;

/// Token hash -> participant, and client certificate fingerprint -> participant.
pub struct Directory {
    by_hash: HashMap<String, Participant>,
    by_cert: HashMap<String, Participant>,
}

impl Directory {
    /// Builds the directory; demo participants are left out unless `demo` (a plain-HTTP
    /// loopback gateway).
    pub fn new(participants: &[ParticipantConfig], demo: bool) -> Self {
        let honoured = || participants.iter().filter(|p| demo || !p.demo);
        // The region file's check refused an entry its role's needs are missing from.
        let participant = |p: &ParticipantConfig| Participant::of(p).ok();
        let by_hash = honoured()
            .filter_map(|p| Some((p.token_sha256.as_ref()?.to_ascii_lowercase(), participant(p)?)))
            .collect();
        let by_cert = honoured()
            .filter_map(|p| Some((p.cert_sha256.as_ref()?.to_ascii_lowercase(), participant(p)?)))
            .collect();
        Directory { by_hash, by_cert }
    }

    pub fn find(&self, token: &str) -> Option<&Participant> {
        self.by_hash.get(&sha256_hex(token.as_bytes()))
    }

    /// The participant a verified client certificate belongs to, by its SHA-256 fingerprint.
    pub fn find_certificate(&self, sha256: &str) -> Option<&Participant> {
        self.by_cert.get(sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn participant(id: &str, token: &str, demo: bool) -> ParticipantConfig {
        ParticipantConfig {
            id: id.into(),
            role: Role::Trader,
            agency: None,
            country: None,
            token_sha256: Some(sha256_hex(token.as_bytes())),
            cert_sha256: None,
            acts_for: Vec::new(),
            demo,
        }
    }

    #[test]
    fn demo_participants_are_honoured_only_on_loopback() {
        let ps = [participant("demo-trader", "demo-trader", true), participant("acme", "s3cret-token", false)];
        let local = Directory::new(&ps, true);
        assert_eq!(local.find("demo-trader").map(|p| p.id()), Some("demo-trader"));
        assert_eq!(local.find("s3cret-token").map(|p| p.id()), Some("acme"));
        let public = Directory::new(&ps, false);
        assert!(public.find("demo-trader").is_none());
        assert_eq!(public.find("s3cret-token").map(|p| p.id()), Some("acme"));
        assert!(public.find("wrong").is_none());
    }
}
