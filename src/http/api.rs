//! The API's one description: every route with its method, handler, access, parameters and
//! answers. The gateway registers its routes from this table, answers 405 with `Allow` from it,
//! and generates `/openapi.json` (OpenAPI 3.1) from it, with the bodies' schemas derived from
//! the Rust types that serialize them (schemars) and the document schemas taken from the
//! registry the gateway validates with. Routes and bodies cannot drift from what is served;
//! summaries, parameter patterns and the webhook POST's headers are written here, next to them.

use actix_web::http::Method;
use actix_web::{web, Route};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::errors::{Code, Problem};
use super::{metrics, risk, routes, stream, webhooks};
use crate::config::GatewayConfig;
use crate::schema::SchemaRegistry;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health, readiness, the API description).
    Anyone,
    /// Any registered participant; the handler decides what it sees.
    Participant,
    /// Operators only.
    Operator,
}

/// A body's schema, from a Rust type.
type SchemaOf = fn(&mut SchemaGenerator) -> Value;

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// What a request or an answer carries.
#[derive(Clone, Copy)]
pub enum Body {
    /// Nothing.
    None,
    /// JSON of a Rust type.
    Json(SchemaOf),
    /// A document envelope: its payload one of the registry's document types.
    Envelope,
    /// Many envelopes: a JSON array, or NDJSON.
    Batch,
    /// An agency's answer, by the registry's acknowledgment schema.
    Acknowledgment,
    /// An amendment: a reason and a document envelope.
    Amendment,
    /// A withdrawal: a reason.
    Withdrawal,
    /// A response to a query: text, an agency, a supporting document envelope.
    Response,
    /// A long-poll page (JSON) or Server-Sent Events.
    Stream,
    /// Prometheus text.
    Metrics,
    /// A JSON Schema from the registry.
    SchemaDocument,
    /// The OpenAPI document itself.
    OpenApi,
    /// A static file of this media type (the dashboard's).
    File(&'static str),
}

/// A query or header parameter.
pub struct Param {
    pub name: &'static str,
    pub description: &'static str,
    /// The values the handler takes.
    pub pattern: &'static str,
}

const AFTER: Param = Param {
    name: "after",
    description: "Cursor: answer the events after this one (`Last-Event-ID` wins when both are sent).",
    pattern: "^[0-9]{1,18}$",
};
const WAIT: Param = Param {
    name: "wait",
    description: "Long poll: answer a JSON page as soon as there are events, or an empty one after this long (e.g. `30s`; at most `gateway.max_poll_wait_seconds`, 60 s by default). Without it, the answer is a Server-Sent Events stream.",
    pattern: "^([0-9]{1,3}(ms|s|m)|0)$",
};
const AGENCY: Param = Param { name: "agency", description: "Only this agency's deliveries.", pattern: "^[a-z]{2}-[a-z][a-z0-9-]{1,40}$" };
const IDEMPOTENCY_KEY: Param = Param {
    name: "Idempotency-Key",
    description: "Sending the same request again with the same key is answered from the first (`Idempotent-Replayed: true`); the same key with another body is 409.",
    pattern: "^[!-~]{1,255}$",
};
const FROM: Param = Param {
    name: "from",
    description: "Consignments lodged from this time on (a date, `2026-11-01`, or an RFC 3339 time in UTC, from 1970-01-01 to 9999-12-31); 30 days before `to` by default.",
    pattern: DATE_PATTERN,
};
const TO: Param = Param {
    name: "to",
    description: "Consignments lodged before this time (as `from`); now by default. A period that ends before it starts holds nothing.",
    pattern: DATE_PATTERN,
};
const RISK_PERIOD_FROM: Param = Param {
    name: "from",
    description: "The period's start: deliveries made (performance), inspections reported (sellers), from this time on (a date, `2026-12-01`, or an RFC 3339 time in UTC, from 1970-01-01 to 9999-12-31); 7 days before `to` by default. A period is read for its last 92 days at most: the answer's `from` is the one read.",
    pattern: DATE_PATTERN,
};
const RISK_PERIOD_TO: Param = Param {
    name: "to",
    description: "The period's end, not included (as `from`); now by default. A period that ends before it starts holds nothing.",
    pattern: DATE_PATTERN,
};
const PLATFORM: Param = Param {
    name: "platform",
    description: "The platform (its participant id) whose sellers to read: an operator's choice (every submitter's parcels when left out); a platform reads only its own.",
    pattern: "^[!-~]{1,100}$",
};
/// A date or an RFC 3339 time in UTC, from 1970 to 9999 (February 29th is taken but not described).
const DATE_PATTERN: &str = "^(19[7-9][0-9]|[2-9][0-9]{3})-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?Z)?$";
const INTERVAL: Param = Param {
    name: "interval",
    description: "What is measured: `arrival-to-release` (the WCO TRS figure, the default), `lodgement-to-release`, `arrival-to-lodgement` (negative: pre-arrival processing), `agency-first-answer`, `agency-decision`, `hold`, `query-trader`, `query-agency`.",
    pattern: "^(arrival-to-release|lodgement-to-release|arrival-to-lodgement|agency-first-answer|agency-decision|hold|query-trader|query-agency)$",
};
const GROUP_BY: Param = Param {
    name: "groupBy",
    description: "Segments, comma-separated: `agency`, `agencyKind`, `documentType`, `corridor` (origin-destination), `borderPost`, `transportMode`, `hsChapter`, `channel` (with-hold, with-query, without), `preArrival`, `riskChannel` (the strictest channel risk selection gave its deliveries: red, yellow, green, unselected; operators only, `403` for others).",
    pattern: "^((agency|agencyKind|documentType|corridor|borderPost|transportMode|hsChapter|channel|preArrival|riskChannel)(,(agency|agencyKind|documentType|corridor|borderPost|transportMode|hsChapter|channel|preArrival|riskChannel))*)?$",
};
const VERSIONS_OF: Param = Param {
    name: "versionsOf",
    description: "Page a document's earlier versions: the id of its first version (`earlierVersions[].documentId`; `next` gives the whole path). The view then shows only that document's versions below `before`, at most 20, the latest of them.",
    pattern: "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
};
const BEFORE: Param = Param {
    name: "before",
    description: "With `versionsOf`: only versions numbered below this one (without it, nothing to page: ignored).",
    pattern: "^[1-9][0-9]{0,8}$",
};
const TREND: Param = Param { name: "trend", description: "Also give each group's figures per `day` or per `week` (from Monday), by lodgement.", pattern: "^(day|week)$" };
const MODE_BIN: Param = Param { name: "modeBin", description: "Width of the mode's bins (`15m`, `1h`, `1d`; at least `1s`); `1h` by default.", pattern: "^[1-9][0-9]{0,5}(s|m|h|d)$" };
const MONTH: Param = Param {
    name: "month",
    description: "The calendar month (UTC) of lodgement, `2026-11`: published once it has ended and `indicators.public_settle_days` (7) have passed, counting what closed by then (`404` before); the latest published by default.",
    pattern: "^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$",
};
const PUBLIC_GROUP_BY: Param = Param {
    name: "groupBy",
    description: "One segment: `documentType`, `corridor`, `borderPost`, `transportMode`, `hsChapter`, `channel`, `preArrival`, `riskChannel`; and `agency` or `agencyKind` for the intervals of an agency's own (`agency-first-answer`, `agency-decision`, `hold`, `query-trader`, `query-agency`; `404` for the others).",
    pattern: "^(agency|agencyKind|documentType|corridor|borderPost|transportMode|hsChapter|channel|preArrival|riskChannel)?$",
};
const PUBLIC_TREND: Param = Param {
    name: "trend",
    description: "The month's figures per `day` or per `week` (from Monday), by lodgement, over every consignment (`404` with `groupBy`).",
    pattern: "^(day|week)$",
};
const PUBLIC_MODE_BIN: Param =
    Param { name: "modeBin", description: "Width of the mode's bins: whole hours up to a day, or whole days up to a week (`1h`, `6h`, `1d`); `1h` by default.", pattern: "^(([1-9]|1[0-9]|2[0-4])h|[1-7]d)$" };
const LAST_EVENT_ID: Param =
    Param { name: "Last-Event-ID", description: "The cursor a reconnecting client continues from.", pattern: "^[0-9]{1,18}$" };

/// One endpoint.
pub struct Endpoint {
    pub method: Method,
    /// The path, `{name}` for a path parameter (the same syntax for actix and OpenAPI).
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub query: &'static [Param],
    /// Headers the endpoint reads: `Idempotency-Key`, `Last-Event-ID`.
    pub headers: &'static [Param],
    pub request: Body,
    /// The success status and what it carries.
    pub ok: (u16, Body),
    /// The errors this endpoint answers besides those every endpoint of its kind can answer
    /// (authentication, body reading).
    pub errors: &'static [Code],
    /// Attaches the handler.
    handler: fn(Route) -> Route,
}

/// Errors of everything that reads a JSON body.
const BODY_ERRORS: [Code; 5] =
    [Code::MalformedJson, Code::JsonLimitExceeded, Code::UnsupportedMediaType, Code::PayloadTooLarge, Code::RequestTimeout];
/// Errors of everything that writes.
const WRITE_ERRORS: [Code; 2] = [Code::Overloaded, Code::Unavailable];

/// Every endpoint, in the order they are documented.
pub fn endpoints() -> Vec<Endpoint> {
    use Access::*;
    vec![
        Endpoint {
            method: Method::POST,
            path: "/v1/documents",
            operation_id: "submitDocument",
            tag: "documents",
            summary: "Submit a document: validated, stored, then routed to every agency concerned. 202 means it will be delivered.",
            access: Participant,
            query: &[],
            headers: &[IDEMPOTENCY_KEY],
            request: Body::Envelope,
            ok: (202, Body::Json(of::<crate::store::Receipt>)),
            errors: &[
                Code::InvalidDocument,
                Code::UnknownDocumentType,
                Code::UnknownSchemaVersion,
                Code::Unroutable,
                Code::InvalidIdempotencyKey,
                Code::DuplicateConflict,
                Code::UcrTaken,
                Code::ConsignmentReleased,
                Code::TooManyVersions,
                Code::UcrNotYours,
                Code::Forbidden,
                Code::BacklogFull,
            ],
            handler: |r| r.to(routes::submit_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents:batch",
            operation_id: "submitBatch",
            tag: "documents",
            summary: "Submit many documents (a JSON array, or NDJSON); one result per item, in order.",
            access: Participant,
            query: &[],
            headers: &[IDEMPOTENCY_KEY],
            request: Body::Batch,
            ok: (200, Body::Json(of::<routes::BatchAnswer>)),
            errors: &[Code::InvalidIdempotencyKey],
            handler: |r| r.to(routes::submit_batch),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/validate",
            operation_id: "validateDocument",
            tag: "documents",
            summary: "Check a document exactly as submission would; nothing is stored or routed.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Envelope,
            ok: (200, Body::Json(of::<routes::ValidationReport>)),
            errors: &[Code::InvalidDocument, Code::UnknownDocumentType, Code::UnknownSchemaVersion, Code::Unroutable, Code::UcrNotYours, Code::Forbidden],
            handler: |r| r.to(routes::validate),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/amendments",
            operation_id: "amendDocument",
            tag: "documents",
            summary: "Amend a document: a full envelope of the same type and UCR, with a reason. Validated and routed as a submission; the receipt names the new documentId, the one it `amends`, and its `version`. Agencies receive it as `org.ventanilla.document.amended`; an agency the new version is no longer routed to is sent a withdrawal of the earlier one. Only the document's sender, or the NSW acting for it.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Amendment,
            ok: (202, Body::Json(of::<crate::store::Receipt>)),
            errors: &[
                Code::InvalidRequest,
                Code::InvalidDocument,
                Code::UnknownDocumentType,
                Code::UnknownSchemaVersion,
                Code::Unroutable,
                Code::UnknownDocument,
                Code::DocumentSuperseded,
                Code::DocumentWithdrawn,
                Code::ConsignmentReleased,
                Code::AmendmentUnchanged,
                Code::TooManyVersions,
                Code::UcrNotYours,
                Code::Forbidden,
                Code::BacklogFull,
            ],
            handler: |r| r.to(routes::amend_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/withdrawal",
            operation_id: "withdrawDocument",
            tag: "documents",
            summary: "Withdraw a document, with a reason. Every agency it went to receives `org.ventanilla.document.withdrawn`; later answers to it are recorded as late; a consignment whose documents are all withdrawn is `withdrawn`. Withdrawing again answers the first withdrawal. Only the document's sender, or the NSW acting for it.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Withdrawal,
            ok: (202, Body::Json(of::<crate::lifecycle::Withdrawal>)),
            errors: &[
                Code::InvalidRequest,
                Code::UnknownDocument,
                Code::DocumentSuperseded,
                Code::ConsignmentReleased,
                Code::Forbidden,
            ],
            handler: |r| r.to(routes::withdraw_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/responses",
            operation_id: "respondToQuery",
            tag: "documents",
            summary: "Answer an agency's query on a document: text, and optionally a supporting document (an envelope of the same consignment, validated as a submission). Each agency with a query open on the document (or the one named) receives it as `org.ventanilla.query.answered`. Only the document's sender, or the NSW acting for it.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Response,
            ok: (202, Body::Json(of::<crate::lifecycle::ResponseReceipt>)),
            errors: &[
                Code::InvalidRequest,
                Code::InvalidDocument,
                Code::UnknownDocumentType,
                Code::UnknownSchemaVersion,
                Code::UnknownDocument,
                Code::DocumentSuperseded,
                Code::DocumentWithdrawn,
                Code::NoOpenQuery,
                Code::QueryAlreadyAnswered,
                Code::Forbidden,
            ],
            handler: |r| r.to(routes::respond_to_query),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/acknowledgments",
            operation_id: "acknowledge",
            tag: "agencies",
            summary: "An agency's answer about a document routed to it.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Acknowledgment,
            ok: (200, Body::Json(of::<crate::store::AckApplied>)),
            errors: &[Code::InvalidAcknowledgment, Code::UnknownDocument, Code::Forbidden],
            handler: |r| r.to(routes::acknowledge),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/agencies/{agency}/documents",
            operation_id: "agencyDocuments",
            tag: "agencies",
            summary: "The deliveries routed to an agency, as CloudEvents: Server-Sent Events, or a long poll with `wait`.",
            access: Participant,
            query: &[AFTER, WAIT],
            headers: &[LAST_EVENT_ID],
            request: Body::None,
            ok: (200, Body::Stream),
            errors: &[Code::NotFound, Code::InvalidCursor, Code::InvalidQuery, Code::Unavailable],
            handler: |r| r.to(stream::agency_documents),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/consignments/events",
            operation_id: "consignmentEvents",
            tag: "consignments",
            summary: "State changes of the caller's consignments: Server-Sent Events, or a long poll with `wait`.",
            access: Participant,
            query: &[AFTER, WAIT],
            headers: &[LAST_EVENT_ID],
            request: Body::None,
            ok: (200, Body::Stream),
            errors: &[Code::Forbidden, Code::InvalidCursor, Code::InvalidQuery, Code::Unavailable],
            handler: |r| r.to(stream::consignment_events),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/consignments/{ucr}",
            operation_id: "consignment",
            tag: "consignments",
            summary: "A consignment: its documents (each one's latest versions; a longer history is listed in `earlierVersions`, paged with `versionsOf` and `before`), every agency's delivery and answers, and the time-release figures.",
            access: Participant,
            query: &[VERSIONS_OF, BEFORE],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::ConsignmentView>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            handler: |r| r.to(routes::consignment),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/indicators/release-times",
            operation_id: "releaseTimes",
            tag: "indicators",
            summary: "Release-time indicators after the WCO Time Release Study, from the exchange's own events: count, mean (the WTO TFA Art. 7.6 figure), median, p90, mode, min, max, the outliers and every figure without them, per segment and per period. An operator reads every consignment; a trader or NSW its own consignments; an agency its own part in the consignments routed to it.",
            access: Participant,
            query: &[FROM, TO, INTERVAL, GROUP_BY, TREND, MODE_BIN],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::figures::Figures>)),
            errors: &[Code::InvalidQuery, Code::Forbidden, Code::Unavailable],
            handler: |r| r.to(super::indicators::release_times),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/public/indicators/release-times",
            operation_id: "publicReleaseTimes",
            tag: "indicators",
            summary: "The published figures, for anyone, without identity, over every consignment: one calendar month once it has settled, overall, by one segment, or per day or week. A cell of fewer consignments than the region's threshold (`indicators.public_min_count`, 5 by default), or of fewer besides its largest trader's, is suppressed, and others with it so that none can be computed from the rest; no minimum or maximum. Answers are kept a minute (`Cache-Status`, `Age`); computing new ones is bounded per source address (`429`) and for the gateway (`503`).",
            access: Anyone,
            query: &[MONTH, INTERVAL, PUBLIC_GROUP_BY, PUBLIC_TREND, PUBLIC_MODE_BIN],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::figures::Figures>)),
            errors: &[Code::InvalidQuery, Code::NotFound, Code::TooManyRequests, Code::Overloaded, Code::Unavailable],
            handler: |r| r.to(super::indicators::public_release_times),
        },
        Endpoint {
            method: Method::GET,
            path: "/asyncapi.json",
            operation_id: "asyncapi",
            tag: "agencies",
            summary: "The Kafka side as AsyncAPI 3.0: every agency's document, ack and refused-answers topics, the status and dead-letter topics, with the CloudEvents headers and the payloads' schemas.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::OpenApi),
            errors: &[],
            handler: |r| r.to(routes::asyncapi),
        },
        Endpoint {
            method: Method::GET,
            path: "/.well-known/jwks.json",
            operation_id: "receiptKeys",
            tag: "documents",
            summary: "The public keys (JWKS, Ed25519) that receipts' `signature` (a JWS over the receipt) is made with; every key a receipt may name, also after a rotation.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<super::dashboard::Jwks>)),
            errors: &[],
            handler: |r| r.to(super::dashboard::jwks),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard",
            operation_id: "dashboard",
            tag: "indicators",
            summary: "The release-time dashboard (HTML; works offline). With `#token=...` in the address, a participant's own figures; without, the public ones.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/html")),
            errors: &[],
            handler: |r| r.to(super::dashboard::page),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/app.js",
            operation_id: "dashboardScript",
            tag: "indicators",
            summary: "The dashboard's script.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/javascript")),
            errors: &[],
            handler: |r| r.to(super::dashboard::script),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/style.css",
            operation_id: "dashboardStyle",
            tag: "indicators",
            summary: "The dashboard's style sheet.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/css")),
            errors: &[],
            handler: |r| r.to(super::dashboard::style),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/webhooks",
            operation_id: "registerWebhook",
            tag: "consignments",
            summary: "Have the state changes of your consignments POSTed to a URL, signed (see `webhooks`). The secret is answered only here.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::Json(of::<webhooks::WebhookRequest>),
            ok: (201, Body::Json(of::<crate::store::WebhookRegistered>)),
            errors: &[Code::InvalidWebhook, Code::Forbidden],
            handler: |r| r.to(webhooks::register),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/webhooks",
            operation_id: "webhooks",
            tag: "consignments",
            summary: "Your webhooks, and how their deliveries stand.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<webhooks::WebhookList>)),
            errors: &[Code::Forbidden, Code::Unavailable],
            handler: |r| r.to(webhooks::list),
        },
        Endpoint {
            method: Method::DELETE,
            path: "/v1/webhooks/{webhook}",
            operation_id: "deleteWebhook",
            tag: "consignments",
            summary: "Stop a webhook.",
            access: Participant,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (204, Body::None),
            errors: &[Code::Forbidden, Code::NotFound, Code::Unavailable],
            handler: |r| r.to(webhooks::delete),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/deliveries/failed",
            operation_id: "failedDeliveries",
            tag: "operations",
            summary: "Deliveries the broker refused on every attempt.",
            access: Operator,
            query: &[AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::FailedDeliveries>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            handler: |r| r.to(routes::failed_deliveries),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/deliveries/failed/retry",
            operation_id: "retryFailedDeliveries",
            tag: "operations",
            summary: "Send every failed delivery (of one agency) again.",
            access: Operator,
            query: &[AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::RetryOutcome>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            handler: |r| r.to(routes::retry_failed),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/deliveries/{id}/retry",
            operation_id: "retryDelivery",
            tag: "operations",
            summary: "Send one failed delivery again.",
            access: Operator,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::RetryOutcome>)),
            errors: &[Code::NotFound, Code::DeliveryNotFailed, Code::Unavailable],
            handler: |r| r.to(routes::retry_delivery),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/rules",
            operation_id: "riskRules",
            tag: "operations",
            summary: "The risk rules every delivery's channel is chosen with now: the region file's, or the latest set an operator put, with who put it, when and why.",
            access: Operator,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<risk::RiskRules>)),
            errors: &[Code::Forbidden],
            handler: |r| r.to(risk::rules),
        },
        Endpoint {
            method: Method::PUT,
            path: "/v1/risk/rules",
            operation_id: "putRiskRules",
            tag: "operations",
            summary: "Replace the risk rules, whole, with a reason: checked as the region file's are (a rule reading a fact its document types lack is refused, named), kept in the store and the audit log, and used by every gateway of the store from its next document (within 5 s for the others).",
            access: Operator,
            query: &[],
            headers: &[],
            request: Body::Json(of::<risk::RiskRulesChange>),
            ok: (200, Body::Json(of::<risk::RiskRules>)),
            errors: &[Code::InvalidRiskRules, Code::Forbidden, Code::Unavailable],
            handler: |r| r.to(risk::put_rules),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/risk/models",
            operation_id: "trainRiskModel",
            tag: "operations",
            summary: "Train a risk model now on every inspection finding kept (logistic regression; the most recent fifth held back to judge it). It goes live only if its precision at the budget on those findings beats the live model's; kept in the store and the audit log either way.",
            access: Operator,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<risk::TrainedModel>)),
            errors: &[Code::NotEnoughFindings, Code::Forbidden, Code::Unavailable],
            handler: |r| r.to(risk::train_model),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/performance",
            operation_id: "riskPerformance",
            tag: "operations",
            summary: "How risk selection performed in a period (7 days by default), per agency: documents, realized red and yellow rates against the budget's, inspections, findings, irregularities, hit rate and revenue by the source that selected them, the live model's version and precision, and the drift of the scores since it was trained. Operators read every agency's; an agency its own.",
            access: Participant,
            query: &[RISK_PERIOD_FROM, RISK_PERIOD_TO, AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::risk::performance::Performance>)),
            errors: &[Code::InvalidQuery, Code::NotFound, Code::Forbidden, Code::Overloaded, Code::Unavailable],
            handler: |r| r.to(risk::performance),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/sellers",
            operation_id: "riskSellers",
            tag: "operations",
            summary: "A platform's sellers as inspections found them in a period (7 days by default, widened to whole UTC days): for the parcels the platform submitted, each seller's inspections and irregularities, the most irregularities first (at most 1,000 sellers). Counts of findings only, never the rules, scores or reasons. A platform reads its own; an operator any platform's, or every submitter's.",
            access: Participant,
            query: &[RISK_PERIOD_FROM, RISK_PERIOD_TO, PLATFORM],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::risk::sellers::SellerReport>)),
            errors: &[Code::InvalidQuery, Code::Forbidden, Code::Overloaded, Code::Unavailable],
            handler: |r| r.to(risk::sellers),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/schemas",
            operation_id: "schemas",
            tag: "schemas",
            summary: "The registry's document types and versions.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::SchemaCatalogue>)),
            errors: &[],
            handler: |r| r.to(routes::schemas),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/schemas/{name}/{version}",
            operation_id: "schema",
            tag: "schemas",
            summary: "One schema, as the gateway validates with it.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::SchemaDocument),
            errors: &[Code::NotFound],
            handler: |r| r.to(routes::schema),
        },
        Endpoint {
            method: Method::GET,
            path: "/metrics",
            operation_id: "metrics",
            tag: "operations",
            summary: "Prometheus metrics.",
            access: Operator,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Metrics),
            errors: &[],
            handler: |r| r.to(metrics::metrics),
        },
        Endpoint {
            method: Method::GET,
            path: "/healthz",
            operation_id: "health",
            tag: "operations",
            summary: "The process answers.",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::Health>)),
            errors: &[],
            handler: |r| r.to(routes::healthz),
        },
        Endpoint {
            method: Method::GET,
            path: "/readyz",
            operation_id: "readiness",
            tag: "operations",
            summary: "Ready when the store and the broker answer (503 with the same body otherwise).",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::Readiness>)),
            errors: &[],
            handler: |r| r.to(routes::readyz),
        },
        Endpoint {
            method: Method::GET,
            path: "/openapi.json",
            operation_id: "openapi",
            tag: "operations",
            summary: "This description (OpenAPI 3.1).",
            access: Anyone,
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::OpenApi),
            errors: &[],
            handler: |r| r.to(routes::openapi),
        },
    ]
}

