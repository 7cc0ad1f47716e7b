//! Handlers. Each turns HTTP into a gateway operation and its answer back into HTTP.

use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use super::errors::{ApiError, Code};
use super::policy::{body_bytes, Answers, Authenticated, Batches, Operator, Public, Submissions, Write};
use super::request::{read_body, within_timeout};
use super::state::State;
use crate::domain::Ucr;
use crate::store::Acceptance;
use crate::store::RetrySelection;



/// `GET /healthz`: the process answers.
#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// `GET /readyz`: whether the gateway can take documents now.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// `ok` or `unavailable`.
    store: &'static str,
    /// `ok`, `degraded` (it answers, but some of the gateway's partitions have fewer in-sync
    /// copies than configured or no leader) or `unavailable` (no answer to the last metadata
    /// request; asked each second).
    broker: &'static str,
    /// What the last answer said of the cluster.
    kafka: KafkaReadiness,
    /// Deliveries waiting for the broker.
    outbox_backlog: u64,
    /// This gateway's name among the gateways sharing its store.
    instance: String,
    /// Consignments whose records this gateway publishes now (its live claims): the others'
    /// are published by the gateways sharing the store.
    claims: u64,
    /// Background tasks that failed (`relay`, `status-relay`, `ack-consumer`, `webhooks`,
    /// `broker-watcher`): the gateway is then stopping, to be started again.
    failed_tasks: Vec<&'static str>,
}

/// The Kafka cluster as the gateway last saw it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaReadiness {
    /// Brokers the cluster lists.
    brokers: usize,
    /// Partitions of the gateway's topics with fewer in-sync copies than copies.
    under_replicated_partitions: usize,
    /// Partitions of the gateway's topics with no leader (their records wait).
    partitions_without_leader: usize,
}

