//! The agency simulator, as a separate process against the real broker: it reads br-customs'
//! topic and answers on br-customs' ack topic, and the gateway applies its answers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app, TestApp};

async fn br_customs_status(app: &TestApp, ucr: &str) -> Vec<String> {
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    view["documents"].as_array().unwrap().iter()
        .flat_map(|d| d["deliveries"].as_array().unwrap().iter())
        .filter(|d| d["agency"] == "br-customs")
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_simulated_agency_answers_every_document_routed_to_it() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let ucrs: Vec<String> = (0..2).map(|i| format!("SIM-{i}-{}", &run[24..])).collect();
    for ucr in &ucrs {
        let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        d["ucr"] = json!(ucr);
        assert_eq!(app.submit(&d).await.status(), 202);
    }
    // A third consignment: a declaration withdrawn, then an invoice. Its partition holds the
    // declaration, the withdrawal notice, then the invoice: the simulator reads the notice before
    // it can answer the invoice, and must not answer the notice.
    let withdrawn_ucr = format!("SIM-W-{}", &run[24..]);
    let mut withdrawn = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    withdrawn["ucr"] = json!(withdrawn_ucr);
    let receipt: Value = app.submit(&withdrawn).await.json().await.unwrap();
    let path = format!("/v1/documents/{}/withdrawal", receipt["documentId"].as_str().unwrap());
    assert_eq!(app.post_json(&path, Some("demo-trader"), &json!({"reason": "cancelled"}).to_string()).await.status(), 202);
    let mut invoice = example("commercialInvoice/valid/beef-road-AR-BR.json");
    invoice["ucr"] = json!(withdrawn_ucr);
    assert_eq!(app.submit(&invoice).await.status(), 202);
    let out = tokio::task::spawn_blocking({
        let (brokers, prefix) = (app.brokers.clone(), app.topic_prefix.clone());
        move || {
            crate::support::cli()
                .args(["agency", "--agency", "br-customs", "--kafka-brokers", &brokers, "--topic-prefix", &prefix])
                .args(["--decisions", "released", "--received-first", "--max-delay", "200ms", "--count", "4"])
                .env("RUST_LOG", "warn")
                .output()
                .unwrap()
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(90), out).await.expect("the simulator finishes").unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered 4 document(s)"), "{}", String::from_utf8_lossy(&out.stdout));
    for ucr in &ucrs {
        crate::support::eventually(Duration::from_secs(10), &format!("{ucr} released by br-customs"), || async {
            (br_customs_status(&app, ucr).await == ["released"]).then_some(())
        })
        .await;
        let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        let history: Vec<&str> = view["documents"][0]["deliveries"].as_array().unwrap().iter()
            .find(|d| d["agency"] == "br-customs").unwrap()["history"].as_array().unwrap().iter()
            .filter(|h| h["source"] == "kafka").map(|h| h["status"].as_str().unwrap()).collect();
        assert_eq!(history, ["received", "released"], "received first, then the decision");
    }
    // Answers to the withdrawn declaration were late, and nothing the simulator sent was refused.
    let store: std::sync::Arc<dyn ventanilla::store::Store> =
        std::sync::Arc::new(ventanilla::store::sqlite::SqliteStore::open_existing(app.data.path()).unwrap());
    let actions: Vec<String> = store.read_with(|l| l.audit_records()).await.unwrap().into_iter().map(|r| r.action).collect();
    assert!(!actions.iter().any(|a| a == "acknowledgment.refused"), "{actions:?}");
}