/// Registers every endpoint of the table, and the answer for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // A query string the handler cannot read (a parameter twice, say) is a problem too.
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| {
        super::errors::ApiError::new(Code::InvalidQuery, format!("{e}; each parameter at most once")).into()
    }));
    for endpoint in endpoints() {
        cfg.route(endpoint.path, (endpoint.handler)(web::route().method(endpoint.method.clone())));
    }
    cfg.default_service(web::to(routes::not_found));
}

/// Whether `path` is an instance of the template `template` (`{x}` matches one segment).
fn matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return false;
                }
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// The methods served on `path`, for `405` and its `Allow` header; empty when no route has it.
pub fn allowed_methods(path: &str) -> Vec<Method> {
    let mut methods: Vec<Method> = Vec::new();
    for e in endpoints().into_iter().filter(|e| matches(e.path, path)) {
        if !methods.contains(&e.method) {
            methods.push(e.method);
        }
    }
    methods
}

/// A registry schema's component name: `customsDeclaration-1.0.0`.
fn component(name: &str, version: &str) -> String {
    crate::schema::component_name(&format!("{name}/{version}.json"))
}


fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The submission body: the envelope, with `payload` one of the document types' schemas.
fn envelope_schema(registry: &SchemaRegistry) -> Value {
    let envelope = registry.catalogue().into_iter().find(|(n, _)| n == "envelope").and_then(|(_, v)| v.last().copied());
    let variants: Vec<Value> = registry
        .document_types()
        .into_iter()
        .flat_map(|(name, versions)| {
            let description = registry.types().description(&name).map(str::to_owned);
            versions.into_iter().map(move |v| {
                json!({
                    "title": format!("{name} {v}"),
                    "description": description.clone().unwrap_or_else(|| format!("A {name} document.")),
                    "properties": {
                        "documentType": { "const": name },
                        "schemaVersion": { "const": v.to_string() },
                        "payload": reference(&component(&name, &v.to_string())),
                    }
                })
            })
        })
        .collect();
    let mut all_of = Vec::new();
    if let Some(v) = envelope {
        all_of.push(reference(&component("envelope", &v.to_string())));
    }
    all_of.push(json!({ "anyOf": variants }));
    json!({ "allOf": all_of })
}