pub async fn healthz(_: Public) -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready only when the store answers, the broker answered its last check (each second) and no
/// background task has failed; a degraded cluster still takes records, so it leaves the
/// gateway ready.
pub async fn readyz(_: Public, state: State) -> HttpResponse {
    let crate::gateway::Readiness { store, broker, cluster: view, backlog, instance, claims, failed_tasks } = state.gateway.readiness().await;
    let ready = store && broker && failed_tasks.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        store: if store { "ok" } else { "unavailable" },
        broker: match broker {
            false => "unavailable",
            true if view.under_replicated > 0 || view.without_leader > 0 => "degraded",
            true => "ok",
        },
        kafka: KafkaReadiness {
            brokers: view.brokers,
            under_replicated_partitions: view.under_replicated,
            partitions_without_leader: view.without_leader,
        },
        outbox_backlog: backlog,
        instance,
        claims,
        failed_tasks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn submit_document(
    who: Write<Submissions>,
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let (body, payload_text) =
        within_timeout(&state, crate::http::body::document_body(&req, payload, state.max_body_bytes, &state.json_limits, &who.1)).await?;
    // Validating and routing are the sender's CPU; committing is the store's.
    let backlog = state.gateway.backlog_now();
    let doc = who.1.metered(|| state.gateway.prepare(&who.0, &body, payload_text.as_deref(), key, backlog))??;
    drop(body);
    match state.gateway.commit(doc, backlog).await? {
        Acceptance::New(receipt) => {
            tracing::info!(document = %receipt.document_id, ucr = %receipt.ucr, sender = %who.0.id(),
                deliveries = receipt.deliveries.len(), "document accepted");
            Ok(HttpResponse::Accepted()
                .insert_header(("Location", format!("/v1/consignments/{}", receipt.ucr)))
                .json(receipt))
        }
        Acceptance::Replayed(first) => {
            tracing::info!(document = %first["documentId"], sender = %who.0.id(), "document sent again: first receipt returned");
            Ok(HttpResponse::Accepted().insert_header(("Idempotent-Replayed", "true")).json(first))
        }
    }
}

/// The answer to a batch: one result per item, in order.
#[derive(Serialize, JsonSchema)]
pub struct BatchAnswer {
    accepted: usize,
    refused: usize,
    results: Vec<BatchItem>,
}

/// One batch item's result: its receipt (status 202) or its problem.
#[derive(Serialize, JsonSchema)]
pub struct BatchItem {
    /// Position in the batch, from 0.
    index: usize,
    /// The status a single submission of this item would have been answered with.
    status: u16,
    /// Present (true) when the item repeats a document already accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::store::Receipt>")]
    receipt: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<super::errors::Problem>")]
    problem: Option<serde_json::Value>,
}

/// `POST /v1/documents:batch`: many documents in one request (a JSON array, or NDJSON), each
/// checked exactly as `POST /v1/documents` would, in order; one result per item (a receipt or
/// a problem), so one refused document never sinks the others. The accepted ones are committed
/// together: if the store fails, none is, and each is answered 503. With an `Idempotency-Key`,
/// item `i` uses the key `<key>#<i>`, so the same batch sent again is answered from the first.
pub async fn submit_batch(
    who: Write<Batches>,
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    let read = crate::http::body::batch_body(
        &req,
        payload,
        state.max_batch_body_bytes,
        state.max_body_bytes,
        &state.json_limits,
        state.max_batch_items,
    );
    let batch = within_timeout(&state, read).await?;
    let by = &who.0;
    // Parsing, validating and routing up to `max_batch_items` documents is milliseconds of
    // CPU: done on the blocking pool, so the other connections of this worker are not held up;
    // one document at a time, its tree dropped before the next is parsed; charged to the sender.
    let (prepared, backlog) = {
        let (gateway, by, sender) = (state.gateway.clone(), by.clone(), who.1.clone());
        web::block(move || {
            let backlog = gateway.backlog_now();
            let prepared = batch.each(&sender, |i, item| {
                let key = key.as_ref().map(|k| format!("{k}#{i}"));
                item.and_then(|(body, text)| {
                    sender.metered(|| gateway.prepare(&by, &body, text.as_deref(), key, backlog))?.map_err(ApiError::from)
                })
            })?;
            Ok::<_, ApiError>((prepared, backlog))
        })
        .await
        .map_err(|e| ApiError::new(Code::Internal, format!("the batch could not be checked: {e}")))??
    };
    let gateway = &state.gateway;
    let outcomes = gateway.commit_many(prepared, backlog).await;
    let (mut accepted, mut refused) = (0, 0);
    let mut results = Vec::with_capacity(outcomes.len());
    let mut refusals = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        results.push(match outcome {
            Ok(Acceptance::New(receipt)) => {
                accepted += 1;
                let receipt = serde_json::to_value(receipt).ok();
                BatchItem { index: i, status: 202, replayed: None, receipt, problem: None }
            }
            Ok(Acceptance::Replayed(first)) => {
                accepted += 1;
                BatchItem { index: i, status: 202, replayed: Some(true), receipt: Some(first), problem: None }
            }
            Err(problem) => {
                refused += 1;
                let status = problem.code.status();
                if refusals.len() < BATCH_REFUSALS_NAMED {
                    refusals.push(json!({"index": i, "status": status, "code": problem.code.as_str()}));
                }
                BatchItem { index: i, status, replayed: None, receipt: None, problem: Some(problem.problem()) }
            }
        });
    }
    // The refused items: one record for the batch, however many they are.
    if refused > 0 {
        let detail = json!({"refused": refused, "accepted": accepted, "items": refusals});
        let entry = crate::audit::entry(crate::clock::now_millis(), by.id(), "batch.refused", "POST /v1/documents:batch".into(), detail);
        if let Err(e) = gateway.audit(vec![entry]).await {
            tracing::error!(error = %e, "refused batch items could not be written to the audit log");
        }
    }
    tracing::info!(sender = %by.id(), accepted, refused, "batch submitted");
    Ok(HttpResponse::Ok().json(BatchAnswer { accepted, refused, results }))
}

/// Refused items of a batch named one by one in its audit record; the rest are counted.
const BATCH_REFUSALS_NAMED: usize = 20;

/// `POST /v1/validate`: the checks of submission, without storing or publishing; `200` with
/// where the document would go, or the very problem submission would answer.
pub async fn validate(who: Authenticated, state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, ApiError> {
    let _bytes = body_bytes(&who.1, &req, state.max_body_bytes)?;
    let body = read_body(&state, &who, &req, payload).await?;
    let checked = who.1.metered(|| state.gateway.validate(&who.0, &body))??;
    Ok(HttpResponse::Ok().json(checked.report()))
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else { return Ok(None) };
    let bad = || ApiError::new(Code::InvalidIdempotencyKey, "Idempotency-Key must be 1 to 255 visible ASCII characters");
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(s.to_owned()))
}

