//! Who may call a route, as types. A handler's first argument is the extractor of its access
//! policy: [`Public`], [`Authenticated`] (any participant, or only those a [`Policy`] admits:
//! [`Operator`], [`ConsignmentOwner`]) or [`Write`] (a write, which also holds the request's
//! permits). The route table (`super::api`) reads each route's [`Access`] from that type, so the
//! access `/openapi.json` describes is the one the gateway enforces: a route cannot be served
//! with another.
//!
//! Authentication is by client certificate or bearer token (`super::auth`); every authenticated
//! request counts against its participant's rate, and no other's.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::audit::ParticipantId;
use super::errors::{ApiError, Code};
use super::state::AppState;
use crate::access::{Participant, Refusal};
use crate::quota::{Allowance, BytesPermit};
use crate::tls::PeerCertificate;

/// Who may call an endpoint, as the route table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, readiness, the API description, the public figures).
    Anyone,
    /// Any registered participant; the gateway decides what it sees.
    Participant,
    /// Those who submit documents: traders, national single windows and platforms.
    Submitter,
    /// Agencies, each answering for its own.
    Agency,
    /// Operators only.
    Operator,
}

impl Access {
    /// What `/openapi.json` says of it, beside the security schemes.
    pub fn described(self) -> Option<&'static str> {
        match self {
            Access::Anyone | Access::Participant => None,
            Access::Submitter => Some("Traders, national single windows and platforms only."),
            Access::Agency => Some("Agencies only."),
            Access::Operator => Some("Operators only."),
        }
    }
}

/// Which participants a route admits, by role, before anything of the request is read.
pub trait Policy {
    /// As the route table documents it.
    const ACCESS: Access;
    /// Whether `participant`'s role may call the route (`403` with the refusal if not).
    fn admits(participant: &Participant) -> Result<(), Refusal>;
}

/// A policy type: its access as the route table describes it, and the rule that admits a role.
macro_rules! policy {
    ($(#[$doc:meta])* $name:ident: $access:ident, $admits:path) => {
        $(#[$doc])*
        pub struct $name;
        impl Policy for $name {
            const ACCESS: Access = Access::$access;
            fn admits(participant: &Participant) -> Result<(), Refusal> {
                $admits(participant)
            }
        }
    };
}

/// Every participant's role is admitted (what it sees is the gateway's to decide).
fn any_role(_: &Participant) -> Result<(), Refusal> {
    Ok(())
}

policy!(
    /// Any participant.
    AnyParticipant: Participant, any_role
);
policy!(
    /// Operators.
    Operators: Operator, crate::access::may_operate
);
policy!(
    /// Those whose consignments they are (webhooks): traders, NSWs and platforms.
    ConsignmentOwners: Submitter, crate::access::may_register_webhook
);
policy!(
    /// A document, its amendment, withdrawal or response: traders, NSWs and platforms.
    Submissions: Submitter, crate::access::submits_documents
);
policy!(
    /// A batch of documents: as [`Submissions`], with the batch's larger body.
    Batches: Submitter, crate::access::submits_documents
);
policy!(
    /// An agency's answer.
    Answers: Agency, crate::access::answers_for_an_agency
);

/// What a write's body may weigh, by its policy.
pub trait WritePolicy: Policy {
    fn max_body(state: &AppState) -> usize {
        state.max_body_bytes
    }
}
impl WritePolicy for Submissions {}
impl WritePolicy for Answers {}
impl WritePolicy for Batches {
    fn max_body(state: &AppState) -> usize {
        state.max_batch_body_bytes
    }
}

/// No credentials: a route open to anyone.
pub struct Public;

impl FromRequest for Public {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(_: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Public))
    }
}

/// A request from a known participant whose role `P` admits, with its allowance (`crate::quota`).
pub struct Authenticated<P = AnyParticipant>(pub Participant, pub Arc<Allowance>, PhantomData<P>);

/// A request from an operator.
pub type Operator = Authenticated<Operators>;
/// A request from a participant whose consignments these are.
pub type ConsignmentOwner = Authenticated<ConsignmentOwners>;

impl<P: Policy> FromRequest for Authenticated<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(state_of(req).and_then(|state| authenticated(state, req)))
    }
}