fn problem_response(codes: &[Code]) -> Value {
    let list: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
    let mut answer = json!({
        "description": list.join(", "),
        "content": { "application/problem+json": { "schema": reference("Problem") } },
    });
    let mut headers = Map::new();
    if codes.iter().any(|c| c.retry_after().is_some()) {
        headers.insert("Retry-After".into(), json!({ "description": "Seconds to wait before trying again.", "schema": { "type": "integer" } }));
    }
    if codes.contains(&Code::Unauthenticated) {
        headers.insert("WWW-Authenticate".into(), json!({ "schema": { "type": "string" } }));
    }
    if codes.contains(&Code::TooManyRequests) {
        for (name, what) in [
            ("RateLimit-Policy", "The quota that was exceeded (draft-ietf-httpapi-ratelimit-headers), e.g. `\"requests\";q=100;w=1`."),
            ("RateLimit", "What is left of it, e.g. `\"requests\";r=0;t=1`."),
        ] {
            headers.insert(name.into(), json!({ "description": what, "schema": { "type": "string" } }));
        }
    }
    if !headers.is_empty() {
        answer["headers"] = Value::Object(headers);
    }
    answer
}

fn content(body: Body, gateway: &GatewayConfig, generator: &mut SchemaGenerator) -> Option<Value> {
    Some(match body {
        Body::None => return None,
        Body::Json(schema) => json!({ "application/json": { "schema": schema(generator) } }),
        Body::Envelope => json!({ "application/json": { "schema": reference("DocumentEnvelope") } }),
        // Items are not constrained: an item that is not a valid envelope is refused in its own
        // result, and the batch is still answered 200.
        Body::Batch => json!({
            "application/json": { "schema": {
                "type": "array", "minItems": 1, "maxItems": gateway.max_batch_items,
                "items": { "anyOf": [reference("DocumentEnvelope"), {}], "description": "A document envelope; anything else is refused in its own result." },
            } },
            "application/x-ndjson": { "schema": { "type": "string", "description": "One envelope per line." } },
        }),
        Body::Acknowledgment => json!({ "application/json": { "schema": { "$ref": "#/components/schemas/AcknowledgmentBody" } } }),
        Body::Amendment => json!({ "application/json": { "schema": {
            "type": "object", "additionalProperties": false, "required": ["reason", "document"],
            "properties": {
                "reason": reason_schema(crate::gateway::MAX_REASON_CHARS, "Why the document is amended: agencies and the audit log see it."),
                "document": reference("DocumentEnvelope"),
            },
        } } }),
        Body::Withdrawal => json!({ "application/json": { "schema": {
            "type": "object", "additionalProperties": false, "required": ["reason"],
            "properties": { "reason": reason_schema(crate::gateway::MAX_REASON_CHARS, "Why the document is withdrawn: agencies and the audit log see it.") },
        } } }),
        Body::Response => json!({ "application/json": { "schema": {
            "type": "object", "additionalProperties": false, "required": ["text"],
            "properties": {
                "text": reason_schema(crate::gateway::MAX_RESPONSE_CHARS, "The answer to the agency's query."),
                "agency": { "type": "string", "pattern": AGENCY.pattern, "description": "Only this agency's query; without it, every agency with a query open on the document." },
                "supportingDocument": reference("DocumentEnvelope"),
            },
        } } }),
        Body::Stream => json!({
            "application/json": { "schema": of::<stream::StreamPage>(generator) },
            "text/event-stream": { "schema": { "type": "string", "description": "`id:` (the cursor), `event:` (`document` or `status`), `data:` (the event as JSON); a comment line every 15 s; reconnect with `Last-Event-ID`." } },
        }),
        Body::Metrics => json!({ "text/plain": { "schema": { "type": "string" } } }),
        Body::SchemaDocument => json!({ "application/schema+json": { "schema": { "type": "object" } } }),
        Body::OpenApi => json!({ "application/json": { "schema": { "type": "object" } } }),
        Body::File(media_type) => json!({ media_type: { "schema": { "type": "string" } } }),
    })
}

