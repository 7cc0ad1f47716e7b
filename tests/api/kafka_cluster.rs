//! A three-broker Apache Kafka cluster (combined broker and controller nodes, topics with three
//! copies and `min.insync.replicas` 2) that loses a broker, and then all of them, during a
//! stream of submissions: every document answered 202 reaches every agency topic its receipt
//! named, `/readyz` says what the gateway sees meanwhile, and no delivery is dead-lettered for
//! the outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use serde_json::Value;

use crate::helpers::{await_deliveries, consumer, spawn_app_configured, submission_stream, OwnCluster, StreamLog, TestApp};

/// A gateway on the cluster, with its topics replicated three times and acknowledged by two.
async fn gateway_on(cluster: &OwnCluster) -> TestApp {
    spawn_app_configured(Some(cluster.address.clone()), |s| {
        s.region.kafka.replication_factor = Some(3);
        s.region.kafka.min_insync_replicas = Some(2);
    })
    .await
}

/// Polls `/readyz` until `accept` holds of (status, body); returns the body.
async fn readyz_until(app: &TestApp, what: &str, accept: impl Fn(u16, &Value) -> bool) -> Value {
    crate::support::eventually(Duration::from_secs(60), &format!("/readyz to show {what}"), || async {
        let r = app.get("/readyz", None).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        accept(status, &body).then_some(body)
    })
    .await
}

/// Waits for the senders, then checks that every submission was answered 202.
async fn finish(stop: Arc<AtomicBool>, senders: Vec<tokio::task::JoinHandle<()>>, log: Arc<std::sync::Mutex<StreamLog>>) -> StreamLog {
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(
        log.refused.is_empty() && log.broken.is_empty() && log.unconnected == 0,
        "every submission got 202: {} refused (first {:?}), {} broken, {} unconnected",
        log.refused.len(),
        log.refused.first(),
        log.broken.len(),
        log.unconnected
    );
    log
}

/// No delivery failed (the operator's list is empty), so none was dead-lettered.
async fn assert_none_failed(app: &TestApp) {
    let failed: Value = app.get("/v1/deliveries/failed", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(failed["deliveries"], serde_json::json!([]), "no delivery failed for the outage");
}

#[tokio::test]
async fn a_broker_killed_during_a_stream_of_submissions_loses_nothing_and_readiness_shows_it() {
    let cluster = OwnCluster::start_with(3, &[]).await;
    let app = gateway_on(&cluster).await;

    // The gateway's topics have three copies on the three brokers.
    let c = consumer(&cluster.address, &[&app.topic("status")]);
    let metadata = c.fetch_metadata(Some(&app.topic("agency.br-customs")), Duration::from_secs(10)).unwrap();
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 3);
    assert!(partitions.iter().all(|p| p.replicas().len() == 3), "three copies of each partition");
    let ready = readyz_until(&app, "three brokers", |s, b| s == 200 && b["kafka"]["brokers"] == 3).await;
    assert_eq!(ready["broker"], "ok", "{ready:#}");

    let stop = Arc::new(AtomicBool::new(false));
    let (log, senders) = submission_stream(&app.address, "FAILOVER", 4, false, stop.clone());
    crate::helpers::until_accepted(&log, 1).await;
    let before = log.lock().unwrap().accepted.len();
    cluster.kill(2).await;

    // The gateway stays ready (two copies still confirm every record) and says the cluster
    // lost a broker and copies.
    let degraded = readyz_until(&app, "a degraded cluster", |s, b| {
        s == 200 && b["broker"] == "degraded" && b["kafka"]["brokers"] == 2
    })
    .await;
    assert!(degraded["kafka"]["underReplicatedPartitions"].as_u64().unwrap() > 0, "{degraded:#}");
    assert_eq!(degraded["kafka"]["partitionsWithoutLeader"], 0, "leaders moved to the living brokers: {degraded:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = log.lock().unwrap().accepted.len() - before;

    cluster.resume(&[2]).await;
    let healed = readyz_until(&app, "the cluster whole again", |s, b| s == 200 && b["broker"] == "ok" && b["kafka"]["brokers"] == 3).await;
    assert_eq!(healed["kafka"]["underReplicatedPartitions"], 0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = finish(stop, senders, log).await;
    assert!(before > 0 && during > 0, "documents were accepted before ({before}) and while ({during}) a broker was down");

    let (deliveries, duplicates) = await_deliveries(&cluster.address, &log.accepted, Duration::from_secs(120)).await;
    assert_none_failed(&app).await;
    println!(
        "one broker of three killed: {} documents accepted ({during} while it was down), {deliveries} deliveries, \
         all delivered, 0 lost, 0 dead-lettered; {duplicates} duplicate records (same ce_id)",
        log.accepted.len()
    );
}

#[tokio::test]
async fn the_whole_cluster_down_for_ten_seconds_loses_nothing() {
    let cluster = OwnCluster::start_with(3, &[]).await;
    let app = gateway_on(&cluster).await;
    readyz_until(&app, "three brokers", |s, b| s == 200 && b["kafka"]["brokers"] == 3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (log, senders) = submission_stream(&app.address, "BLACKOUT", 4, false, stop.clone());
    crate::helpers::until_accepted(&log, 1).await;
    let before = log.lock().unwrap().accepted.len();
    cluster.kill_all().await;
    let down = readyz_until(&app, "the broker unavailable", |s, b| s == 503 && b["broker"] == "unavailable").await;
    assert_eq!(down["store"], "ok");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = log.lock().unwrap().accepted.len() - before;

    cluster.resume_all().await;
    readyz_until(&app, "the cluster back", |s, b| s == 200 && b["kafka"]["brokers"] == 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = finish(stop, senders, log).await;
    assert!(before > 0 && during > 0, "documents were accepted before ({before}) and while ({during}) the cluster was down");

    let (deliveries, duplicates) = await_deliveries(&cluster.address, &log.accepted, Duration::from_secs(180)).await;
    assert_none_failed(&app).await;
    println!(
        "three brokers down for 10 s: {} documents accepted ({during} while they were down), {deliveries} deliveries, \
         all delivered, 0 lost, 0 dead-lettered; {duplicates} duplicate records (same ce_id)",
        log.accepted.len()
    );
}
