//! `/asyncapi.json`: the Kafka side of the gateway as AsyncAPI 3.0, generated at start from
//! the region's agencies, the topic names and the schema registry, so it cannot drift from what
//! is published: every agency's document topic (documents, amended versions, withdrawal and
//! query-answered notices), its ack topic and its refused-answers topic, the status topic and
//! the dead-letter topic, each message with its CloudEvents headers and its payload's schema.

use serde_json::{json, Map, Value};

use crate::domain::AgencyId;
use crate::broker::Topics;
use crate::schema::SchemaRegistry;

/// The CloudEvents Kafka binding's headers (binary mode), as the gateway sets them.
fn cloudevents_headers() -> Value {
    let text = |d: &str| json!({ "type": "string", "description": d });
    json!({
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"],
        "properties": {
            "ce_specversion": text("`1.0`."),
            "ce_id": text("A document's id (the same on every topic and retry: drop a record whose id you have), or a notice's own id."),
            "ce_source": text("`urn:ventanilla:gateway`."),
            "ce_type": text("`org.ventanilla.document.<documentType>`, `org.ventanilla.document.amended`, `org.ventanilla.document.withdrawn`, `org.ventanilla.query.answered`, `org.ventanilla.acknowledgment.refused`, `org.ventanilla.consignment.status` or `org.ventanilla.delivery.failed`."),
            "ce_subject": text("The consignment's UCR (also the record's key)."),
            "ce_time": text("When it was submitted or happened (RFC 3339)."),
            "ce_dataschema": text("The document's schema `$id`."),
            "ce_documenttype": text("The document's type."),
            "ce_schemaversion": text("The document's schema version."),
            "ce_documentversion": text("1, then 2, 3... for each amendment."),
            "ce_amends": text("On an amended version: the `ce_id` it replaces."),
            "ce_documentid": text("On a notice: the document it is about."),
            "ce_origin": text("Origin country."),
            "ce_destination": text("Destination country."),
            "ce_agency": text("The agency the record is for."),
            "ce_selection": text("On a document: the agency's channel for it and why, as JSON text: `{\"channel\": \"green\" | \"yellow\" | \"red\", \"score\", \"source\": \"mandatory\" | \"rule\" | \"model\" | \"random\" | \"none\", \"reasons\": [{\"kind\", \"name\", \"contribution\", \"text\"}], \"modelVersion\", \"modelScore\"}` (docs/risk.md). The agency's alone: a trader never sees the score, the source or the reasons."),
            "content-type": text("`application/json` (`application/problem+json` for a refused answer)."),
        },
    })
}