/// A text member a person writes: not blank, at most `max` characters.
fn reason_schema(max: usize, description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max, "pattern": "\\S", "description": description })
}

fn operation(endpoint: &Endpoint, gateway: &GatewayConfig, generator: &mut SchemaGenerator) -> Value {
    let mut parameters: Vec<Value> = endpoint
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match name {
                "id" => json!({ "type": "integer", "format": "int64" }),
                "webhook" => json!({ "type": "string", "format": "uuid" }),
                _ => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    let params = endpoint.query.iter().map(|p| ("query", p)).chain(endpoint.headers.iter().map(|p| ("header", p)));
    for (place, p) in params {
        parameters.push(json!({
            "name": p.name, "in": place, "required": false, "description": p.description,
            "schema": { "type": "string", "pattern": p.pattern },
        }));
    }
    // Errors by status: the endpoint's own, then those of its kind.
    let mut codes: Vec<Code> = endpoint.errors.to_vec();
    if endpoint.access != Access::Anyone {
        // Every authenticated request counts against its participant's quota.
        codes.push(Code::Unauthenticated);
        codes.push(Code::TooManyRequests);
    }
    if endpoint.access == Access::Operator {
        codes.push(Code::Forbidden);
    }
    if !matches!(endpoint.request, Body::None) {
        codes.extend(BODY_ERRORS);
    }
    if endpoint.method == Method::POST && !matches!(endpoint.request, Body::None) {
        codes.extend(WRITE_ERRORS);
    }
    let mut responses = Map::new();
    let (status, body) = endpoint.ok;
    let mut ok = json!({ "description": endpoint.summary });
    if let Some(c) = content(body, gateway, generator) {
        ok["content"] = c;
    }
    if status == 201 || status == 202 {
        ok["headers"] = json!({ "Location": { "description": "Where the created resource, or the consignment, is read.", "schema": { "type": "string" } } });
    }
    responses.insert(status.to_string(), ok);
    if endpoint.path == "/readyz" {
        responses.insert("503".into(), json!({ "description": "Not ready", "content": content(body, gateway, generator) }));
    }
    let mut statuses: Vec<u16> = codes.iter().map(|c| c.status().as_u16()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for s in statuses {
        let mut of_status: Vec<Code> = codes.iter().copied().filter(|c| c.status().as_u16() == s).collect();
        of_status.dedup();
        responses.insert(s.to_string(), problem_response(&of_status));
    }
    let mut op = json!({
        "operationId": endpoint.operation_id,
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(c) = content(endpoint.request, gateway, generator) {
        op["requestBody"] = json!({ "required": true, "content": c });
    }
    op["security"] = match endpoint.access {
        Access::Anyone => json!([]),
        Access::Participant | Access::Operator => json!([{ "bearer": [] }, { "mutualTls": [] }]),
    };
    if endpoint.access == Access::Operator {
        op["description"] = json!("Operators only.");
    }
    op
}

/// The OpenAPI 3.1 description of this gateway, with `registry`'s schemas as components and
/// the bounds of `gateway`.
/// The registry's schemas as components (`#/components/schemas/<type>-<version>`), their
/// references made local: shared by `/openapi.json` and `/asyncapi.json`.
pub fn registry_components(registry: &SchemaRegistry) -> Map<String, Value> {
    registry.components()
}

/// `/asyncapi.json`: the Kafka side (`super::asyncapi`), with the status event's schema.
pub fn asyncapi(registry: &SchemaRegistry, topics: &crate::broker::Topics, agencies: &[crate::domain::AgencyId]) -> Value {
    let mut generator = SchemaSettings::draft07().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    generator.subschema_for::<crate::store::StatusChange>();
    let mut schemas = generator.take_definitions(true);
    schemas.extend(registry_components(registry));
    super::asyncapi::asyncapi(registry, topics, agencies, schemas)
}

pub fn openapi(registry: &SchemaRegistry, gateway: &GatewayConfig) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for endpoint in endpoints() {
        let item = paths.entry(endpoint.path).or_insert_with(|| json!({}));
        item[endpoint.method.as_str().to_ascii_lowercase()] = operation(&endpoint, gateway, &mut generator);
    }
    generator.subschema_for::<Problem>();
    let status_change = of::<crate::store::StatusChange>(&mut generator);
    let mut schemas = generator.take_definitions(true);
    schemas.extend(registry_components(registry));
    schemas.insert("DocumentEnvelope".into(), envelope_schema(registry));
    let ack = registry.catalogue().into_iter().find(|(n, _)| n == crate::schema::ACKNOWLEDGMENT).and_then(|(_, v)| v.last().copied());
    if let Some(v) = ack {
        schemas.insert("AcknowledgmentBody".into(), reference(&component(crate::schema::ACKNOWLEDGMENT, &v.to_string())));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ventanilla",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A regional single-window gateway for harmonized trade documents. Every error is an RFC 9457 problem document with a stable `code`.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "tags": [
            { "name": "documents", "description": "Traders and national single windows submit documents." },
            { "name": "consignments", "description": "Where a consignment stands." },
            { "name": "agencies", "description": "Agencies read their documents and answer." },
            { "name": "schemas", "description": "The schema registry." },
            { "name": "operations", "description": "Health, metrics, failed deliveries." },
        ],
        "paths": paths,
        "webhooks": {
            "consignmentStatus": { "post": {
                "operationId": "consignmentStatus",
                "summary": "A state change of one of your consignments, POSTed to each URL you registered (POST /v1/webhooks), in order, at least once. Answer 2xx to take it; anything else, or no answer within the timeout, sends the same event again later (exponential backoff). Check the signature before trusting the body.",
                "parameters": [
                    { "name": "Ventanilla-Signature", "in": "header", "required": true, "schema": { "type": "string" },
                      "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" keyed with the webhook's secret>`. Compare in constant time; refuse a `t` far from now." },
                    { "name": "Ventanilla-Event-Id", "in": "header", "required": true, "schema": { "type": "string" },
                      "description": "The event's id, increasing: drop an event you have already taken." },
                    { "name": "Ventanilla-Webhook-Id", "in": "header", "required": true, "schema": { "type": "string", "format": "uuid" } },
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": status_change } } },
                "responses": { "2XX": { "description": "Taken." } },
            } },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A participant's token." },
                "mutualTls": { "type": "mutualTLS", "description": "A participant's client certificate, registered by its SHA-256." },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_parameter() {
        assert!(matches("/v1/consignments/{ucr}", "/v1/consignments/UCR-1"));
        assert!(!matches("/v1/consignments/{ucr}", "/v1/consignments/"));
        assert!(!matches("/v1/consignments/{ucr}", "/v1/consignments/a/b"));
        assert!(matches("/v1/documents:batch", "/v1/documents:batch"));
        assert!(!matches("/v1/documents", "/v1/documents:batch"));
    }

    #[test]
    fn references_between_registry_files_become_component_references() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let region: crate::config::RegionConfig = toml::from_str(&std::fs::read_to_string(root.join("config/ventanilla.toml")).unwrap()).unwrap();
        let registry = SchemaRegistry::of_region(&root.join("schemas"), &region).unwrap();
        let components = registry_components(&registry);
        // By $id to another file, to a whole file, and inside the file itself.
        let envelope = &components["envelope-1.0.0"];
        assert_eq!(envelope.pointer("/properties/ucr/$ref"), Some(&json!("#/components/schemas/common-1.0.0/$defs/ucr")));
        assert!(envelope.get("$id").is_none() && envelope.get("$schema").is_none(), "2020-12 is the document's dialect");
        let doc = json!({"components": {"schemas": components}});
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1).map(|r| r.split('"').next().unwrap()) {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} leaves the document"));
            assert!(doc.pointer(pointer).is_some(), "{r} reaches nothing");
        }
    }

    #[test]
    fn every_endpoint_is_described_once() {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(seen.insert((e.method.clone(), e.path)), "{} {} twice", e.method, e.path);
        }
    }
}
