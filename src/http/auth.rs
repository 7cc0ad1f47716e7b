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
    /// loopback gateway). An entry without what its role needs (the region file's check
    /// refuses those) is named in the error, never left out unsaid.
    pub fn new(participants: &[ParticipantConfig], demo: bool) -> Result<Self, String> {
        let mut directory = Directory { by_hash: HashMap::new(), by_cert: HashMap::new() };
        for p in participants.iter().filter(|p| demo || !p.demo) {
            let participant = Participant::of(p)?;
            if let Some(hash) = &p.token_sha256 {
                directory.by_hash.insert(hash.to_ascii_lowercase(), participant.clone());
            }
            if let Some(fingerprint) = &p.cert_sha256 {
                directory.by_cert.insert(fingerprint.to_ascii_lowercase(), participant);
            }
        }
        Ok(directory)
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
        let local = Directory::new(&ps, true).unwrap();
        assert_eq!(local.find("demo-trader").map(|p| p.id()), Some("demo-trader"));
        assert_eq!(local.find("s3cret-token").map(|p| p.id()), Some("acme"));
        let public = Directory::new(&ps, false).unwrap();
        assert!(public.find("demo-trader").is_none());
        assert_eq!(public.find("s3cret-token").map(|p| p.id()), Some("acme"));
        assert!(public.find("wrong").is_none());
    }
}
