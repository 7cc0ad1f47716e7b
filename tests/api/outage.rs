//! The broker goes away: readiness says so, submissions are still accepted (they are in the
//! store), and when the broker is back the relay delivers them.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{consumer, example, spawn_app_with, OwnBroker};

#[tokio::test]
async fn readiness_follows_the_broker_and_accepted_documents_wait_for_it() {
    let mut broker = OwnBroker::start().await;
    let app = spawn_app_with(Some(broker.address.clone())).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    broker.kill();
    let mut body = Value::Null;
    for _ in 0..50 {
        let r = app.get("/readyz", None).await;
        if r.status() == 503 {
            body = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["status"], "not_ready", "readyz reports the dead broker");
    assert_eq!(body["broker"], "unavailable");
    assert_eq!(body["store"], "ok");

    // Accepted while the broker is down: the store holds it.
    let r = app.submit(&example("packingList/valid/beef-road-AR-BR.json")).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let doc = receipt["documentId"].as_str().unwrap().to_owned();
    let topic = receipt["deliveries"][0]["topic"].as_str().unwrap().to_owned();

    broker.resume().await;
    let c = consumer(&broker.address, &[&topic]);
    let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
        .await
        .expect("the document is delivered once the broker is back")
        .unwrap();
    use rdkafka::message::{Headers, Message};
    let ce_id = m.headers().unwrap().iter().find(|h| h.key == "ce_id").and_then(|h| h.value).unwrap();
    assert_eq!(ce_id, doc.as_bytes());
    let mut ready = false;
    for _ in 0..100 {
        if app.get("/readyz", None).await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readyz recovers with the broker");
}
