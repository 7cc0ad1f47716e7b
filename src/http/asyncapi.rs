//! `/asyncapi.json`: the Kafka side of the gateway as AsyncAPI 3.0, generated at start from
//! the region's agencies, the topic names and the schema registry, so it cannot drift from what
//! is published: every agency's document topic (documents, amended versions, withdrawal and
//! query-answered notices), its ack topic and its refused-answers topic, the status topic and
//! the dead-letter topic, each message with its CloudEvents headers and its payload's schema.
//! The broker clients bootstrap at is its `servers` entry, and the Kafka bindings (0.5.0) say
//! what code generators and brokers' tools need beside: each topic's partitions and copies, each
//! record's key (the consignment's UCR), and the consumer group the gateway reads answers in.

use serde_json::{json, Map, Value};

use crate::broker::Topics;
use crate::config::KafkaConfig;
use crate::domain::AgencyId;
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
            "ce_type": text("`org.ventanilla.document.<documentType>`, `org.ventanilla.document.amended`, `org.ventanilla.document.withdrawn`, `org.ventanilla.query.answered`, `org.ventanilla.acknowledgment.refused`, `org.ventanilla.acknowledgment.unchanged`, `org.ventanilla.consignment.status` or `org.ventanilla.delivery.failed`."),
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

/// The Kafka bindings' version used throughout.
const KAFKA_BINDING: &str = "0.5.0";

/// Where outside clients reach the broker, and how its topics are laid out.
pub struct KafkaSide<'a> {
    /// The bootstrap address outside clients are told (the embedded broker's fixed port).
    pub brokers: &'a str,
    pub kafka: &'a KafkaConfig,
}

