//! Authentication by client certificate or bearer token. Certificates are matched by their
//! SHA-256 fingerprint and tokens by their SHA-256, the only forms the configuration holds;
//! demo participants count only on a plain-HTTP loopback gateway.
//! The [`Authenticated`] extractor makes a handler require a participant.

use std::collections::HashMap;
use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::audit::ParticipantId;
use super::errors::{ApiError, Code};
use super::routes::AppState;
use crate::config::ParticipantConfig;
use crate::digest::sha256_hex;
use crate::gateway::Participant;
use crate::tls::PeerCertificate;

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

/// A request from a known participant.
pub struct Authenticated(pub Participant, pub std::sync::Arc<crate::quota::Allowance>);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(authenticate(req).and_then(|who| {
            // Every authenticated request counts against its participant's rate, and no other's.
            who.1.request()?;
            Ok(who)
        }))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(Code::Internal, "application state missing"))?;
    // A verified client certificate identifies the participant; one that belongs to nobody
    // is refused, whatever token comes with it.
    if let Some(PeerCertificate(fingerprint)) = req.conn_data::<PeerCertificate>() {
        let participant = state.directory.find_certificate(fingerprint).cloned().ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                format!("the client certificate (SHA-256 {fingerprint}) is not registered to any participant; \
                         the operator adds it as cert_sha256"),
            )
        })?;
        req.extensions_mut().insert(ParticipantId(participant.id().to_owned()));
        return with_allowance(state, participant);
    }
    let header = req
        .headers()
        .get("authorization")
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "send `Authorization: Bearer <token>`"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "the Authorization header must be `Bearer <token>`"))?;
    let participant = state
        .directory
        .find(token)
        .cloned()
        .ok_or_else(|| ApiError::new(Code::Unauthenticated, "unknown token"))?;
    req.extensions_mut().insert(ParticipantId(participant.id().to_owned()));
    with_allowance(state, participant)
}

fn with_allowance(state: &AppState, participant: Participant) -> Result<Authenticated, ApiError> {
    let allowance = state
        .quotas
        .of(&participant.id())
        .ok_or_else(|| ApiError::new(Code::Internal, format!("participant {} has no quota", participant.id())))?;
    Ok(Authenticated(participant, allowance))
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
