//! The API's errors: every one a problem of `crate::problems`' one table of stable codes,
//! answered as an RFC 9457 problem document (`application/problem+json`) with its status,
//! `Retry-After` and `WWW-Authenticate`; and the problem document's schema for `/openapi.json`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::pointer::Violation;
pub use crate::problems::{ApiError, Code};

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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let body = self.problem();
        let mut res = HttpResponse::build(self.status_code());
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
