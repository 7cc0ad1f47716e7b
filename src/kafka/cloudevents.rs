//! The CloudEvents Kafka protocol binding, binary mode: the event's attributes travel as
//! `ce_*` headers and the record's value is the data itself (the document's payload). A
//! document's record names its agency's channel and why (`ce_selection`), for that agency alone.

use rdkafka::message::{Header, OwnedHeaders};

use crate::clock::rfc3339;
use crate::store::OutboundDelivery;

/// `ce_source` of every event the gateway emits.
pub const SOURCE: &str = "urn:ventanilla:gateway";

/// The CloudEvents type of a document as first submitted: `org.ventanilla.document.<type>`.
pub fn document_type_event(document_type: &str) -> String {
    format!("org.ventanilla.document.{document_type}")
}

/// The type of an amended version, whatever the document's type (`ce_documenttype` says it).
pub const AMENDED: &str = "org.ventanilla.document.amended";

/// The attributes of a delivery's event, in the order they are sent (the `ce_` prefix left
/// out). A document's `id` is the document id, the same on every topic and every retry, so an
/// agency can drop duplicates; an amended version names the one it replaces (`amends`) and
/// its `documentversion`. A notice (`org.ventanilla.document.withdrawn`,
/// `org.ventanilla.query.answered`) has its own `id` and names its document (`documentid`).
pub fn attributes(d: &OutboundDelivery) -> Vec<(&'static str, String)> {
    let mut a: Vec<(&'static str, String)> = vec![("specversion", "1.0".into())];
    match &d.notice {
        Some(n) => {
            a.push(("id", n.id.to_string()));
            a.push(("source", SOURCE.into()));
            a.push(("type", n.kind.event_type().into()));
            a.push(("subject", d.ucr.to_string()));
            a.push(("time", rfc3339(n.at)));
            a.push(("documentid", d.document_id.to_string()));
        }
        None => {
            a.push(("id", d.document_id.to_string()));
            a.push(("source", SOURCE.into()));
            a.push(("type", if d.amends.is_some() { AMENDED.into() } else { document_type_event(d.document_type.as_str()) }));
            a.push(("subject", d.ucr.to_string()));
            a.push(("time", rfc3339(d.submitted_at)));
            a.push(("dataschema", d.schema_id.clone()));
        }
    }
    a.push(("documenttype", d.document_type.to_string()));
    a.push(("schemaversion", d.schema_version.clone()));
    a.push(("documentversion", d.version.to_string()));
    if let Some(amends) = d.amends {
        a.push(("amends", amends.to_string()));
    }
    a.push(("origin", d.origin.clone()));
    a.push(("destination", d.destination.clone()));
    a.push(("agency", d.agency.to_string()));
    // The document's channel for this agency and why (`crate::risk::Selection`), as JSON text:
    // an extension attribute's value is a string.
    if let (None, Some(selection)) = (&d.notice, &d.selection) {
        a.push(("selection", selection.clone()));
    }
    a
}

/// Headers of a delivery's record: [`attributes`] as `ce_*` headers, and the content type.
pub fn delivery_headers(d: &OutboundDelivery) -> OwnedHeaders {
    let attributes = attributes(d);
    let mut pairs: Vec<(String, &str)> = attributes.iter().map(|(k, v)| (format!("ce_{k}"), v.as_str())).collect();
    pairs.push(("content-type".into(), "application/json"));
    pairs.iter().fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }))
}

/// A delivery as a CloudEvent in structured mode (JSON text), for the agencies' HTTP stream: the
/// same attributes as the Kafka headers, the payload as `data`, its stored bytes as they are
/// (the payload was checked as JSON when it was accepted): a stream's memory and CPU do not grow
/// with parsing documents again.
pub fn delivery_event(d: &OutboundDelivery) -> String {
    let mut attributes: serde_json::Map<String, serde_json::Value> =
        attributes(d).into_iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v))).collect();
    attributes.insert("datacontenttype".into(), "application/json".into());
    attributes.insert("deliveryid".into(), d.delivery_id.into());
    let attributes = serde_json::Value::Object(attributes).to_string();
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
    let id = d.notice.as_ref().map_or(d.document_id, |n| n.id).to_string();
    let time = rfc3339(d.notice.as_ref().map_or(d.submitted_at, |n| n.at));
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
