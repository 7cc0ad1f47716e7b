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
