//! Graceful shutdown of the real binary: on SIGTERM it stops taking requests, lets the relay
//! publish what was accepted, flushes the producer and exits 0.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{consumer, example, spawn_binary, test_brokers};

#[tokio::test]
async fn sigterm_publishes_what_was_accepted_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("s{}.", uuid::Uuid::now_v7().simple());
    let brokers = test_brokers();
    let (mut child, address, rx) = spawn_binary(data.path(), &prefix, &brokers);

    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for name in ["beef-road-AR-BR", "cars-sea-BR-UY", "medicines-air-BR-AR"] {
        let body = example(&format!("commercialInvoice/valid/{name}.json"));
        let r = client
            .post(format!("{address}/v1/documents"))
            .bearer_auth("demo-trader")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let receipt: Value = r.json().await.unwrap();
        ids.push((receipt["documentId"].as_str().unwrap().to_owned(), receipt["deliveries"][0]["topic"].as_str().unwrap().to_owned()));
    }
    // SIGTERM right away, while the relay may still be publishing.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("producer flushed")), "{logs:#?}");

    // Every accepted document is on its agency's topic.
    let topics: Vec<&str> = ids.iter().map(|(_, t)| t.as_str()).collect();
    let c = consumer(&brokers, &topics);
    let mut missing: Vec<String> = ids.iter().map(|(d, _)| d.clone()).collect();
    while !missing.is_empty() {
        let m = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("never published: {missing:?}"))
            .unwrap();
        use rdkafka::message::{Headers, Message};
        let ce_id = m.headers().and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned()));
        missing.retain(|d| Some(d) != ce_id.as_ref());
    }
}