/// The document id of a path (unknown when it is not one: existence does not leak).
fn document_id(path: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(path).map_err(|_| ApiError::new(Code::UnknownDocument, format!("no document {path:?} of yours is known here; a documentId is a UUID")))
}

/// `POST /v1/documents/{documentId}/amendments`: a new version of a document.
pub async fn amend_document(
    who: Write<Submissions>,
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let previous = document_id(&path)?;
    let (body, payload_text) = within_timeout(
        &state,
        crate::http::body::request_with_document(&req, payload, state.max_body_bytes, &state.json_limits, Some("document"), &who.1),
    )
    .await?;
    match state.gateway.amend(&who.0, previous, &body, payload_text.as_deref()).await? {
        Acceptance::New(receipt) => {
            tracing::info!(document = %receipt.document_id, amends = %previous, version = receipt.version, ucr = %receipt.ucr,
                by = %who.0.id(), "document amended");
            Ok(HttpResponse::Accepted().insert_header(("Location", format!("/v1/consignments/{}", receipt.ucr))).json(receipt))
        }
        Acceptance::Replayed(first) => {
            tracing::info!(document = %first["documentId"], amends = %previous, by = %who.0.id(), "amendment sent again: first receipt returned");
            Ok(HttpResponse::Accepted().insert_header(("Idempotent-Replayed", "true")).json(first))
        }
    }
}

/// `POST /v1/documents/{documentId}/withdrawal`: the document is withdrawn.
pub async fn withdraw_document(
    who: Write<Submissions>,
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = document_id(&path)?;
    let body = read_body(&state, &who, &req, payload).await?;
    let withdrawal = state.gateway.withdraw(&who.0, id, &body).await?;
    tracing::info!(document = %id, ucr = %withdrawal.ucr, by = %who.0.id(), agencies = withdrawal.agencies.len(), "document withdrawn");
    Ok(HttpResponse::Accepted().json(withdrawal))
}

/// `POST /v1/documents/{documentId}/responses`: the trader's answer to an agency's query.
pub async fn respond_to_query(
    who: Write<Submissions>,
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = document_id(&path)?;
    let (body, payload_text) = within_timeout(
        &state,
        crate::http::body::request_with_document(&req, payload, state.max_body_bytes, &state.json_limits, Some("supportingDocument"), &who.1),
    )
    .await?;
    let receipt = state.gateway.respond(&who.0, id, &body, payload_text.as_deref()).await?;
    tracing::info!(document = %id, response = %receipt.response_id, by = %who.0.id(), agencies = ?receipt.agencies, "query answered");
    Ok(HttpResponse::Accepted().json(receipt))
}

pub async fn acknowledge(
    who: Write<Answers>,
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&state, &who, &req, payload).await?;
    let applied = state.gateway.acknowledge(&who.0, &body, "http").await?;
    Ok(HttpResponse::Ok().json(applied))
}

pub async fn consignment(who: Authenticated, state: State, path: web::Path<String>, q: web::Query<VersionsQuery>)
    -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no consignment with this UCR is visible to you");
    let ucr = Ucr::parse(&path.into_inner()).map_err(|_| not_found())?;
    let page = versions_page(&q)?;
    match state.gateway.consignment_page(&who.0, ucr, page).await {
        Ok(Some(view)) => Ok(HttpResponse::Ok().json(view)),
        Ok(None) => Err(not_found()),
        Err(e) => {
            tracing::error!(error = %e, "consignment view failed");
            Err(ApiError::new(Code::Unavailable, "the store could not be read; retry later"))
        }
    }
}

/// `GET /v1/consignments/{ucr}?versionsOf=&before=`: a page of a document's earlier versions.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionsQuery {
    versions_of: Option<String>,
    before: Option<String>,
}

