//! The Python agency example (`examples/python/agency_consumer.py`, confluent-kafka) runs
//! against the real broker: it receives a routed document and its answer reaches the gateway.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app};

#[tokio::test]
async fn the_python_example_receives_a_document_and_answers_it() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let ucr = format!("PY-{}", &run[24..]);
    let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    d["ucr"] = json!(ucr);
    let receipt: Value = app.submit(&d).await.json().await.unwrap();
    let out = tokio::task::spawn_blocking({
        let (brokers, prefix) = (app.brokers.clone(), app.topic_prefix.clone());
        move || {
            std::process::Command::new("python3")
                .arg(crate::helpers::repo().join("examples/python/agency_consumer.py"))
                .args(["--brokers", &brokers, "--prefix", &prefix, "--agency", "br-sanitary", "--count", "1", "--timeout", "60"])
                .output()
                .expect("python3 runs")
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(120), out).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(receipt["documentId"].as_str().unwrap()) && stdout.contains(&ucr), "{stdout}");
    crate::support::eventually(Duration::from_secs(10), "the Python agency's answer applied", || async {
        let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        let status = view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|x| x["agency"] == "br-sanitary").unwrap()["status"].clone();
        (status == "received").then_some(())
    })
    .await;
}
