//! The problems an operation can answer, whichever way it came in (HTTP, an agency's Kafka
//! record, the command line): one table of stable codes, each with its HTTP status, title and
//! `Retry-After`, from which every list is generated; and [`ApiError`], a code with a detail
//! for people and extension members, written as an RFC 9457 problem document. HTTP answers it
//! (`crate::http::errors`); the ack consumer publishes it on an agency's refused-answers topic.

use serde_json::{json, Value};

use crate::gateway::{AckError, ChangeError, OperatorError, SubmitError};
use crate::json::JsonError;
use crate::lifecycle::ChangeRefused;
use crate::pointer::Violation;

/// Declares [`Code`] from one table: `Variant => "code", status, "title", retry_after;`.
macro_rules! problem_codes {
    ($($variant:ident => $code:literal, $status:literal, $title:literal, $retry:expr;)*) => {
        /// The stable codes. Clients match on `code`; titles and details are for people.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code clients match on (`invalid-document`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// Its title, for people.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }

            /// Seconds a client should wait before trying again, sent as `Retry-After`.
            pub fn retry_after(self) -> Option<u32> {
                match self {
                    $(Code::$variant => $retry,)*
                }
            }
        }
    };
}

// The backlog drains at the broker's pace, not the client's: `backlog-full` waits 5 s.
problem_codes! {
    MalformedJson => "malformed-json", 400, "The body is not valid JSON", None;
    InvalidCursor => "invalid-cursor", 400, "Invalid stream cursor or wait", None;
    InvalidQuery => "invalid-query", 400, "Invalid query string", None;
    JsonLimitExceeded => "json-limit-exceeded", 422, "The JSON is nested too deeply or holds too much", None;
    UnsupportedMediaType => "unsupported-media-type", 415, "The body must be application/json", None;
    PayloadTooLarge => "payload-too-large", 413, "The body is larger than this gateway accepts", None;
    InvalidDocument => "invalid-document", 422, "The document does not conform to its schema", None;
    UnknownDocumentType => "unknown-document-type", 422, "Unknown document type", None;
    UnknownSchemaVersion => "unknown-schema-version", 422, "Unknown schema version", None;
    Unroutable => "unroutable", 422, "No agency receives this document", None;
    InvalidIdempotencyKey => "invalid-idempotency-key", 400, "Invalid Idempotency-Key header", None;
    DuplicateConflict => "duplicate-conflict", 409, "Conflicts with a document already accepted", None;
    UcrTaken => "ucr-taken", 409, "The UCR belongs to another participant's consignment", None;
    UcrNotYours => "ucr-not-yours", 403, "The UCR names a party you do not act for", None;
    InvalidAcknowledgment => "invalid-acknowledgment", 422, "The acknowledgment does not conform to its schema", None;
    UnknownDocument => "unknown-document", 404, "Unknown document", None;
    InvalidRequest => "invalid-request", 422, "The request's members are not what this endpoint takes", None;
    DocumentSuperseded => "document-superseded", 409, "The document was amended since", None;
    DocumentWithdrawn => "document-withdrawn", 409, "The document was withdrawn", None;
    ConsignmentReleased => "consignment-released", 409, "The consignment is released", None;
    AmendmentUnchanged => "amendment-unchanged", 409, "The amendment changes nothing", None;
    NoOpenQuery => "no-open-query", 409, "No query is open on this document", None;
    QueryAlreadyAnswered => "query-already-answered", 409, "The query was answered already; the agency has not asked again", None;
    TooManyVersions => "too-many-versions", 409, "The document has as many versions as this region keeps", None;
    Unauthenticated => "unauthenticated", 401, "Authentication required", None;
    Forbidden => "forbidden", 403, "Not allowed", None;
    NotFound => "not-found", 404, "Not found", None;
    MethodNotAllowed => "method-not-allowed", 405, "Method not allowed", None;
    RequestTimeout => "request-timeout", 408, "The request body arrived too slowly", None;
    TooManyRequests => "too-many-requests", 429, "Past your quota", Some(1);
    Overloaded => "overloaded", 503, "Too busy", Some(1);
    BacklogFull => "backlog-full", 503, "Too many deliveries are waiting for the broker", Some(5);
    DeliveryNotFailed => "delivery-not-failed", 409, "The delivery has not failed", None;
    InvalidWebhook => "invalid-webhook", 422, "The webhook cannot be registered", None;
    InvalidRiskRules => "invalid-risk-rules", 422, "The risk rules cannot be put", None;
    NotEnoughFindings => "not-enough-findings", 409, "Too few findings to train a risk model", None;
    Unavailable => "unavailable", 503, "Temporarily unavailable", Some(1);
    Internal => "internal", 500, "Internal error", None;
}

/// Where the table ends (its test reads what follows).
#[cfg(test)]
const END_OF_TABLE: &str = "// The table ends here.";
// The table ends here.

