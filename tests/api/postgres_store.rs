//! The gateway on the PostgreSQL store (a real server the test command starts): the same HTTP
//! and Kafka path as on the embedded store, two gateways sharing one database, and the
//! operations tools pointed at it by URL.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{await_deliveries, example, postgres_database, spawn_app_configured, test_brokers};

#[tokio::test]
async fn two_gateways_on_one_postgres_database_accept_deliver_track_and_keep_one_verifiable_audit_log() {
    let url = postgres_database().await;
    let on_postgres = |s: &mut ventanilla::config::Settings| s.region.store.url = Some(url.clone());
    let first = spawn_app_configured(Some(test_brokers()), on_postgres).await;
    let body = example("spsCertificate/valid/phyto-pears-road-AR-BR.json");
    let r = first.post_json("/v1/documents", Some("demo-trader"), &body.to_string()).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let topics: Vec<String> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
    let (deliveries, _) = await_deliveries(&first.brokers, &[(doc.clone(), topics)], Duration::from_secs(60)).await;
    assert_eq!(deliveries, 3, "customs, sanitary and border of the destination");

    // A second gateway on the same database (another process would do the same): it knows
    // the document, answers a resend with the first receipt, and applies an answer to it.
    let second = spawn_app_configured(Some(test_brokers()), |s| {
        s.region.store.url = Some(url.clone());
        s.region.kafka.topic_prefix = first.topic_prefix.clone();
    })
    .await;
    let again = second.post_json("/v1/documents", Some("demo-trader"), &body.to_string()).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("true"));
    assert_eq!(again.json::<Value>().await.unwrap()["documentId"], doc.as_str());
    let ack = json!({"documentId": doc, "agency": "br-sanitary", "status": "hold", "reason": "sampling"});
    assert_eq!(second.post_json("/v1/acknowledgments", Some("demo-br-sanitary"), &ack.to_string()).await.status(), 200);
    let view = first.wait_for_state(&ucr, "on_hold").await;
    assert_eq!(view["documents"].as_array().unwrap().len(), 1);

    // The operations tool verifies the audit log in the database.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || crate::support::cli().args(["audit", "verify", "--store", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("audit log intact: "), "{stdout}");
    first.stop().await;
    second.stop().await;
}
