//! The API's one description: every route with its method, handler, parameters and answers, and
//! its access, read from the type of the handler's first argument (`super::policy`). The gateway
//! registers its routes from this table and answers 404, or 405 with `Allow`, from it;
//! `super::openapi` generates `/openapi.json` from it. Routes, access and bodies cannot drift
//! from what is served; summaries and parameter patterns are written here, next to them.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder, Route};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

use super::errors::{ApiError, Code};
use super::policy::{Access, Guarded};
use super::{metrics, risk, routes, stream, webhooks};

/// A body's schema, from a Rust type.
type SchemaOf = fn(&mut SchemaGenerator) -> Value;

pub(super) fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
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
pub(super) const AGENCY: Param = Param { name: "agency", description: "Only this agency's deliveries.", pattern: "^[a-z]{2}-[a-z][a-z0-9-]{1,40}$" };
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
const TFA_GROUP_BY: Param = Param {
    name: "groupBy",
    description: "`country` (the importing country, the consignment's destination; the default), `borderPost`, `transportMode` or `documentType` (the lead document's).",
    pattern: "^(country|borderPost|transportMode|documentType)$",
};
const PUBLIC_TFA_GROUP_BY: Param = Param {
    name: "groupBy",
    description: "`country` (the importing country, the consignment's destination; the default) or `borderPost`; `transportMode` and `documentType`, the monitor's other groupings, are not published (`404`).",
    pattern: "^(country|borderPost|transportMode|documentType)$",
};
const EXPEDITED_TYPES: Param = Param {
    name: "expeditedTypes",
    description: "The document types whose consignments are expedited shipments (Art. 7.8), comma-separated, at most 20; `ecommerceShipment` by default.",
    pattern: "^[A-Za-z][A-Za-z0-9_-]{0,63}(,[A-Za-z][A-Za-z0-9_-]{0,63}){0,19}$",
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
    pub query: &'static [Param],
    /// Headers the endpoint reads: `Idempotency-Key`, `Last-Event-ID`.
    pub headers: &'static [Param],
    pub request: Body,
    /// The success status and what it carries.
    pub ok: (u16, Body),
    /// The errors this endpoint answers besides those every endpoint of its kind can answer
    /// (authentication, body reading).
    pub errors: &'static [Code],
    /// The handler, and the access its first argument stands for.
    pub serve: Serve,
}

impl Endpoint {
    /// Who may call it: read from its handler's type, so it is the access enforced.
    pub fn access(&self) -> Access {
        self.serve.access
    }
}

/// A handler as the table holds it: how to attach it to a route, and the access policy of the
/// extractor it takes first.
pub struct Serve {
    access: Access,
    attach: Box<dyn Fn(Route) -> Route>,
}

/// `handler`, served: its access is its first argument's ([`super::policy::Guarded`]).
fn serve<F, Args>(handler: F) -> Serve
where
    F: Handler<Args>,
    Args: FromRequest + Guarded + 'static,
    F::Output: Responder + 'static,
{
    Serve { access: Args::ACCESS, attach: Box::new(move |route: Route| route.to(handler.clone())) }
}