/// An error answer: a code, a detail for people, and extension members.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    pub extra: Value,
    /// Response fields of this answer (a quota's `Retry-After` and `RateLimit` fields).
    pub headers: Vec<(&'static str, String)>,
}

impl From<crate::quota::Exceeded> for ApiError {
    fn from(e: crate::quota::Exceeded) -> Self {
        if e.gateway_wide {
            // The gateway's own bound, not the participant's: the answer of an overloaded gateway.
            return ApiError::new(Code::Overloaded, e.detail());
        }
        let mut error = ApiError::new(Code::TooManyRequests, e.detail()).with(json!({ "quota": e.policy, "limit": e.quota }));
        error.headers = e.headers();
        error
    }
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), extra: Value::Null, headers: Vec::new() }
    }
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }
    /// The RFC 9457 problem document this error is answered with.
    pub fn problem(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:ventanilla:problem:{}", self.code.as_str()),
            "title": self.code.title(),
            "status": self.code.status(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        body
    }

    pub(crate) fn violations(code: Code, detail: String, errors: &[Violation]) -> Self {
        ApiError::new(code, detail).with(json!({ "errors": errors }))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

fn internal(e: &dyn std::error::Error) -> ApiError {
    let chain = crate::telemetry::error_chain(e);
    tracing::error!(error = %chain, "request failed");
    ApiError::new(Code::Unavailable, "the gateway could not store the request; nothing was accepted, retry later")
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match &e {
            SubmitError::Invalid(v) => ApiError::violations(
                Code::InvalidDocument,
                format!("{} violation(s); each is listed in `errors` with a JSON pointer into the request body", v.len()),
                v,
            ),
            SubmitError::UnknownType { document_type, known } => ApiError::new(
                Code::UnknownDocumentType,
                format!("there is no schema for document type {document_type:?}; known types: {}", known.join(", ")),
            )
            .with(json!({ "knownTypes": known })),
            SubmitError::UnknownVersion { document_type, version, known } => ApiError::new(
                Code::UnknownSchemaVersion,
                format!("{document_type} has no version {version}; known versions: {}", known.join(", ")),
            )
            .with(json!({ "knownVersions": known })),
            SubmitError::Unroutable { .. } => ApiError::new(Code::Unroutable, format!("{e}; check origin and destination")),
            SubmitError::Refused(crate::access::Refusal::UcrOfAnotherParty { .. }) => ApiError::new(Code::UcrNotYours, e.to_string()),
            SubmitError::Refused(_) => ApiError::new(Code::Forbidden, e.to_string()),
            SubmitError::Conflict { document, .. } => {
                ApiError::new(Code::DuplicateConflict, e.to_string()).with(json!({ "documentId": document }))
            }
            SubmitError::UcrTaken(_) => ApiError::new(Code::UcrTaken, format!("{e}; use your own UCR")),
            SubmitError::BacklogFull { backlog, limit } => ApiError::new(
                Code::BacklogFull,
                format!("{e}: the broker is slow or unreachable. Nothing was stored; retry after the delay in Retry-After"),
            )
            .with(json!({ "backlog": backlog, "limit": limit })),
            SubmitError::ConsignmentReleased(_) => ApiError::new(
                Code::ConsignmentReleased,
                format!("{e} (gateway.change_after_release); a document for other goods opens a consignment of its own, under a new UCR"),
            ),
            SubmitError::TooManyVersions { max, .. } => ApiError::new(
                Code::TooManyVersions,
                format!("{e} (gateway.max_document_versions); ask the agencies concerned how to correct it"),
            )
            .with(json!({ "limit": max })),
            SubmitError::Store(_) => internal(&e),
        }
    }
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> Self {
        match &e {
            OperatorError::Refused(_) => ApiError::new(Code::Forbidden, e.to_string()),
            OperatorError::Quota(exceeded) => ApiError::from(exceeded.clone()),
            OperatorError::Store(_) => internal(&e),
        }
    }
}

impl From<AckError> for ApiError {
    fn from(e: AckError) -> Self {
        match &e {
            AckError::Invalid(v) => ApiError::violations(
                Code::InvalidAcknowledgment,
                format!("{} violation(s); each is listed in `errors`", v.len()),
                v,
            ),
            AckError::Refused(_) => ApiError::new(Code::Forbidden, e.to_string()),
            // Not routed to this agency reads like unknown: existence does not leak.
            AckError::UnknownDocument(d) | AckError::NotRouted { document: d, .. } => {
                ApiError::new(Code::UnknownDocument, format!("no document {d} is routed to your agency"))
            }
            AckError::Store(_) => internal(&e),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::InvalidRequest(v) => ApiError::violations(
                Code::InvalidRequest,
                format!("{} violation(s); each is listed in `errors` with a JSON pointer into the request body", v.len()),
                &v,
            ),
            ChangeError::Document(e) => e.into(),
            ChangeError::Refused(r) => {
                let detail = r.to_string();
                match r {
                    ChangeRefused::UnknownDocument(_) => ApiError::new(Code::UnknownDocument, format!("{detail}; check the documentId in the path")),
                    ChangeRefused::BacklogFull => ApiError::new(Code::BacklogFull, format!("{detail}; send it again in a few seconds")),
                    ChangeRefused::Superseded { latest, .. } => ApiError::new(
                        Code::DocumentSuperseded,
                        format!("{detail}: amend, withdraw or answer for {latest} instead"),
                    )
                    .with(json!({ "latestDocumentId": latest })),
                    ChangeRefused::Withdrawn(_) => ApiError::new(Code::DocumentWithdrawn, format!("{detail}: submit a new document instead")),
                    ChangeRefused::Released(_) => ApiError::new(
                        Code::ConsignmentReleased,
                        format!("{detail} (gateway.change_after_release); ask the agencies concerned how to correct it"),
                    ),
                    ChangeRefused::NoOpenQuery { .. } => ApiError::new(
                        Code::NoOpenQuery,
                        format!("{detail}: a response answers an agency's `query`; see the document's deliveries in GET /v1/consignments/{{ucr}}"),
                    ),
                    ChangeRefused::NotTheSameDocument { pointer, what, .. } => {
                        let other = if what == "UCR" { "consignment" } else { "type" };
                        let violation = Violation::new(pointer, "const", format!("{detail}; submit a new document for another {other}"));
                        ApiError::violations(Code::InvalidRequest, format!("1 violation: {detail}"), &[violation])
                    }
                    ChangeRefused::Unchanged { document, .. } => {
                        ApiError::new(Code::AmendmentUnchanged, detail).with(json!({ "documentId": document }))
                    }
                    ChangeRefused::TooManyVersions { max, .. } => ApiError::new(
                        Code::TooManyVersions,
                        format!("{detail} (gateway.max_document_versions); ask the agencies concerned how to correct it"),
                    )
                    .with(json!({ "limit": max })),
                    ChangeRefused::QueryAnswered { .. } => ApiError::new(
                        Code::QueryAlreadyAnswered,
                        format!("{detail}: one response per query; wait for the agency's next query (its `query` answer) before responding again"),
                    ),
                }
            }
            ChangeError::Store(_) => internal(&e),
        }
    }
}

/// The problem of JSON that could not be taken (also told to an agency whose ack record it was).
pub fn json_problem(e: &JsonError) -> ApiError {
    match e {
        JsonError::Limit(l) => beyond(l.clone()),
        JsonError::Syntax(e) => malformed(e),
    }
}

pub(crate) fn beyond(l: crate::json::LimitExceeded) -> ApiError {
    ApiError::new(Code::JsonLimitExceeded, format!("{l}; the gateway's bound is {} = {}", l.bound(), l.limit()))
        .with(serde_json::json!({"bound": l.bound(), "limit": l.limit()}))
}

pub(crate) fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::new(Code::MalformedJson, format!("the body is not valid JSON: {e}"))
        .with(serde_json::json!({"line": e.line(), "column": e.column()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of the table is answered somewhere: named by the code that builds its
    /// problem, outside the table.
    #[test]
    fn every_code_is_served_somewhere() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut sources = String::new();
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // This file's table and tests name every code: what follows the table does not.
                    let served = match path.ends_with("problems.rs") {
                        true => text.rsplit(END_OF_TABLE).next().and_then(|t| t.split("#[cfg(test)]").next()).unwrap_or_default().to_owned(),
                        false => text,
                    };
                    sources.push_str(&served);
                }
            }
        }
        for code in Code::ALL {
            let named = format!("Code::{code:?}");
            assert!(sources.contains(&named), "{} ({named}) is in the table and answered nowhere", code.as_str());
        }
    }

    /// Every code is in docs/errors.md's table, on the row of its status.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md")).unwrap();
        for code in Code::ALL {
            let row = doc.lines().filter(|l| l.starts_with('|')).find(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                cells.len() > 3 && cells[2].split(", ").any(|c| c == format!("`{}`", code.as_str()))
            });
            let Some(row) = row else { panic!("{} is not in docs/errors.md's table", code.as_str()) };
            assert!(row.starts_with(&format!("| {} |", code.status())), "{} is documented with another status: {row}", code.as_str());
        }
    }

    #[test]
    fn a_problem_document_carries_its_codes_status_title_and_members() {
        let p = ApiError::new(Code::BacklogFull, "wait").with(json!({"backlog": 3})).problem();
        assert_eq!(p["status"], 503);
        assert_eq!(p["code"], "backlog-full");
        assert_eq!(p["type"], "urn:ventanilla:problem:backlog-full");
        assert_eq!(p["backlog"], 3);
        assert_eq!(Code::BacklogFull.retry_after(), Some(5));
        let all: std::collections::HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(all.len(), Code::ALL.len(), "each code once");
    }
}