/// A channel id: AsyncAPI ids are letters, digits, `_` and `-`.
fn id(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

fn reference(path: &str) -> Value {
    json!({ "$ref": path })
}

/// The AsyncAPI document. `schemas` are the registry's schemas as components (the same as
/// `/openapi.json`'s), `status_change` the status event's schema.
pub fn asyncapi(registry: &SchemaRegistry, topics: &Topics, agencies: &[AgencyId], schemas: Map<String, Value>) -> Value {
    let documents: Vec<Value> = registry
        .document_types()
        .into_iter()
        .flat_map(|(name, versions)| {
            versions.into_iter().map(move |v| reference(&format!("#/components/schemas/{}", crate::schema::component_name(&format!("{name}/{v}.json")))))
        })
        .collect();
    let ack = registry
        .catalogue()
        .into_iter()
        .find(|(n, _)| n == crate::schema::ACKNOWLEDGMENT)
        .and_then(|(n, v)| v.last().map(|v| reference(&format!("#/components/schemas/{}", crate::schema::component_name(&format!("{n}/{v}.json"))))))
        .unwrap_or_else(|| json!({ "type": "object" }));
    let message = |name: &str, summary: &str, content_type: &str, payload: Value| {
        json!({
            "name": name,
            "summary": summary,
            "contentType": content_type,
            "headers": reference("#/components/schemas/CloudEventHeaders"),
            "payload": payload,
        })
    };
    let messages = json!({
        "document": message("document", "A document routed to the agency (or an amended version, `ce_amends` naming the one it replaces): the payload as the trader sent it.", "application/json", json!({ "oneOf": documents })),
        "withdrawn": message("withdrawn", "The document named by `ce_documentid` was withdrawn, or amended into a version no longer routed to the agency.", "application/json", reference("#/components/schemas/WithdrawalNotice")),
        "queryAnswered": message("queryAnswered", "The trader's answer to the agency's query.", "application/json", reference("#/components/schemas/QueryAnswered")),
        "acknowledgment": message("acknowledgment", "An agency's answer about a document routed to it.", "application/json", ack),
        "refusedAnswer": message("refusedAnswer", "An answer the gateway refused: the problem (code, JSON pointers) and the refused record's place.", "application/problem+json", reference("#/components/schemas/RefusedAnswer")),
        "status": message("status", "A consignment's state change, or an event of its life (query, response, amendment, withdrawal).", "application/json", reference("#/components/schemas/StatusChange")),
        "deadLetter": message("deadLetter", "A delivery that could not be published after its last attempt (`ventanilla_reason` header).", "application/json", json!({})),
    });
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut channel = |key: String, address: String, description: String, names: &[&str]| {
        let msgs: Map<String, Value> = names.iter().map(|n| ((*n).to_owned(), reference(&format!("#/components/messages/{n}")))).collect();
        channels.insert(key, json!({ "address": address, "description": description, "messages": msgs }));
    };
    for agency in agencies {
        let a = agency.as_str();
        channel(id(&format!("agency_{a}")), topics.agency(agency), format!("What {a} receives: its documents and the notices about them."), &["document", "withdrawn", "queryAnswered"]);
        channel(id(&format!("acks_{a}")), topics.acks(agency), format!("Where {a} answers (only {a} may write it)."), &["acknowledgment"]);
        channel(id(&format!("refused_{a}")), topics.refused_acks(agency), format!("{a}'s answers the gateway refused, and why."), &["refusedAnswer"]);
    }
    channel("status".into(), topics.status(), "Every consignment's state changes and life events, keyed by UCR.".into(), &["status"]);
    channel("deadletter".into(), topics.dead_letter(), "Deliveries that failed after their last attempt.".into(), &["deadLetter"]);
    let mut operation = |key: String, action: &str, channel_key: &str, names: &[&str], summary: String| {
        let msgs: Vec<Value> = names.iter().map(|n| reference(&format!("#/channels/{channel_key}/messages/{n}"))).collect();
        operations.insert(key, json!({ "action": action, "channel": reference(&format!("#/channels/{channel_key}")), "messages": msgs, "summary": summary }));
    };
    for agency in agencies {
        let a = agency.as_str();
        operation(id(&format!("publishTo_{a}")), "send", &id(&format!("agency_{a}")), &["document", "withdrawn", "queryAnswered"], format!("The gateway publishes {a}'s deliveries."));
        operation(id(&format!("answersOf_{a}")), "receive", &id(&format!("acks_{a}")), &["acknowledgment"], format!("The gateway applies {a}'s answers."));
        operation(id(&format!("refusalsTo_{a}")), "send", &id(&format!("refused_{a}")), &["refusedAnswer"], format!("The gateway tells {a} which answers it refused."));
    }
    operation("publishStatus".into(), "send", "status", &["status"], "The gateway publishes each consignment event.".into());
    operation("publishDeadLetters".into(), "send", "deadletter", &["deadLetter"], "The gateway sets aside what it could not deliver.".into());

    let mut components = schemas;
    components.insert("CloudEventHeaders".into(), cloudevents_headers());
    components.insert(
        "WithdrawalNotice".into(),
        json!({ "type": "object", "required": ["documentId", "ucr", "reason", "withdrawnAt"], "properties": {
            "documentId": { "type": "string" }, "ucr": { "type": "string" }, "documentType": { "type": "string" },
            "version": { "type": "integer" }, "reason": { "type": "string" }, "withdrawnAt": { "type": "string" },
            "supersededBy": { "type": "string", "description": "The version that replaced it, when an amendment dropped the agency." } } }),
    );
    components.insert(
        "QueryAnswered".into(),
        json!({ "type": "object", "required": ["responseId", "documentId", "ucr", "text", "respondedAt"], "properties": {
            "responseId": { "type": "string" }, "documentId": { "type": "string" }, "ucr": { "type": "string" },
            "documentType": { "type": "string" }, "version": { "type": "integer" }, "text": { "type": "string" },
            "agencies": { "type": "array", "items": { "type": "string" } }, "respondedAt": { "type": "string" },
            "supportingDocument": { "type": "object", "properties": { "documentType": { "type": "string" }, "schemaVersion": { "type": "string" }, "payload": {} } } } }),
    );
    components.insert(
        "RefusedAnswer".into(),
        json!({ "type": "object", "required": ["code", "title", "detail", "refused"], "properties": {
            "code": { "type": "string" }, "title": { "type": "string" }, "detail": { "type": "string" }, "status": { "type": "integer" },
            "errors": { "type": "array", "items": { "type": "object", "properties": { "pointer": { "type": "string" }, "keyword": { "type": "string" }, "message": { "type": "string" } } } },
            "refused": { "type": "object", "properties": { "topic": { "type": "string" }, "partition": { "type": "integer" }, "offset": { "type": "integer" }, "key": { "type": ["string", "null"] } } },
            "refusedAt": { "type": "string" } } }),
    );
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Ventanilla: the Kafka side",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What the gateway publishes to each agency and reads from it, in the CloudEvents Kafka binding (binary mode). Records are keyed by the consignment's UCR, so one consignment keeps its order.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "schemas": components, "messages": messages },
    })
}