/// Every endpoint, in the order they are documented.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            method: Method::POST,
            path: "/v1/documents",
            operation_id: "submitDocument",
            tag: "documents",
            summary: "Submit a document: validated, stored, then routed to every agency concerned. 202 means it will be delivered.",
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
            serve: serve(routes::submit_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents:batch",
            operation_id: "submitBatch",
            tag: "documents",
            summary: "Submit many documents (a JSON array, or NDJSON); one result per item, in order.",
            query: &[],
            headers: &[IDEMPOTENCY_KEY],
            request: Body::Batch,
            ok: (200, Body::Json(of::<routes::BatchAnswer>)),
            errors: &[Code::InvalidIdempotencyKey],
            serve: serve(routes::submit_batch),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/validate",
            operation_id: "validateDocument",
            tag: "documents",
            summary: "Check a document exactly as submission would; nothing is stored or routed.",
            query: &[],
            headers: &[],
            request: Body::Envelope,
            ok: (200, Body::Json(of::<crate::gateway::ValidationReport>)),
            errors: &[Code::InvalidDocument, Code::UnknownDocumentType, Code::UnknownSchemaVersion, Code::Unroutable, Code::UcrNotYours, Code::Forbidden],
            serve: serve(routes::validate),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/amendments",
            operation_id: "amendDocument",
            tag: "documents",
            summary: "Amend a document: a full envelope of the same type and UCR, with a reason. Validated and routed as a submission; the receipt names the new documentId, the one it `amends`, and its `version`. Agencies receive it as `org.ventanilla.document.amended`; an agency the new version is no longer routed to is sent a withdrawal of the earlier one. Only the document's sender, or the NSW acting for it.",
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
            serve: serve(routes::amend_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/withdrawal",
            operation_id: "withdrawDocument",
            tag: "documents",
            summary: "Withdraw a document, with a reason. Every agency it went to receives `org.ventanilla.document.withdrawn`; later answers to it are recorded as late; a consignment whose documents are all withdrawn is `withdrawn`. Withdrawing again answers the first withdrawal. Only the document's sender, or the NSW acting for it.",
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
            serve: serve(routes::withdraw_document),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/documents/{documentId}/responses",
            operation_id: "respondToQuery",
            tag: "documents",
            summary: "Answer an agency's query on a document: text, and optionally a supporting document (an envelope of the same consignment, validated as a submission). Each agency with a query open on the document (or the one named) receives it as `org.ventanilla.query.answered`. Only the document's sender, or the NSW acting for it.",
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
            serve: serve(routes::respond_to_query),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/acknowledgments",
            operation_id: "acknowledge",
            tag: "agencies",
            summary: "An agency's answer about a document routed to it.",
            query: &[],
            headers: &[],
            request: Body::Acknowledgment,
            ok: (200, Body::Json(of::<crate::store::AckApplied>)),
            errors: &[Code::InvalidAcknowledgment, Code::UnknownDocument, Code::Forbidden],
            serve: serve(routes::acknowledge),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/agencies/{agency}/documents",
            operation_id: "agencyDocuments",
            tag: "agencies",
            summary: "The deliveries routed to an agency, as CloudEvents: Server-Sent Events, or a long poll with `wait`.",
            query: &[AFTER, WAIT],
            headers: &[LAST_EVENT_ID],
            request: Body::None,
            ok: (200, Body::Stream),
            errors: &[Code::NotFound, Code::InvalidCursor, Code::InvalidQuery, Code::Unavailable],
            serve: serve(stream::agency_documents),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/consignments/events",
            operation_id: "consignmentEvents",
            tag: "consignments",
            summary: "State changes of the caller's consignments: Server-Sent Events, or a long poll with `wait`.",
            query: &[AFTER, WAIT],
            headers: &[LAST_EVENT_ID],
            request: Body::None,
            ok: (200, Body::Stream),
            errors: &[Code::Forbidden, Code::InvalidCursor, Code::InvalidQuery, Code::Unavailable],
            serve: serve(stream::consignment_events),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/consignments/{ucr}",
            operation_id: "consignment",
            tag: "consignments",
            summary: "A consignment: its documents (each one's latest versions; a longer history is listed in `earlierVersions`, paged with `versionsOf` and `before`), every agency's delivery and answers, and the time-release figures.",
            query: &[VERSIONS_OF, BEFORE],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::ConsignmentView>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            serve: serve(routes::consignment),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/indicators/release-times",
            operation_id: "releaseTimes",
            tag: "indicators",
            summary: "Release-time indicators after the WCO Time Release Study, from the exchange's own events: count, mean (the WTO TFA Art. 7.6 figure), median, p90, mode, min, max, the outliers and every figure without them, per segment and per period. An operator reads every consignment; a trader or NSW its own consignments; an agency its own part in the consignments routed to it.",
            query: &[FROM, TO, INTERVAL, GROUP_BY, TREND, MODE_BIN],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::figures::Figures>)),
            errors: &[Code::InvalidQuery, Code::Forbidden, Code::Unavailable],
            serve: serve(super::indicators::release_times),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/indicators/tfa",
            operation_id: "tfaMonitor",
            tag: "indicators",
            summary: "The WTO Trade Facilitation Agreement as practiced, from the exchange's own events (docs/tfa.md): Art. 7.1 pre-arrival processing (share lodged before arrival, lead time), Art. 7.4 risk management (physical and documentary inspection shares per agency, hit rates by selection source, standing-instruction releases), Art. 7.6 release time, Art. 7.8 expedited shipments against the rest, Art. 8 first to last agency decision and joint inspections, Art. 10.1 formalities per consignment, Art. 10.4 single submission; for the region, each country, border post, transport mode or document type, and the median of those, over the period and the one of the same length before it. An operator reads the region's; a national single window its country's consignments, with its own agencies' parts; an agency its own parts (Art. 7.1, 7.4, 7.6 and 7.8; `articles` says which an answer measures); traders and platforms are refused.",
            query: &[FROM, TO, TFA_GROUP_BY, EXPEDITED_TYPES],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::tfa::TfaFigures>)),
            errors: &[Code::InvalidQuery, Code::Forbidden, Code::Unavailable],
            serve: serve(super::indicators::tfa),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/public/indicators/release-times",
            operation_id: "publicReleaseTimes",
            tag: "indicators",
            summary: "The published figures, for anyone, without identity, over every consignment: one calendar month once it has settled, overall, by one segment, or per day or week. A cell of fewer consignments than the region's threshold (`indicators.public_min_count`, 5 by default), or of fewer besides its largest trader's, is suppressed, and others with it so that none can be computed from the rest; no minimum or maximum. Answers are kept a minute (`Cache-Status`, `Age`); computing new ones is bounded per source address (`429`) and for the gateway (`503`).",
            query: &[MONTH, INTERVAL, PUBLIC_GROUP_BY, PUBLIC_TREND, PUBLIC_MODE_BIN],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::figures::Figures>)),
            errors: &[Code::InvalidQuery, Code::NotFound, Code::TooManyRequests, Code::Overloaded, Code::Unavailable],
            serve: serve(super::indicators::public_release_times),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/public/indicators/tfa",
            operation_id: "publicTfaMonitor",
            tag: "indicators",
            summary: "The TFA monitor's published figures, for anyone, without identity, over every consignment (docs/tfa.md): one calendar month once it has settled, counting what had closed by then, and the month before it; each indicator of Art. 7.1, 7.4 (no hit rate), 8, 10.1 and 10.4 for the region and each country or border post, beside the median of those shown. Cells are suppressed as the public release times' are (fewer consignments than `indicators.public_min_count`, or fewer besides the largest trader's, or one trader's alone, and others with them so that none can be computed from the rest); Art. 7.6 and 7.8 are linked to the public release times. Answers are kept a minute; computing new ones is bounded per source address (`429`) and for the gateway (`503`).",
            query: &[MONTH, PUBLIC_TFA_GROUP_BY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::indicators::tfa_public::PublicTfaFigures>)),
            errors: &[Code::InvalidQuery, Code::NotFound, Code::TooManyRequests, Code::Overloaded, Code::Unavailable],
            serve: serve(super::indicators::public_tfa),
        },
        Endpoint {
            method: Method::GET,
            path: "/asyncapi.json",
            operation_id: "asyncapi",
            tag: "agencies",
            summary: "The Kafka side as AsyncAPI 3.0: every agency's document, ack and refused-answers topics, the status and dead-letter topics, with the CloudEvents headers and the payloads' schemas.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::OpenApi),
            errors: &[],
            serve: serve(routes::asyncapi),
        },
        Endpoint {
            method: Method::GET,
            path: "/.well-known/jwks.json",
            operation_id: "receiptKeys",
            tag: "documents",
            summary: "The public keys (JWKS, Ed25519) that receipts' `signature` (a JWS over the receipt) is made with; every key a receipt may name, also after a rotation.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<super::dashboard::Jwks>)),
            errors: &[],
            serve: serve(super::dashboard::jwks),
        },
        Endpoint {
            method: Method::GET,
            path: "/",
            operation_id: "home",
            tag: "operations",
            summary: "The landing page (HTML): links to the dashboard, the API descriptions, the receipt keys, health and every guide.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/html")),
            errors: &[],
            serve: serve(super::home::page),
        },
        Endpoint {
            method: Method::GET,
            path: "/docs/{guide}",
            operation_id: "guide",
            tag: "operations",
            summary: "One guide of this version (`README.md`, `traders.md`, `agencies.md`...; the landing page lists them), as the Markdown text it is written in.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/plain")),
            errors: &[Code::NotFound],
            serve: serve(super::home::guide),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard",
            operation_id: "dashboard",
            tag: "indicators",
            summary: "The release-time dashboard (HTML; works offline). With `#token=...` in the address, a participant's own figures; without, the public ones.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/html")),
            errors: &[],
            serve: serve(super::dashboard::page),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/app.js",
            operation_id: "dashboardScript",
            tag: "indicators",
            summary: "The dashboard's script.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/javascript")),
            errors: &[],
            serve: serve(super::dashboard::script),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/common.js",
            operation_id: "dashboardCommonScript",
            tag: "indicators",
            summary: "What the dashboard's pages share: building elements, durations, marking a page ready.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/javascript")),
            errors: &[],
            serve: serve(super::dashboard::common_script),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/tfa",
            operation_id: "tfaDashboard",
            tag: "indicators",
            summary: "The TFA monitor's page (HTML; works offline), beside the release times: with an operator's `#token=...` in the address, each article's indicators by importing country, border post, transport mode or document type, with the region's median and the period before.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/html")),
            errors: &[],
            serve: serve(super::dashboard::tfa_page),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/tfa.js",
            operation_id: "tfaDashboardScript",
            tag: "indicators",
            summary: "The TFA monitor page's script.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/javascript")),
            errors: &[],
            serve: serve(super::dashboard::tfa_script),
        },
        Endpoint {
            method: Method::GET,
            path: "/dashboard/style.css",
            operation_id: "dashboardStyle",
            tag: "indicators",
            summary: "The dashboard's style sheet.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::File("text/css")),
            errors: &[],
            serve: serve(super::dashboard::style),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/webhooks",
            operation_id: "registerWebhook",
            tag: "consignments",
            summary: "Have the state changes of your consignments POSTed to a URL, signed (see `webhooks`). The secret is answered only here.",
            query: &[],
            headers: &[],
            request: Body::Json(of::<webhooks::WebhookRequest>),
            ok: (201, Body::Json(of::<crate::store::WebhookRegistered>)),
            errors: &[Code::InvalidWebhook, Code::Forbidden],
            serve: serve(webhooks::register),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/webhooks",
            operation_id: "webhooks",
            tag: "consignments",
            summary: "Your webhooks, and how their deliveries stand.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<webhooks::WebhookList>)),
            errors: &[Code::Forbidden, Code::Unavailable],
            serve: serve(webhooks::list),
        },
        Endpoint {
            method: Method::DELETE,
            path: "/v1/webhooks/{webhook}",
            operation_id: "deleteWebhook",
            tag: "consignments",
            summary: "Stop a webhook.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (204, Body::None),
            errors: &[Code::Forbidden, Code::NotFound, Code::Unavailable],
            serve: serve(webhooks::delete),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/deliveries/failed",
            operation_id: "failedDeliveries",
            tag: "operations",
            summary: "Deliveries the broker refused on every attempt.",
            query: &[AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::FailedDeliveries>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            serve: serve(routes::failed_deliveries),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/deliveries/failed/retry",
            operation_id: "retryFailedDeliveries",
            tag: "operations",
            summary: "Send every failed delivery (of one agency) again.",
            query: &[AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::RetryOutcome>)),
            errors: &[Code::NotFound, Code::InvalidQuery, Code::Unavailable],
            serve: serve(routes::retry_failed),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/deliveries/{id}/retry",
            operation_id: "retryDelivery",
            tag: "operations",
            summary: "Send one failed delivery again.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::store::RetryOutcome>)),
            errors: &[Code::NotFound, Code::DeliveryNotFailed, Code::Unavailable],
            serve: serve(routes::retry_delivery),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/rules",
            operation_id: "riskRules",
            tag: "operations",
            summary: "The risk rules every delivery's channel is chosen with now: the region file's, or the latest set an operator put, with who put it, when and why.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<risk::RiskRules>)),
            errors: &[Code::Forbidden],
            serve: serve(risk::rules),
        },
        Endpoint {
            method: Method::PUT,
            path: "/v1/risk/rules",
            operation_id: "putRiskRules",
            tag: "operations",
            summary: "Replace the risk rules, whole, with a reason: checked as the region file's are (a rule reading a fact its document types lack is refused, named), kept in the store and the audit log, and used by every gateway of the store from its next document (within 5 s for the others).",
            query: &[],
            headers: &[],
            request: Body::Json(of::<risk::RiskRulesChange>),
            ok: (200, Body::Json(of::<risk::RiskRules>)),
            errors: &[Code::InvalidRiskRules, Code::Forbidden, Code::Unavailable],
            serve: serve(risk::put_rules),
        },
        Endpoint {
            method: Method::POST,
            path: "/v1/risk/models",
            operation_id: "trainRiskModel",
            tag: "operations",
            summary: "Train a risk model now on every inspection finding kept (logistic regression; the most recent fifth held back to judge it). It goes live only if its precision at the budget on those findings beats the live model's; kept in the store and the audit log either way.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<risk::TrainedModel>)),
            errors: &[Code::NotEnoughFindings, Code::Forbidden, Code::Unavailable],
            serve: serve(risk::train_model),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/performance",
            operation_id: "riskPerformance",
            tag: "operations",
            summary: "How risk selection performed in a period (7 days by default), per agency: documents, realized red and yellow rates against the budget's, inspections, findings, irregularities, hit rate and revenue by the source that selected them, the live model's version and precision, and the drift of the scores since it was trained. Operators read every agency's; an agency its own.",
            query: &[RISK_PERIOD_FROM, RISK_PERIOD_TO, AGENCY],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::risk::performance::Performance>)),
            errors: &[Code::InvalidQuery, Code::NotFound, Code::Forbidden, Code::Overloaded, Code::Unavailable],
            serve: serve(risk::performance),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/risk/sellers",
            operation_id: "riskSellers",
            tag: "operations",
            summary: "A platform's sellers as inspections found them in a period (7 days by default, widened to whole UTC days): for the parcels the platform submitted, each seller's inspections and irregularities, the most irregularities first (at most 1,000 sellers). Counts of findings only, never the rules, scores or reasons. A platform reads its own; an operator any platform's, or every submitter's.",
            query: &[RISK_PERIOD_FROM, RISK_PERIOD_TO, PLATFORM],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<crate::risk::sellers::SellerReport>)),
            errors: &[Code::InvalidQuery, Code::Forbidden, Code::Overloaded, Code::Unavailable],
            serve: serve(risk::sellers),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/schemas",
            operation_id: "schemas",
            tag: "schemas",
            summary: "The registry's document types and versions.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::SchemaCatalogue>)),
            errors: &[],
            serve: serve(routes::schemas),
        },
        Endpoint {
            method: Method::GET,
            path: "/v1/schemas/{name}/{version}",
            operation_id: "schema",
            tag: "schemas",
            summary: "One schema, as the gateway validates with it.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::SchemaDocument),
            errors: &[Code::NotFound],
            serve: serve(routes::schema),
        },
        Endpoint {
            method: Method::GET,
            path: "/metrics",
            operation_id: "metrics",
            tag: "operations",
            summary: "Prometheus metrics.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Metrics),
            errors: &[],
            serve: serve(metrics::metrics),
        },
        Endpoint {
            method: Method::GET,
            path: "/healthz",
            operation_id: "health",
            tag: "operations",
            summary: "The process answers.",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::Health>)),
            errors: &[],
            serve: serve(routes::healthz),
        },
        Endpoint {
            method: Method::GET,
            path: "/readyz",
            operation_id: "readiness",
            tag: "operations",
            summary: "Ready when the store and the broker answer (503 with the same body otherwise).",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::Json(of::<routes::Readiness>)),
            errors: &[],
            serve: serve(routes::readyz),
        },
        Endpoint {
            method: Method::GET,
            path: "/openapi.json",
            operation_id: "openapi",
            tag: "operations",
            summary: "This description (OpenAPI 3.1).",
            query: &[],
            headers: &[],
            request: Body::None,
            ok: (200, Body::OpenApi),
            errors: &[],
            serve: serve(routes::openapi),
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
        cfg.route(endpoint.path, (endpoint.serve.attach)(web::route().method(endpoint.method.clone())));
    }
    cfg.default_service(web::to(not_found));
}

/// Whether `path` is an instance of the template `template` (`{x}` matches one segment).
pub(super) fn matches(template: &str, path: &str) -> bool {
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

/// Everything no route serves: 405 with `Allow` when the path has other methods, else 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::new(Code::NotFound, format!("no route {}; GET /openapi.json describes them", req.path())));
    }
    let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    let problem = ApiError::new(Code::MethodNotAllowed, format!("{} is not allowed on {}; allowed: {}", req.method(), req.path(), allow.join(", ")));
    let mut answer = actix_web::ResponseError::error_response(&problem);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow.join(", ")) {
        answer.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    Ok(answer)
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
    fn every_endpoint_is_described_once() {
        let mut seen = std::collections::HashSet::new();
        for e in endpoints() {
            assert!(seen.insert((e.method.clone(), e.path)), "{} {} twice", e.method, e.path);
        }
    }
}
