//! The CloudEvents Kafka protocol binding, binary mode: the event's attributes travel as
//! `ce_*` headers and the record's value is the data itself (the document's payload).

use rdkafka::message::{Header, OwnedHeaders};

use crate::clock::rfc3339;
use crate::store::OutboundDelivery;

/// `ce_source` of every event the gateway emits.
pub const SOURCE: &str = "urn:ventanilla:gateway";

/// Headers of a delivery's record. `ce_id` is the document id, the same on every topic and
/// every retry, so an agency can drop duplicates.
pub fn delivery_headers(d: &OutboundDelivery) -> OwnedHeaders {
    let id = d.document_id.to_string();
    let ce_type = format!("org.ventanilla.document.{}", d.document_type);
    let time = rfc3339(d.submitted_at);
    let pairs: [(&str, &str); 13] = [
        ("ce_specversion", "1.0"),
        ("ce_id", &id),
        ("ce_source", SOURCE),
        ("ce_type", &ce_type),
        ("ce_subject", d.ucr.as_str()),
        ("ce_time", &time),
        ("ce_dataschema", &d.schema_id),
        ("content-type", "application/json"),
        ("ce_documenttype", d.document_type.as_str()),
        ("ce_schemaversion", &d.schema_version),
        ("ce_origin", &d.origin),
        ("ce_destination", &d.destination),
        ("ce_agency", d.agency.as_str()),
    ];
    headers(&pairs)
}

/// A delivery as a CloudEvent in structured mode (JSON text), for the agencies' HTTP stream: the
/// same attributes as the Kafka headers, the document's payload as `data`, its stored bytes as
/// they are (the payload was checked as JSON when it was accepted): a stream's memory and CPU do
/// not grow with parsing documents again.
pub fn delivery_event(d: &OutboundDelivery) -> String {
    let attributes = serde_json::json!({
        "specversion": "1.0",
        "id": d.document_id,
        "source": SOURCE,
        "type": format!("org.ventanilla.document.{}", d.document_type),
        "subject": d.ucr,
        "time": rfc3339(d.submitted_at),
        "dataschema": d.schema_id,
        "datacontenttype": "application/json",
        "documenttype": d.document_type,
        "schemaversion": d.schema_version,
        "origin": d.origin,
        "destination": d.destination,
        "agency": d.agency,
        "deliveryid": d.delivery_id,
    })
    .to_string();
    // `{...attributes}` becomes `{...attributes,"data":<payload>}`.
    let mut event = String::with_capacity(attributes.len() + d.payload.len() + 9);
    event.push_str(&attributes[..attributes.len() - 1]);
    event.push_str(",\"data\":");
    event.push_str(&d.payload);
    event.push('}');
    event
}

/// Headers of a dead-letter notice: the failed delivery's own attributes (same `ce_id`), its
/// type marking it a failure, and the reason.
pub fn dead_letter_headers(d: &OutboundDelivery, reason: &str) -> OwnedHeaders {
    let id = d.document_id.to_string();
    let time = rfc3339(d.submitted_at);
    let reason: String = reason.chars().take(1000).collect();
    headers(&[
        ("ce_specversion", "1.0"),
        ("ce_id", &id),
        ("ce_source", SOURCE),
        ("ce_type", "org.ventanilla.delivery.failed"),
        ("ce_subject", d.ucr.as_str()),
        ("ce_time", &time),
        ("content-type", "application/json"),
        ("ce_agency", d.agency.as_str()),
        ("ventanilla_reason", &reason),
    ])
}

/// Headers of a consignment status event.
pub fn status_headers(event_id: &str, ucr: &str, time: &str) -> OwnedHeaders {
    headers(&[
        ("ce_specversion", "1.0"),
        ("ce_id", event_id),
        ("ce_source", SOURCE),
        ("ce_type", "org.ventanilla.consignment.status"),
        ("ce_subject", ucr),
        ("ce_time", time),
        ("content-type", "application/json"),
    ])
}

fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
        h.insert(Header { key: k, value: Some(v.as_bytes()) })
    })
}
