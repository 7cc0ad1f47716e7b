//! The whole way, against the real broker: submit, consume the document from the agency topic
//! with a real Kafka consumer, answer on the ack topic, see the consignment released and its
//! status events on the status topic.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use serde_json::{json, Value};

use crate::helpers::{consumer, example, spawn_app};

#[tokio::test]
async fn a_declaration_travels_to_its_agencies_and_back_to_release() {
    let app = spawn_app().await;
    let body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    let r = app.submit(&body).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let doc_id = receipt["documentId"].as_str().unwrap().to_owned();
    let ucr = receipt["ucr"].as_str().unwrap().to_owned();
    let agencies: Vec<String> =
        receipt["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap().to_owned()).collect();
    assert!(agencies.contains(&"br-customs".into()) && agencies.contains(&"br-sanitary".into()));

    // Each agency consumes its own topic and finds the document as a binary-mode CloudEvent.
    let topics: Vec<String> = agencies.iter().map(|a| app.topic(&format!("agency.{a}"))).collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let c = consumer(&app.brokers, &topic_refs);
    let mut seen: HashMap<String, Value> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < topics.len() {
        let m = tokio::time::timeout_at(deadline, c.recv()).await.expect("every agency topic gets the document").unwrap();
        let headers: HashMap<String, String> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        assert_eq!(headers["ce_specversion"], "1.0");
        assert_eq!(headers["ce_id"], doc_id);
        assert_eq!(headers["ce_subject"], ucr);
        assert_eq!(headers["ce_type"], "org.ventanilla.document.customsDeclaration");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(m.key(), Some(ucr.as_bytes()));
        let payload: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(payload, body["payload"]);
        seen.insert(m.topic().to_owned(), payload);
    }

    // Every agency answers `released` on its own ack topic.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    for a in &agencies {
        let ack = json!({"documentId": doc_id, "agency": a, "status": "released", "reason": "cleared"}).to_string();
        producer
            .send(FutureRecord::to(&app.topic(&format!("acks.{a}"))).key(&ucr).payload(&ack), Duration::from_secs(10))
            .await
            .expect("ack published");
    }
    let view = app.wait_for_state(&ucr, "released").await;
    assert!(view["timeRelease"]["submissionToReleaseMs"].is_number());
    for d in view["documents"][0]["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "released");
        assert!(d["dispatchedAt"].is_string());
        let statuses: Vec<&str> = d["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, vec!["pending", "dispatched", "released"]);
    }
    for t in view["timeRelease"]["agencies"].as_array().unwrap() {
        assert!(t["submissionToFirstAnswerMs"].is_number(), "{t}");
    }

    // The status topic tells the consignment's story.
    let status = consumer(&app.brokers, &[&app.topic("status")]);
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("released") {
        let m = tokio::time::timeout(Duration::from_secs(30), status.recv()).await.expect("status events arrive").unwrap();
        let ev: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(ev["ucr"], ucr.as_str());
        states.push(ev["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states.first().map(String::as_str), Some("submitted"));
    assert!(states.contains(&"in_review".to_owned()));
}

#[tokio::test]
async fn http_acknowledgments_drive_the_state_and_duplicates_change_nothing() {
    let app = spawn_app().await;
    let body = example("commercialInvoice/valid/cars-sea-BR-UY.json");
    let receipt: Value = app.submit(&body).await.json().await.unwrap();
    let doc = receipt["documentId"].as_str().unwrap();
    let ucr = receipt["ucr"].as_str().unwrap();
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let token = format!("demo-{agency}");
    let ack = |status: &str| json!({"documentId": doc, "agency": agency, "status": status}).to_string();

    let r: Value = app.post_json("/v1/acknowledgments", Some(&token), &ack("hold")).await.json().await.unwrap();
    assert_eq!(r["outcome"], "applied");
    assert_eq!(r["consignmentState"], "on_hold");
    let r: Value = app.post_json("/v1/acknowledgments", Some(&token), &ack("hold")).await.json().await.unwrap();
    assert_eq!(r["outcome"], "duplicate");
    let r: Value = app.post_json("/v1/acknowledgments", Some(&token), &ack("received")).await.json().await.unwrap();
    assert_eq!(r["outcome"], "stale");
    assert_eq!(r["deliveryStatus"], "hold");
    let r: Value = app.post_json("/v1/acknowledgments", Some(&token), &ack("rejected")).await.json().await.unwrap();
    assert_eq!(r["consignmentState"], "refused");
    let r: Value = app.post_json("/v1/acknowledgments", Some(&token), &ack("released")).await.json().await.unwrap();
    assert_eq!(r["outcome"], "late");
    assert_eq!(r["consignmentState"], "refused");
    let view = app.wait_for_state(ucr, "refused").await;
    assert_eq!(view["documents"][0]["deliveries"][0]["status"], "rejected");
}
