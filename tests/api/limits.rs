//! Bounds: a slow client is cut off with 408, and past `max_concurrent_writes` the answer is
//! 503 with `Retry-After` rather than an unbounded queue.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::helpers::{assert_problem, await_deliveries, example, held_write, settings_for, spawn_app_configured, test_brokers};

/// Opens a submission that announces a body and sends only part of it.
async fn slow_submission(address: &str) -> TcpStream {
    held_write(address, "/v1/documents", "demo-trader", 1000, "{\"documentType\":").await
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_a_saturated_gateway_says_retry_later() {
    let app = spawn_app_configured(Some(test_brokers()), |s| {
        s.region.gateway.max_concurrent_writes = 1;
        s.region.gateway.client_timeout_ms = 1500;
    })
    .await;
    let mut slow = slow_submission(&app.address).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The slow one holds the only write permit.
    let r = app.submit(&example("packingList/valid/wine-road-AR-UY.json")).await;
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("1"));
    assert_problem(r, 503, "overloaded").await;

    // Then it is cut off with 408.
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_string(&mut answer))
        .await
        .expect("the gateway answers the slow client")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");

    // And the permit is free again.
    let r = app.submit(&example("packingList/valid/wine-road-AR-UY.json")).await;
    assert_eq!(r.status(), 202);
}

/// A commercial invoice of between 1,000,000 and 1,048,576 bytes as sent: valid, within the
/// default body limit, above the former record limit (the case found: a 202, then every
/// delivery refused by the broker).
fn invoice_of_about_a_mebibyte(ucr: &str) -> Vec<u8> {
    let mut doc = example("commercialInvoice/valid/beef-road-AR-BR.json");
    doc["ucr"] = serde_json::json!(ucr);
    let template = doc["payload"]["lines"][0].clone();
    let mut lines = Vec::new();
    let mut body = Vec::new();
    for n in 1..=999 {
        let mut line = template.clone();
        line["lineNumber"] = serde_json::json!(n);
        // 512 characters of two bytes each.
        line["description"] = serde_json::json!("é".repeat(512));
        lines.push(line);
        doc["payload"]["lines"] = serde_json::json!(lines);
        body = serde_json::to_vec(&doc).unwrap();
        if body.len() > 1_030_000 {
            break;
        }
    }
    assert!((1_000_000..1_048_576).contains(&body.len()), "{} bytes", body.len());
    body
}

#[tokio::test]
async fn a_document_at_the_body_limit_is_accepted_and_delivered() {
    let brokers = test_brokers();
    let app = spawn_app_configured(Some(brokers.clone()), |_| {}).await;
    let ucr = format!("BIG{}", &uuid::Uuid::now_v7().simple().to_string()[20..].to_uppercase());
    let r = app
        .client
        .post(format!("{}/v1/documents", app.address))
        .bearer_auth("demo-trader")
        .header("Content-Type", "application/json")
        .body(invoice_of_about_a_mebibyte(&ucr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let receipt: serde_json::Value = r.json().await.unwrap();
    let topics: Vec<String> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
    let accepted = vec![(receipt["documentId"].as_str().unwrap().to_owned(), topics)];
    let (delivered, _) = await_deliveries(&brokers, &accepted, Duration::from_secs(60)).await;
    assert_eq!(delivered, accepted[0].1.len(), "every routed agency gets the document");
    app.stop().await;
}

#[tokio::test]
async fn a_topic_that_takes_smaller_records_than_the_gateway_publishes_is_refused_at_start() {
    let brokers = test_brokers();
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("small{}.", uuid::Uuid::now_v7().simple());
    let settings = settings_for(&data, &prefix, Some(brokers.clone()));
    // An operator made the topics beforehand, with the broker's usual 1 MiB.
    let topics = ventanilla::broker::Topics::new(&prefix).all(settings.region.agencies.iter().map(|a| &a.id));
    let layout = ventanilla::kafka::TopicLayout { partitions: 1, replication_factor: None, min_insync_replicas: None, max_message_bytes: 1_048_588 };
    ventanilla::kafka::create_topics(&brokers, &Default::default(), &topics, layout).await.unwrap();
    let refused = match ventanilla::startup::Application::build(settings).await {
        Ok(_) => panic!("the gateway started on topics that cannot take its records"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("max.message.bytes") && refused.contains("kafka.max_message_bytes (1064960)"), "{refused}");
    assert!(refused.contains("1048588"), "names what the topic takes: {refused}");
}

/// Issue 26, item 15: the write pool (`gateway.max_concurrent_writes`) is shared by every
/// participant, so no participant's quota may reach it: one participant could then take every
/// permit and leave the others `503 overloaded`. The shipped demo quota stays below it, and a
/// region file that gives one participant the whole pool does not start, saying who and both
/// numbers.
#[test]
fn a_participant_quota_that_could_take_the_whole_write_pool_stops_the_start() {
    let region = crate::helpers::shipped_region();
    let pool = region.gateway.max_concurrent_writes;
    for p in &region.participants {
        let quota = region.quotas.of(&p.id, p.role, p.demo);
        assert!((quota.concurrent_writes as usize) < pool, "{}: {} of a pool of {pool}", p.id, quota.concurrent_writes);
    }

    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::helpers::repo().join("config/ventanilla.toml")).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("ventanilla.toml"), format!("{text}\n[quotas.participants.demo-trader-2]\nconcurrent_writes = {pool}\n")).unwrap();
    let load = ventanilla::config::Settings::load(config, ventanilla::config::ServeOptions::local("127.0.0.1:0".parse().unwrap(), dir.path().join("data")));
    let refused = load.expect_err("a quota of the whole pool stops the start").to_string();
    assert!(refused.contains("participant demo-trader-2 (role trader, demo)") && refused.contains("[quotas.participants.demo-trader-2]"), "{refused}");
    assert!(refused.contains(&format!("may have {pool} writes in progress at once")) && refused.contains(&format!("gateway.max_concurrent_writes, the pool every participant shares, is {pool}")), "{refused}");
}
