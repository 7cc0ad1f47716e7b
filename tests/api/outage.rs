//! The broker goes away: readiness and receipts say so, submissions are still accepted (they
//! are in the store) up to the configured backlog, and when the broker is back the relay
//! delivers them all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, await_deliveries, consumer, example, spawn_app_configured, spawn_app_with, submission_stream, OwnCluster,
};

/// Polls `/readyz` until it answers `status`; returns its body.
async fn wait_ready(app: &crate::helpers::TestApp, status: u16) -> Value {
    crate::support::eventually(Duration::from_secs(10), &format!("/readyz to answer {status}"), || async {
        let r = app.get("/readyz", None).await;
        match r.status() == status {
            true => Some(r.json::<Value>().await.unwrap()),
            false => None,
        }
    })
    .await
}

#[tokio::test]
async fn readiness_follows_the_broker_and_accepted_documents_wait_for_it() {
    let broker = OwnCluster::start().await;
    let app = spawn_app_with(Some(broker.address.clone())).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    broker.kill_all().await;
    let body = wait_ready(&app, 503).await;
    assert_eq!(body["status"], "not_ready", "readyz reports the dead broker");
    assert_eq!(body["broker"], "unavailable");
    assert_eq!(body["store"], "ok");

    // Accepted while the broker is down: the store holds it, and the receipt says why its
    // deliveries wait.
    let r = app.submit(&example("packingList/valid/beef-road-AR-BR.json")).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    for d in receipt["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "pending");
        assert_eq!(d["statusDetail"], "broker-unavailable", "{receipt:#}");
    }
    let doc = receipt["documentId"].as_str().unwrap().to_owned();
    let topic = receipt["deliveries"][0]["topic"].as_str().unwrap().to_owned();

    broker.resume_all().await;
    let c = consumer(&broker.address, &[&topic]);
    let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
        .await
        .expect("the document is delivered once the broker is back")
        .unwrap();
    use rdkafka::message::{Headers, Message};
    let ce_id = m.headers().unwrap().iter().find(|h| h.key == "ce_id").and_then(|h| h.value).unwrap();
    assert_eq!(ce_id, doc.as_bytes());
    // readyz recovers with the broker.
    wait_ready(&app, 200).await;
}

#[tokio::test]
async fn a_broker_outage_during_a_stream_of_submissions_loses_nothing() {
    let broker = OwnCluster::start().await;
    let app = spawn_app_with(Some(broker.address.clone())).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, senders) = submission_stream(&app.address, "OUTAGE", 2, false, stop.clone());
    crate::helpers::until_accepted(&log, 1).await;
    let before = log.lock().unwrap().accepted.len();
    broker.kill_all().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = log.lock().unwrap().accepted.len() - before;
    broker.resume_all().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert!(before > 0, "documents were accepted before the outage");
    assert!(during > 0, "documents kept getting 202 while the broker was down");
    assert!(log.refused.is_empty() && log.broken.is_empty() && log.unconnected == 0, "every submission got 202: {:?}", log.refused.first());

    let (deliveries, duplicates) = await_deliveries(&broker.address, &log.accepted, Duration::from_secs(120)).await;
    println!(
        "outage: {} documents accepted ({during} while the broker was down for 5 s), {deliveries} deliveries, \
         all delivered, 0 lost; {duplicates} duplicate records (same ce_id)",
        log.accepted.len()
    );
}

#[tokio::test]
async fn a_full_backlog_refuses_submissions_with_retry_after_until_the_broker_drains_it() {
    let broker = OwnCluster::start().await;
    let app = spawn_app_configured(Some(broker.address.clone()), |s| s.region.gateway.max_outbox_backlog = 4).await;
    broker.kill_all().await;
    wait_ready(&app, 503).await;

    let template = example("packingList/valid/beef-road-AR-BR.json");
    let documents = |app: &crate::helpers::TestApp| {
        let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    let mut accepted = 0;
    let (refusal, stored) = loop {
        let mut body = template.clone();
        body["ucr"] = json!(format!("BACKLOG-{accepted:03}"));
        let stored = documents(&app);
        let r = app.submit(&body).await;
        if r.status() != 202 {
            break (r, stored);
        }
        let receipt: Value = r.json().await.unwrap();
        assert_eq!(receipt["deliveries"][0]["statusDetail"], "broker-unavailable");
        accepted += 1;
        assert!(accepted <= 4, "the backlog bound of 4 deliveries holds");
    };
    assert!(accepted >= 1);
    assert_eq!(refusal.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("5"));
    let problem = assert_problem(refusal, 503, "backlog-full").await;
    assert_eq!(problem["limit"], 4);
    assert!(problem["backlog"].as_u64().unwrap() >= 4, "{problem:#}");
    assert_eq!(documents(&app), stored, "a refused submission stores nothing");
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let audited: i64 = db
        .query_row("SELECT COUNT(*) FROM audit_log WHERE action = 'request.refused' AND detail LIKE '%backlog-full%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audited, 1, "the refusal is in the audit log");
    // A document already accepted still gets its first receipt: the bound stops new work only.
    let mut first = template.clone();
    first["ucr"] = json!("BACKLOG-000");
    let again = app.submit(&first).await;
    assert_eq!(again.status(), 202, "a resend is answered from the store");
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("true"));

    // The broker is back: the backlog drains and submissions are accepted again.
    broker.resume_all().await;
    let mut body = template.clone();
    body["ucr"] = json!("BACKLOG-AFTER");
    crate::support::eventually(Duration::from_secs(60), "a document accepted again once the backlog drained", || async {
        (app.submit(&body).await.status() == 202).then_some(())
    })
    .await;
    assert_eq!(wait_ready(&app, 200).await["outboxBacklog"].as_u64().map(|n| n <= 4), Some(true));
}
