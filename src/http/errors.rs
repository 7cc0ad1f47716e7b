//! One list of stable error codes, each with its HTTP status; every error the API answers is
//! one of them, as an RFC 9457 problem document (`application/problem+json`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::gateway::{AckError, ChangeError, OperatorError, SubmitError};
use crate::lifecycle::ChangeRefused;
use crate::pointer::Violation;

/// The stable codes. Clients match on `code`; titles and details are for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    MalformedJson,
    InvalidCursor,
    InvalidQuery,
    JsonLimitExceeded,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidDocument,
    UnknownDocumentType,
    UnknownSchemaVersion,
    Unroutable,
    InvalidIdempotencyKey,
    DuplicateConflict,
    UcrTaken,
    UcrNotYours,
    InvalidAcknowledgment,
    UnknownDocument,
    InvalidRequest,
    DocumentSuperseded,
    DocumentWithdrawn,
    ConsignmentReleased,
    AmendmentUnchanged,
    NoOpenQuery,
    QueryAlreadyAnswered,
    TooManyVersions,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    TooManyRequests,
    Overloaded,
    BacklogFull,
    DeliveryNotFailed,
    InvalidWebhook,
    InvalidRiskRules,
    NotEnoughFindings,
    Unavailable,
    Internal,
}

impl Code {
    /// Every code, for the API description.
    pub const ALL: [Code; 38] = [
        Code::MalformedJson,
        Code::InvalidCursor,
        Code::InvalidQuery,
        Code::JsonLimitExceeded,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::InvalidDocument,
        Code::UnknownDocumentType,
        Code::UnknownSchemaVersion,
        Code::Unroutable,
        Code::InvalidIdempotencyKey,
        Code::DuplicateConflict,
        Code::UcrTaken,
        Code::UcrNotYours,
        Code::InvalidAcknowledgment,
        Code::UnknownDocument,
        Code::InvalidRequest,
        Code::DocumentSuperseded,
        Code::DocumentWithdrawn,
        Code::ConsignmentReleased,
        Code::AmendmentUnchanged,
        Code::NoOpenQuery,
        Code::QueryAlreadyAnswered,
        Code::TooManyVersions,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::RequestTimeout,
        Code::TooManyRequests,
        Code::Overloaded,
        Code::BacklogFull,
        Code::DeliveryNotFailed,
        Code::InvalidWebhook,
        Code::InvalidRiskRules,
        Code::NotEnoughFindings,
        Code::Unavailable,
        Code::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed-json",
            Code::InvalidCursor => "invalid-cursor",
            Code::InvalidQuery => "invalid-query",
            Code::JsonLimitExceeded => "json-limit-exceeded",
            Code::UnsupportedMediaType => "unsupported-media-type",
            Code::PayloadTooLarge => "payload-too-large",
            Code::InvalidDocument => "invalid-document",
            Code::UnknownDocumentType => "unknown-document-type",
            Code::UnknownSchemaVersion => "unknown-schema-version",
            Code::Unroutable => "unroutable",
            Code::InvalidIdempotencyKey => "invalid-idempotency-key",
            Code::DuplicateConflict => "duplicate-conflict",
            Code::UcrTaken => "ucr-taken",
            Code::UcrNotYours => "ucr-not-yours",
            Code::InvalidAcknowledgment => "invalid-acknowledgment",
            Code::UnknownDocument => "unknown-document",
            Code::InvalidRequest => "invalid-request",
            Code::DocumentSuperseded => "document-superseded",
            Code::DocumentWithdrawn => "document-withdrawn",
            Code::ConsignmentReleased => "consignment-released",
            Code::AmendmentUnchanged => "amendment-unchanged",
            Code::NoOpenQuery => "no-open-query",
            Code::QueryAlreadyAnswered => "query-already-answered",
            Code::TooManyVersions => "too-many-versions",
            Code::Unauthenticated => "unauthenticated",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not-found",
            Code::MethodNotAllowed => "method-not-allowed",
            Code::RequestTimeout => "request-timeout",
            Code::TooManyRequests => "too-many-requests",
            Code::Overloaded => "overloaded",
            Code::BacklogFull => "backlog-full",
            Code::DeliveryNotFailed => "delivery-not-failed",
            Code::InvalidWebhook => "invalid-webhook",
            Code::InvalidRiskRules => "invalid-risk-rules",
            Code::NotEnoughFindings => "not-enough-findings",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::MalformedJson | Code::InvalidIdempotencyKey | Code::InvalidCursor | Code::InvalidQuery => {
                StatusCode::BAD_REQUEST
            }
            Code::DuplicateConflict
            | Code::DeliveryNotFailed
            | Code::UcrTaken
            | Code::DocumentSuperseded
            | Code::DocumentWithdrawn
            | Code::ConsignmentReleased
            | Code::AmendmentUnchanged
            | Code::NoOpenQuery
            | Code::QueryAlreadyAnswered
            | Code::NotEnoughFindings
            | Code::TooManyVersions => StatusCode::CONFLICT,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::InvalidDocument
            | Code::JsonLimitExceeded
            | Code::UnknownDocumentType
            | Code::UnknownSchemaVersion
            | Code::Unroutable
            | Code::InvalidAcknowledgment
            | Code::InvalidRequest
            | Code::InvalidWebhook
            | Code::InvalidRiskRules => StatusCode::UNPROCESSABLE_ENTITY,
            Code::UnknownDocument | Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::UcrNotYours => StatusCode::FORBIDDEN,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::Overloaded | Code::BacklogFull => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Code::MalformedJson => "The body is not valid JSON",
            Code::InvalidCursor => "Invalid stream cursor or wait",
            Code::InvalidQuery => "Invalid query string",
            Code::JsonLimitExceeded => "The JSON is nested too deeply or holds too much",
            Code::UnsupportedMediaType => "The body must be application/json",
            Code::PayloadTooLarge => "The body is larger than this gateway accepts",
            Code::InvalidDocument => "The document does not conform to its schema",
            Code::UnknownDocumentType => "Unknown document type",
            Code::UnknownSchemaVersion => "Unknown schema version",
            Code::Unroutable => "No agency receives this document",
            Code::InvalidIdempotencyKey => "Invalid Idempotency-Key header",
            Code::DuplicateConflict => "Conflicts with a document already accepted",
            Code::UcrTaken => "The UCR belongs to another participant's consignment",
            Code::UcrNotYours => "The UCR names a party you do not act for",
            Code::InvalidAcknowledgment => "The acknowledgment does not conform to its schema",
            Code::UnknownDocument => "Unknown document",
            Code::InvalidRequest => "The request's members are not what this endpoint takes",
            Code::DocumentSuperseded => "The document was amended since",
            Code::DocumentWithdrawn => "The document was withdrawn",
            Code::ConsignmentReleased => "The consignment is released",
            Code::AmendmentUnchanged => "The amendment changes nothing",
            Code::NoOpenQuery => "No query is open on this document",
            Code::QueryAlreadyAnswered => "The query was answered already; the agency has not asked again",
            Code::TooManyVersions => "The document has as many versions as this region keeps",
            Code::Unauthenticated => "Authentication required",
            Code::Forbidden => "Not allowed",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::RequestTimeout => "The request body arrived too slowly",
            Code::TooManyRequests => "Past your quota",
            Code::Overloaded => "Too busy",
            Code::BacklogFull => "Too many deliveries are waiting for the broker",
            Code::DeliveryNotFailed => "The delivery has not failed",
            Code::InvalidWebhook => "The webhook cannot be registered",
            Code::InvalidRiskRules => "The risk rules cannot be put",
            Code::NotEnoughFindings => "Too few findings to train a risk model",
            Code::Unavailable => "Temporarily unavailable",
            Code::Internal => "Internal error",
        }
    }

    /// Seconds a client should wait before trying again, sent as `Retry-After`.
    pub fn retry_after(self) -> Option<u32> {
        match self {
            Code::Overloaded | Code::Unavailable | Code::TooManyRequests => Some(1),
            // The backlog drains at the broker's pace, not the client's.
            Code::BacklogFull => Some(5),
            _ => None,
        }
    }
}