/// The AsyncAPI document. `schemas` are the registry's schemas as components (the same as
/// `/openapi.json`'s) and the status event's schema.
pub fn asyncapi(registry: &SchemaRegistry, topics: &Topics, agencies: &[AgencyId], side: &KafkaSide<'_>, schemas: Map<String, Value>) -> Value {
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
    // Every record is keyed by the consignment's UCR, so one consignment keeps its order; a
    // refusal or unchanged-answer notice repeats the key of the record it is about.
    let key = json!({ "kafka": { "bindingVersion": KAFKA_BINDING, "key": {
        "type": "string",
        "description": "The consignment's UCR (WCO Unique Consignment Reference); on a notice about an answer, the key of the answer's record (at most 256 bytes of it).",
    } } });
    let message = |name: &str, summary: &str, content_type: &str, payload: Value| {
        json!({
            "name": name,
            "summary": summary,
            "contentType": content_type,
            "headers": reference("#/components/schemas/CloudEventHeaders"),
            "payload": payload,
            "bindings": key.clone(),
        })
    };
    let messages = json!({
        "document": message("document", "A document routed to the agency (or an amended version, `ce_amends` naming the one it replaces): the payload as the trader sent it.", "application/json", json!({ "oneOf": documents })),
        "withdrawn": message("withdrawn", "The document named by `ce_documentid` was withdrawn, or amended into a version no longer routed to the agency.", "application/json", reference("#/components/schemas/WithdrawalNotice")),
        "queryAnswered": message("queryAnswered", "The trader's answer to the agency's query.", "application/json", reference("#/components/schemas/QueryAnswered")),
        "acknowledgment": message("acknowledgment", "An agency's answer about a document routed to it.", "application/json", ack),
        "refusedAnswer": message("refusedAnswer", "An answer the gateway refused: the problem (code, JSON pointers) and the refused record's place.", "application/problem+json", reference("#/components/schemas/RefusedAnswer")),
        "unchangedAnswer": message("unchangedAnswer", "An answer the gateway took but that changed nothing, the delivery having moved on (`late` or `stale`; `ce_type` `org.ventanilla.acknowledgment.unchanged`): what it found and the answer's place.", "application/json", reference("#/components/schemas/UnchangedAnswer")),
        "status": message("status", "A consignment's state change, or an event of its life (query, response, amendment, withdrawal).", "application/json", reference("#/components/schemas/StatusChange")),
        "deadLetter": message("deadLetter", "A delivery that could not be published after its last attempt (`ventanilla_reason` header).", "application/json", json!({})),
    });
    let mut channels = Map::new();
    let mut operations = Map::new();
    let kafka = side.kafka;
    let mut channel = |key: String, address: String, description: String, names: &[&str]| {
        let msgs: Map<String, Value> = names.iter().map(|n| ((*n).to_owned(), reference(&format!("#/components/messages/{n}")))).collect();
        let mut binding = json!({ "bindingVersion": KAFKA_BINDING, "topic": address, "partitions": kafka.partitions,
            "topicConfiguration": { "max.message.bytes": kafka.max_message_bytes } });
        if let Some(copies) = kafka.replication_factor {
            binding["replicas"] = json!(copies);
        }
        channels.insert(key, json!({ "address": address, "description": description, "messages": msgs, "bindings": { "kafka": binding } }));
    };
    for agency in agencies {
        let a = agency.as_str();
        channel(id(&format!("agency_{a}")), topics.agency(agency), format!("What {a} receives: its documents and the notices about them."), &["document", "withdrawn", "queryAnswered"]);
        channel(id(&format!("acks_{a}")), topics.acks(agency), format!("Where {a} answers (only {a} may write it)."), &["acknowledgment"]);
        channel(id(&format!("refused_{a}")), topics.refused_acks(agency), format!("{a}'s answers the gateway refused, and why; and those it took but that changed nothing."), &["refusedAnswer", "unchangedAnswer"]);
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
        operation(id(&format!("refusalsTo_{a}")), "send", &id(&format!("refused_{a}")), &["refusedAnswer", "unchangedAnswer"], format!("The gateway tells {a} which answers it refused, and which changed nothing."));
    }
    operation("publishStatus".into(), "send", "status", &["status"], "The gateway publishes each consignment event.".into());
    operation("publishDeadLetters".into(), "send", "deadletter", &["deadLetter"], "The gateway sets aside what it could not deliver.".into());
    // The gateways of a region read each agency's answers in a group of that agency's own.
    for agency in agencies {
        let group = crate::kafka::acks::group_of(&kafka.consumer_group, agency.as_str());
        if let Some(op) = operations.get_mut(&id(&format!("answersOf_{}", agency.as_str()))) {
            op["bindings"] = json!({ "kafka": { "bindingVersion": KAFKA_BINDING, "groupId": { "type": "string", "enum": [group] } } });
        }
    }

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
        "UnchangedAnswer".into(),
        json!({ "type": "object", "required": ["documentId", "agency", "ucr", "outcome", "deliveryStatus", "consignmentState", "detail", "answer", "toldAt"], "properties": {
            "documentId": { "type": "string" }, "agency": { "type": "string" }, "ucr": { "type": "string" },
            "outcome": { "type": "string", "enum": ["late", "stale"], "description": "`late`: the delivery already had a final answer; `stale`: older news than the delivery's current answer." },
            "deliveryStatus": { "type": "string", "description": "The delivery's status, which the answer left as it was." },
            "consignmentState": { "type": "string" }, "detail": { "type": "string" },
            "answer": { "type": "object", "properties": { "topic": { "type": "string" }, "partition": { "type": "integer" }, "offset": { "type": "integer" }, "key": { "type": ["string", "null"] } } },
            "toldAt": { "type": "string" } } }),
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
        "servers": { "broker": {
            "host": side.brokers.split(',').next().unwrap_or_default(),
            "protocol": if kafka.security == Default::default() { "kafka" } else { "kafka-secure" },
            "description": "Where this gateway's Kafka clients bootstrap (the embedded broker's fixed port when no cluster is configured). The gateway creates every topic below; an agency reads its own topic and writes its own ack topic only (Kafka ACLs, docs/security.md).",
            "bindings": { "kafka": { "bindingVersion": KAFKA_BINDING } },
        } },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "schemas": components, "messages": messages },
    })
}