fn authenticated<P: Policy>(state: &AppState, req: &HttpRequest) -> Result<Authenticated<P>, ApiError> {
    let participant = authenticate(state, req)?;
    let allowance = state
        .quotas
        .of(participant.id())
        .ok_or_else(|| ApiError::new(Code::Internal, format!("participant {} has no quota", participant.id())))?;
    // Every authenticated request counts against its participant's rate, and no other's.
    allowance.request()?;
    P::admits(&participant).map_err(|r| ApiError::new(Code::Forbidden, r.to_string()))?;
    Ok(Authenticated(participant, allowance, PhantomData))
}

fn state_of(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::new(Code::Internal, "application state missing"))
}

/// The participant of a request: by its verified client certificate (one that belongs to
/// nobody is refused, whatever token comes with it), else by its bearer token.
fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Participant, ApiError> {
    let participant = if let Some(PeerCertificate(fingerprint)) = req.conn_data::<PeerCertificate>() {
        state.directory.find_certificate(fingerprint).cloned().ok_or_else(|| {
            ApiError::new(
                Code::Unauthenticated,
                format!(
                    "the client certificate (SHA-256 {fingerprint}) is not registered to any participant; \
                     the operator adds it as cert_sha256"
                ),
            )
        })?
    } else {
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
        state.directory.find(token).cloned().ok_or_else(|| ApiError::new(Code::Unauthenticated, "unknown token"))?
    };
    req.extensions_mut().insert(ParticipantId(participant.id().to_owned()));
    Ok(participant)
}

/// The body about to be read, among `who`'s bytes in flight until the permit is dropped: its
/// announced length, or the most it may be (`max_body`) when it is sent in chunks.
pub fn body_bytes(allowance: &Allowance, req: &HttpRequest, max_body: usize) -> Result<BytesPermit, ApiError> {
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(max_body as u64, |n| n.min(max_body as u64));
    Ok(allowance.bytes(announced)?)
}

/// A write by a participant `P` admits, holding its permits while the handler runs: a place
/// among its participant's writes, its body's bytes among the participant's bytes in flight,
/// and a place in the gateway's pool. They are taken only after the caller is known and its role
/// may write here, its own first (`429` past its quota, which no other participant's load
/// changes), the gateway's pool last (`503` when the gateway as a whole is saturated).
pub struct Write<P> {
    who: Authenticated<P>,
    _own: tokio::sync::OwnedSemaphorePermit,
    _bytes: BytesPermit,
    _pool: tokio::sync::OwnedSemaphorePermit,
}

impl<P> std::ops::Deref for Write<P> {
    type Target = Authenticated<P>;
    fn deref(&self) -> &Authenticated<P> {
        &self.who
    }
}

impl<P: WritePolicy> FromRequest for Write<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(write(req))
    }
}

fn write<P: WritePolicy>(req: &HttpRequest) -> Result<Write<P>, ApiError> {
    let state = state_of(req)?;
    let who = authenticated::<P>(state, req)?;
    let own = who.1.write()?;
    let bytes = body_bytes(&who.1, req, P::max_body(state))?;
    let pool = state.writes.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(Code::Overloaded, "too many submissions in progress; retry after the delay in Retry-After")
    })?;
    Ok(Write { who, _own: own, _bytes: bytes, _pool: pool })
}

/// The access an extractor stands for: the first argument of every handler is one.
pub trait Guard {
    const ACCESS: Access;
}
impl Guard for Public {
    const ACCESS: Access = Access::Anyone;
}
impl<P: Policy> Guard for Authenticated<P> {
    const ACCESS: Access = P::ACCESS;
}
impl<P: Policy> Guard for Write<P> {
    const ACCESS: Access = P::ACCESS;
}

/// A handler's arguments whose first is a [`Guard`]: the route table reads its access here.
pub trait Guarded {
    const ACCESS: Access;
}

macro_rules! guarded {
    ($($rest:ident),*) => {
        impl<G: Guard, $($rest),*> Guarded for (G, $($rest,)*) {
            const ACCESS: Access = G::ACCESS;
        }
    };
}
guarded!();
guarded!(A);
guarded!(A, B);
guarded!(A, B, C);
guarded!(A, B, C, D);
guarded!(A, B, C, D, E);
guarded!(A, B, C, D, E, F);
