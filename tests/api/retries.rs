//! A delivery whose record the broker refuses: retried with backoff, then a notice on the
//! dead-letter topic and `failed` in the consignment view; other consignments go on meanwhile.
//! After the operator fixes the cause, the operator endpoint and the CLI send it again.
//! The refusal is real: librdkafka's `message.max.bytes`, set below the declaration's size.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, await_deliveries, consumer, example, settings_for, spawn_app_on, test_brokers, TestApp};

/// Polls the consignment until every delivery has `status`.
async fn wait_deliveries(app: &TestApp, ucr: &str, status: &str) -> Value {
    crate::support::eventually(Duration::from_secs(30), &format!("every delivery of {ucr} to be {status}"), || async {
        let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        let all = view["documents"].as_array().into_iter().flatten().flat_map(|d| d["deliveries"].as_array().unwrap());
        (all.clone().count() > 0 && all.into_iter().all(|d| d["status"] == status)).then_some(view.clone())
    })
    .await
}

async fn retry(app: &TestApp, id: i64, token: &str) -> reqwest::Response {
    app.client.post(format!("{}/v1/deliveries/{id}/retry", app.address)).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_refused_delivery_is_dead_lettered_shown_failed_and_sent_again_by_an_operator() {
    let brokers = test_brokers();
    // The topics take records of the usual size (an operator made them); the gateway's producer
    // is set to refuse anything above 2,500 bytes, so large documents fail and small ones pass.
    let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let region = settings_for(&data, &prefix, None).region;
    let topics = ventanilla::broker::Topics::new(&prefix).all(region.agencies.iter().map(|a| &a.id));
    let layout = ventanilla::kafka::TopicLayout {
        partitions: region.kafka.partitions,
        replication_factor: None,
        min_insync_replicas: None,
        max_message_bytes: region.kafka.max_message_bytes,
    };
    ventanilla::kafka::create_topics(&brokers, &Default::default(), &topics, layout).await.unwrap();
    let app = spawn_app_on(data, prefix, Some(brokers.clone()), |s| {
        s.region.kafka.max_message_bytes = 2500;
        s.region.kafka.max_delivery_attempts = 3;
        s.region.kafka.retry_initial_backoff_ms = 100;
        s.region.kafka.retry_max_backoff_ms = 400;
    })
    .await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let mut big = Vec::new();
    for n in ["A", "B"] {
        let mut body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        body["ucr"] = json!(format!("BIG-{n}-{}", &run[24..]));
        let r = app.submit(&body).await;
        assert_eq!(r.status(), 202);
        big.push(r.json::<Value>().await.unwrap());
    }
    let mut small_body = example("packingList/valid/milk-powder-road-UY-BR.json");
    small_body["ucr"] = json!(format!("SMALL-{}", &run[24..]));
    let small: Value = app.submit(&small_body).await.json().await.unwrap();

    // The small document goes through while the large ones are retried.
    let small_view = wait_deliveries(&app, small["ucr"].as_str().unwrap(), "dispatched").await;
    let small_delivery = small_view["documents"][0]["deliveries"][0]["deliveryId"].as_i64().unwrap();

    let mut failed_ids = Vec::new();
    for receipt in &big {
        let ucr = receipt["ucr"].as_str().unwrap();
        let view = wait_deliveries(&app, ucr, "failed").await;
        assert_eq!(view["state"], "delivery_failed", "{view:#}");
        for d in view["documents"][0]["deliveries"].as_array().unwrap() {
            assert_eq!(d["attempts"], 3, "{d:#}");
            assert!(d["lastError"].as_str().unwrap().contains("MessageSizeTooLarge"), "{d:#}");
            let steps: Vec<&str> = d["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
            assert_eq!(steps, ["pending", "refused", "refused", "failed"], "{d:#}");
            failed_ids.push(d["deliveryId"].as_i64().unwrap());
        }
    }

    // One notice per failed delivery on the dead-letter topic, with the document id and reason.
    let c = consumer(&brokers, &[&app.topic("deadletter")]);
    let mut noticed = HashSet::new();
    while noticed.len() < failed_ids.len() {
        let m = tokio::time::timeout(Duration::from_secs(30), c.recv()).await.expect("dead-letter notices").unwrap();
        let header = |k: &str| m.headers().and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value)).map(|v| String::from_utf8_lossy(v).into_owned());
        let notice: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(header("ce_id").as_deref(), notice["documentId"].as_str());
        assert_eq!(header("ce_type").as_deref(), Some("org.ventanilla.delivery.failed"));
        assert!(header("ventanilla_reason").unwrap().contains("MessageSizeTooLarge"));
        assert_eq!(notice["attempts"], 3);
        noticed.insert(notice["deliveryId"].as_i64().unwrap());
    }
    assert_eq!(noticed, failed_ids.iter().copied().collect::<HashSet<_>>());

    // The operator sees them; nobody else may.
    let list: Value = app.get("/v1/deliveries/failed", Some("demo-operator")).await.json().await.unwrap();
    let listed: HashSet<i64> = list["deliveries"].as_array().unwrap().iter().map(|d| d["deliveryId"].as_i64().unwrap()).collect();
    assert_eq!(listed, noticed);
    assert_problem(app.get("/v1/deliveries/failed", Some("demo-trader")).await, 403, "forbidden").await;
    assert_problem(retry(&app, failed_ids[0], "demo-trader").await, 403, "forbidden").await;
    assert_problem(retry(&app, failed_ids[0], "demo-br-customs").await, 403, "forbidden").await;
    assert_problem(retry(&app, small_delivery, "demo-operator").await, 409, "delivery-not-failed").await;
    assert_problem(retry(&app, 999_999_999, "demo-operator").await, 404, "not-found").await;

    // The operator raises the limit and restarts the gateway on the same store...
    let (data, prefix) = (app.data.clone(), app.topic_prefix.clone());
    app.stop().await;
    let app = spawn_app_on(data.clone(), prefix, Some(brokers.clone()), |_| {}).await;
    // ...sends the first consignment's deliveries again over HTTP...
    let first: Vec<i64> = failed_ids.iter().copied().filter(|id| listed.contains(id)).take(1).collect();
    let r = retry(&app, first[0], "demo-operator").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["retried"], json!(first));
    // ...and every other failed one with the CLI, on the store the gateway is running on.
    let out = crate::support::cli()
        .args(["deliveries", "retry", "--all-failed", "--operator", "ops-test", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("sent again: {}", failed_ids.len() - 1)), "{stdout}");

    // Every delivery reaches its agency, and the consignments leave delivery_failed.
    let accepted: Vec<(String, Vec<String>)> = big
        .iter()
        .map(|r| {
            let topics = r["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
            (r["documentId"].as_str().unwrap().to_owned(), topics)
        })
        .collect();
    await_deliveries(&brokers, &accepted, Duration::from_secs(60)).await;
    for receipt in &big {
        let view = wait_deliveries(&app, receipt["ucr"].as_str().unwrap(), "dispatched").await;
        assert_eq!(view["state"], "submitted");
        let history = view["documents"][0]["deliveries"][0]["history"].as_array().unwrap();
        let retried_by = history.iter().find(|h| h["source"] == "operator").unwrap();
        assert!(retried_by["reason"].as_str().unwrap().starts_with("sent again by"), "{retried_by:#}");
    }
    assert_eq!(app.get("/v1/deliveries/failed", Some("demo-operator")).await.json::<Value>().await.unwrap()["deliveries"], json!([]));
}
