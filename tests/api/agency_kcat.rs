//! The agency's side done with `kcat`, as an agency's IT team would: read the agency topic,
//! answer on the ack topic.
//! Against the test command's Apache Kafka broker, and against the embedded default (librdkafka's
//! mock cluster) whose address `serve` prints for agencies to try.

use std::process::{Command, Stdio};
use std::io::Write;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_agency_reads_its_topic_and_answers_with_kcat() {
    agency_reads_and_answers_with_kcat(&spawn_app().await).await;
}

#[tokio::test]
async fn an_agency_reads_the_embedded_broker_with_kcat() {
    agency_reads_and_answers_with_kcat(&spawn_app_with(None).await).await;
}

/// The embedded broker at a fixed port (`--embedded-kafka-port`, 9092 for `serve`): an agency's
/// kcat line is the same at every start. A taken port does not stop the gateway; its own port is
/// used that time.
#[tokio::test]
async fn the_embedded_broker_answers_at_a_fixed_port() {
    let port = crate::helpers::free_port();
    let app = crate::helpers::spawn_app_configured(None, |s| s.embedded_kafka_port = Some(port)).await;
    assert_eq!(app.brokers, format!("127.0.0.1:{port}"));
    let taken = std::net::TcpListener::bind(&app.brokers).err();
    assert!(taken.is_some(), "the gateway holds the fixed port");
    let second = crate::helpers::spawn_app_configured(None, |s| s.embedded_kafka_port = Some(port)).await;
    assert_ne!(second.brokers, app.brokers, "a taken port: the broker's own port this time");
    second.stop().await;
    agency_reads_and_answers_with_kcat(&app).await;
    app.stop().await;
    // The forwarder's task is aborted with the cluster; the runtime drops its listener at once
    // or at its next turn.
    crate::support::eventually(std::time::Duration::from_secs(2), "a stopped gateway to free its fixed port for the next start", || async {
        std::net::TcpListener::bind(format!("127.0.0.1:{port}")).ok()
    })
    .await;
}

async fn agency_reads_and_answers_with_kcat(app: &crate::helpers::TestApp) {
    let body = example("spsCertificate/valid/phyto-pears-road-AR-BR.json");
    let receipt: Value = app.submit(&body).await.json().await.unwrap();
    let doc = receipt["documentId"].as_str().unwrap().to_owned();
    let ucr = receipt["ucr"].as_str().unwrap().to_owned();
    let topic = app.topic("agency.br-sanitary");

    let brokers = app.brokers.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kcat")
            .args(["-b", &brokers, "-C", "-t", &topic, "-o", "beginning", "-c", "1", "-q",
                   "-f", "%k\t%h\t%s\n", "-m", "30"])
            .output()
    })
    .await
    .unwrap()
    .expect("kcat runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "kcat: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let mut parts = line.trim_end().splitn(3, '\t');
    let (key, headers, payload) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(key, ucr);
    assert!(headers.contains(&format!("ce_id={doc}")), "{headers}");
    let payload: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(payload, body["payload"]);

    let acks_topic = app.topic("acks.br-sanitary");
    let brokers = app.brokers.clone();
    let ack = json!({"documentId": doc, "agency": "br-sanitary", "status": "hold", "reason": "sampling for fruit fly"}).to_string();
    let k = ucr.clone();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("kcat")
            .args(["-b", &brokers, "-P", "-t", &acks_topic, "-k", &k])
            .stdin(Stdio::piped())
            .spawn()?;
        child.stdin.take().unwrap().write_all(ack.as_bytes())?;
        child.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success());
    let view = app.wait_for_state(&ucr, "on_hold").await;
    let sanitary = view["documents"][0]["deliveries"].as_array().unwrap().iter()
        .find(|d| d["agency"] == "br-sanitary").unwrap().clone();
    assert_eq!(sanitary["status"], "hold");
    assert!(sanitary["history"].as_array().unwrap().iter().any(|h| h["source"] == "kafka" && h["reason"] == "sampling for fruit fly"));
}
