//! Refusals in the audit log: every request answered 4xx (unauthenticated, forbidden, not
//! found, invalid, conflicting, too large, past a quota...) or turned away with 503
//! (overloaded, backlog full) is audited with the participant (or `anonymous`), the method and
//! path, and the error code, in the bounded form of `refusals.rs` (a participant's first ones
//! one by one, then counted; anonymous ones counted per source). Accepted work is audited by
//! the store in the same transaction as the change itself.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use serde_json::json;

use super::errors::{ApiError, Code};
use super::refusals::Refused;
use super::state::AppState;
use crate::audit::AuditEntry;
use crate::clock::now_millis;

/// Set by the [`super::policy::Authenticated`] extractor: who the request came from.
#[derive(Debug, Clone)]
pub struct ParticipantId(pub String);

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The audit record of a refused request (or batch item): the status, the problem's code and
/// its detail, clipped.
pub fn refusal(participant: String, subject: String, status: u16, problem: Option<&ApiError>) -> AuditEntry {
    let detail = json!({
        "status": status,
        "code": problem.map(|p| p.code.as_str()),
        "detail": problem.map(|p| clip(&p.detail, 500)),
    });
    AuditEntry { at: now_millis(), participant, action: "request.refused", subject, detail }
}

/// Middleware: audits every 4xx answer. A failure to audit is logged; the answer stands.
pub async fn audit_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().map(|s| (s.gateway.clone(), s.refusals.clone()));
    let source = req.peer_addr().map(|a| a.ip());
    let subject = format!("{} {}", req.method(), clip(req.path(), 200));
    let res = next.call(req).await?;
    let status = res.status();
    let problem = res.response().error().and_then(|e| e.as_error::<ApiError>());
    // Refusals: every 4xx, and the 503s that turn a submission away (overloaded, backlog full).
    let refused = status.is_client_error() || problem.is_some_and(|p| matches!(p.code, Code::Overloaded | Code::BacklogFull));
    if let (true, Some((gateway, refusals))) = (refused, state) {
        let participant = res.request().extensions().get::<ParticipantId>().map(|p| p.0.clone());
        let noted = Refused { participant: participant.as_deref(), source, subject: &subject, status: status.as_u16(), code: problem.map(|p| p.code.as_str()) };
        let entries = refusals.note(now_millis(), &noted, || {
            refusal(participant.clone().unwrap_or_else(|| "anonymous".into()), subject.clone(), status.as_u16(), problem)
        });
        if !entries.is_empty() {
            if let Err(e) = gateway.audit(entries).await {
                tracing::error!(error = %e, "a refusal could not be written to the audit log");
            }
        }
    }
    Ok(res)
}