/// The schema of the problem document every error is answered with (see [`ApiError::problem`]).
pub struct Problem;

impl schemars::JsonSchema for Problem {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let violation = generator.subschema_for::<Violation>();
        let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        schemars::json_schema!({
            "description": "An RFC 9457 problem document. Clients match on `code`; `title` and `detail` are for people. Some problems carry more members: `errors` (violations, each with a JSON pointer), `knownTypes`, `knownVersions`, `documentId`, `limit`, `backlog`.",
            "type": "object",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": { "type": "string" },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string" },
                "code": { "type": "string", "enum": codes },
                "errors": { "type": "array", "items": violation }
            }
        })
    }
}

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
            "status": self.code.status().as_u16(),
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

    fn violations(code: Code, detail: String, errors: &[Violation]) -> Self {
        ApiError::new(code, detail).with(json!({ "errors": errors }))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let body = self.problem();
        let mut res = HttpResponse::build(self.code.status());
        if let Some(secs) = self.code.retry_after() {
            res.insert_header(("Retry-After", secs.to_string()));
        }
        for (name, value) in &self.headers {
            res.insert_header((*name, value.as_str()));
        }
        if self.code == Code::Unauthenticated {
            res.insert_header(("WWW-Authenticate", "Bearer realm=\"ventanilla\""));
        }
        res.content_type("application/problem+json").body(body.to_string())
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