fn versions_page(q: &VersionsQuery) -> Result<crate::tracking::ViewPage, ApiError> {
    let bad = |what: &str| ApiError::new(Code::InvalidQuery, what.to_owned());
    let before = q
        .before
        .as_deref()
        .map(|b| b.parse::<i64>().ok().filter(|b| (1..1_000_000_000).contains(b)).ok_or_else(|| bad("before must be a version number, from 1")))
        .transpose()?;
    match (q.versions_of.as_deref(), before) {
        // `before` pages a document's versions: without `versionsOf` it has nothing to page.
        (None, _) => Ok(crate::tracking::ViewPage::Latest),
        (Some(of), before) => {
            let of = uuid::Uuid::parse_str(of).map_err(|_| bad("versionsOf must be a documentId (a UUID)"))?;
            Ok(crate::tracking::ViewPage::EarlierVersions { of, before: before.unwrap_or(i64::MAX) })
        }
    }
}

#[derive(serde::Deserialize)]
pub struct AgencyFilter {
    agency: Option<String>,
}

fn agency_filter(q: &AgencyFilter) -> Result<Option<crate::domain::AgencyId>, ApiError> {
    q.agency
        .as_deref()
        .map(crate::domain::AgencyId::parse)
        .transpose()
        .map_err(|e| ApiError::new(Code::NotFound, format!("no such agency: {e}")))
}

/// The failed deliveries, oldest first.
#[derive(Serialize, JsonSchema)]
pub struct FailedDeliveries {
    deliveries: Vec<crate::store::FailedDelivery>,
}

/// `GET /v1/deliveries/failed[?agency=]`: what an operator has to look at.
pub async fn failed_deliveries(who: Operator, state: State, q: web::Query<AgencyFilter>) -> Result<HttpResponse, ApiError> {
    let list = state.gateway.failed_deliveries(&who.0, agency_filter(&q)?).await?;
    Ok(HttpResponse::Ok().json(FailedDeliveries { deliveries: list }))
}

/// `POST /v1/deliveries/failed/retry[?agency=]`: send every failed delivery again.
pub async fn retry_failed(who: Operator, state: State, q: web::Query<AgencyFilter>) -> Result<HttpResponse, ApiError> {
    let agency = agency_filter(&q)?;
    let outcome = state.gateway.retry_deliveries(&who.0, RetrySelection::AllFailed { agency }).await?;
    Ok(HttpResponse::Ok().json(outcome))
}

/// `POST /v1/deliveries/{id}/retry`: send one failed delivery again.
pub async fn retry_delivery(who: Operator, state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(Code::NotFound, "no delivery with this id");
    let id: i64 = path.into_inner().parse().map_err(|_| not_found())?;
    let outcome = state.gateway.retry_deliveries(&who.0, RetrySelection::Deliveries(vec![id])).await?;
    if !outcome.unknown.is_empty() {
        return Err(not_found());
    }
    if !outcome.not_failed.is_empty() {
        return Err(ApiError::new(Code::DeliveryNotFailed, format!("delivery {id} has not failed; only failed deliveries are sent again"))
            .with(json!({ "deliveryId": id })));
    }
    Ok(HttpResponse::Ok().json(outcome))
}

/// The registry's catalogue.
#[derive(Serialize, JsonSchema)]
pub struct SchemaCatalogue {
    schemas: Vec<SchemaEntry>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaEntry {
    /// A document type, or `acknowledgment`, `envelope`, `common`.
    document_type: String,
    versions: Vec<crate::domain::SchemaVersion>,
    /// Where each version's schema is served.
    links: Vec<String>,
}

pub async fn schemas(_: Public, state: State) -> HttpResponse {
    let list: Vec<_> = state
        .gateway
        .registry()
        .catalogue()
        .into_iter()
        .map(|(name, versions)| {
            let links: Vec<String> = versions.iter().map(|v| format!("/v1/schemas/{name}/{v}")).collect();
            SchemaEntry { document_type: name, versions, links }
        })
        .collect();
    HttpResponse::Ok().json(SchemaCatalogue { schemas: list })
}

pub async fn schema(_: Public, state: State, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (name, version) = path.into_inner();
    state
        .gateway
        .registry()
        .source(&name, &version)
        .map(|s| HttpResponse::Ok().content_type("application/schema+json").json(&*s))
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such schema; GET /v1/schemas lists them"))
}

/// `GET /openapi.json`: generated once at start from the route table and the registry.
pub async fn openapi(_: Public, state: State) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.openapi.clone())
}

/// `GET /asyncapi.json`, generated once at start.
pub async fn asyncapi(_: Public, state: State) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(state.asyncapi.clone())
}
