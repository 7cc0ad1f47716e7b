//! `/openapi.json` (OpenAPI 3.1) generated from the route table (`super::api`): the bodies'
//! schemas derived from the Rust types that serialize them (schemars), the document schemas
//! taken from the registry the gateway validates with, each route's errors by status, and its
//! security from the access its handler enforces. `/asyncapi.json`'s schemas too. Both in the
//! shape client generators take (`super::generators`).

use actix_web::http::Method;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::api::{endpoints, of, Body, Endpoint, AGENCY};
use super::errors::{Code, Problem};
use super::policy::Access;
use super::stream;
use crate::config::GatewayConfig;
use crate::schema::SchemaRegistry;

/// Errors of everything that reads a JSON body.
const BODY_ERRORS: [Code; 5] =
    [Code::MalformedJson, Code::JsonLimitExceeded, Code::UnsupportedMediaType, Code::PayloadTooLarge, Code::RequestTimeout];
/// Errors of everything that writes.
const WRITE_ERRORS: [Code; 2] = [Code::Overloaded, Code::Unavailable];

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
    let access = endpoint.access();
    if access != Access::Anyone {
        // Every authenticated request counts against its participant's quota.
        codes.push(Code::Unauthenticated);
        codes.push(Code::TooManyRequests);
    }
    if access.described().is_some() {
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
    let mut statuses: Vec<u16> = codes.iter().map(|c| c.status()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for s in statuses {
        let mut of_status: Vec<Code> = codes.iter().copied().filter(|c| c.status() == s).collect();
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
    op["security"] = match access {
        Access::Anyone => json!([]),
        Access::Participant | Access::Submitter | Access::Agency | Access::Operator => json!([{ "bearer": [] }, { "mutualTls": [] }]),
    };
    if let Some(who) = access.described() {
        op["description"] = json!(who);
    }
    op
}

/// The registry's schemas as components (`#/components/schemas/<type>-<version>`), their
/// references made local: shared by `/openapi.json` and `/asyncapi.json`.
pub fn registry_components(registry: &SchemaRegistry) -> Map<String, Value> {
    registry.components()
}

/// `/asyncapi.json`: the Kafka side (`super::asyncapi`), with the status event's schema.
pub fn asyncapi(registry: &SchemaRegistry, topics: &crate::broker::Topics, agencies: &[crate::domain::AgencyId], side: &super::asyncapi::KafkaSide<'_>) -> Value {
    let mut generator = SchemaSettings::draft07().with(|s| s.definitions_path = "/components/schemas".into()).into_generator();
    generator.subschema_for::<crate::store::StatusChange>();
    let mut schemas = generator.take_definitions(true);
    schemas.extend(registry_components(registry));
    let mut document = super::asyncapi::asyncapi(registry, topics, agencies, side, schemas);
    super::generators::reshape(&mut document);
    document
}

/// The OpenAPI 3.1 description of this gateway, with `registry`'s schemas as components and
/// the bounds of `gateway`.
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
    let mut document = json!({
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
    });
    super::generators::reshape(&mut document);
    document
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
