//! The acknowledgment consumer when the store cannot take an answer: it applies the same answer
//! again until the store can, and only then moves on, so later answers of the partition are
//! applied after it and no offset is stored past an answer never applied.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::helpers::{example, spawn_app};

#[tokio::test]
async fn an_answer_the_store_cannot_take_is_applied_once_it_can_and_before_the_next() {
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("spsCertificate/valid/phyto-pears-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    app.wait_for_state(&ucr, "submitted").await;

    // Another connection to the real SQLite file holds its write lock for longer than the
    // gateway's busy timeout (5 s): the gateway's writes fail meanwhile.
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let topic = app.topic("acks.br-customs");
    for (status, reason) in [("hold", "seal number differs"), ("released", "seal checked")] {
        let answer = json!({"documentId": doc, "agency": "br-customs", "status": status, "reason": reason}).to_string();
        producer.send(FutureRecord::to(&topic).key(&ucr).payload(&answer), Duration::from_secs(10)).await.expect("answer sent");
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Nothing was applied while the store was locked.
    let blocked: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(blocked["state"], "submitted", "{blocked:#}");
    db.execute_batch("ROLLBACK").unwrap();

    // Both answers land, in the order they were sent: the first was not skipped.
    let mut customs = Value::Null;
    for _ in 0..300 {
        let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        customs = view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-customs").unwrap().clone();
        if customs["status"] == "released" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(customs["status"], "released", "{customs:#}");
    let answers: Vec<(&str, &str)> = customs["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["source"] == "kafka")
        .map(|h| (h["status"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(answers, vec![("hold", "applied"), ("released", "applied")], "{customs:#}");
}

/// A refused answer on an agency's ack topic reaches that agency, on its own refused-answers
/// topic: the refused record's place and key, the problem code, and each violation's pointer.
#[tokio::test]
async fn refused_answers_on_the_ack_topic_are_told_to_the_agency() {
    use rdkafka::message::{Headers, Message};
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("spsCertificate/valid/phyto-pears-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let topic = app.topic("acks.br-customs");
    let not_json = "released, please".to_owned();
    let bad_status = json!({"documentId": doc, "agency": "br-customs", "status": "approved"}).to_string();
    let other_agency = json!({"documentId": doc, "agency": "br-sanitary", "status": "released"}).to_string();
    let good = json!({"documentId": doc, "agency": "br-customs", "status": "accepted"}).to_string();
    let mut sent = Vec::new();
    for answer in [&not_json, &bad_status, &other_agency, &good] {
        let delivered =
            producer.send(FutureRecord::to(&topic).key(&ucr).payload(answer.as_str()), Duration::from_secs(10)).await.expect("answer sent");
        sent.push((delivered.partition, delivered.offset));
    }

    let refused = crate::helpers::consumer(&app.brokers, &[&app.topic("acks.br-customs.refused")]);
    let mut told = Vec::new();
    while told.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(30), refused.recv()).await.expect("a refusal within 30 s").unwrap();
        let headers: std::collections::BTreeMap<String, String> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        assert_eq!(headers["ce_type"], "org.ventanilla.acknowledgment.refused");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(m.key(), Some(ucr.as_bytes()), "keyed as the refused record");
        told.push(serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap());
    }
    let codes: Vec<&str> = told.iter().map(|t| t["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["malformed-json", "invalid-acknowledgment", "forbidden"], "{told:#?}");
    for (t, (partition, offset)) in told.iter().zip(&sent) {
        assert_eq!((t["refused"]["topic"].as_str(), t["refused"]["partition"].as_i64(), t["refused"]["offset"].as_i64()),
            (Some(topic.as_str()), Some(i64::from(*partition)), Some(*offset)));
        assert_eq!(t["refused"]["key"], ucr);
    }
    assert_eq!(told[1]["errors"][0]["pointer"], "/status", "{:#}", told[1]);
    // The good answer after them was applied: the refusals held nothing up.
    app.wait_for_state(&ucr, "in_review").await;
}
