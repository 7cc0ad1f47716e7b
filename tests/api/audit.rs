//! The audit log: submissions (with their routing), publications, acknowledgments and refusals
//! are recorded with the participant; receipts carry their record's hash; and
//! `ventanilla audit verify` catches a record edited, deleted or swapped in the store itself.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app, TestApp};

/// `ventanilla audit verify` on a data directory: (success, stdout + stderr).
fn verify(data_dir: &Path) -> (bool, String) {
    verify_expecting(data_dir, &[])
}

/// The same, with hashes that must be in the chain.
fn verify_expecting(data_dir: &Path, expect: &[&str]) -> (bool, String) {
    let mut cmd = crate::support::cli();
    cmd.args(["audit", "verify", "--data-dir"]).arg(data_dir);
    for h in expect {
        cmd.args(["--expect", h]);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A copy of the app's store (consistent, WAL included) in a fresh directory, changed by `sql`.
fn tampered_copy(app: &TestApp, name: &str, sql: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    db.execute("VACUUM INTO ?1", [dir.path().join("ventanilla.db").to_str().unwrap()]).unwrap();
    let copy = rusqlite::Connection::open(dir.path().join("ventanilla.db")).unwrap();
    copy.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    dir
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_and_verify_catches_tampering() {
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("packingList/valid/beef-road-AR-BR.json")).await.json().await.unwrap();
    let audit_hash = receipt["auditHash"].as_str().expect("the receipt carries its audit hash").to_owned();
    assert_eq!(audit_hash.len(), 64);
    let ucr = receipt["ucr"].as_str().unwrap();
    app.wait_for_state(ucr, "submitted").await;
    // Refusals: invalid, unauthenticated, forbidden, not found.
    assert_eq!(app.submit(&json!({"documentType": "packingList"})).await.status(), 422);
    assert_eq!(app.post_json("/v1/documents", Some("not-a-token"), "{}").await.status(), 401);
    assert_eq!(app.get("/v1/deliveries/failed", Some("demo-trader")).await.status(), 403);
    assert_eq!(app.get("/v1/consignments/NO-SUCH-UCR", Some("demo-trader")).await.status(), 404);
    // An acknowledgment.
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let ack = json!({"documentId": receipt["documentId"], "agency": agency, "status": "received"});
    assert_eq!(app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await.status(), 200);

    // On the ack topics: a broken answer, and an answer in another agency's name (written on
    // uy-customs' topic, naming the routed agency), are both refused and recorded.
    let producer: rdkafka::producer::FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let own_topic = app.topic(&format!("acks.{agency}"));
    let forged = json!({"documentId": receipt["documentId"], "agency": agency, "status": "released"}).to_string();
    for (topic, payload) in [(own_topic.as_str(), "{not json"), (&app.topic("acks.uy-customs"), forged.as_str())] {
        producer
            .send(rdkafka::producer::FutureRecord::<str, str>::to(topic).payload(payload), Duration::from_secs(10))
            .await
            .unwrap();
    }

    // Wait until the relay has published every delivery and the ack consumer has refused the
    // broken answer, then read the log.
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    crate::support::eventually(Duration::from_secs(20), "the two refused answers in the audit log", || async {
        let n: i64 = db.query_row("SELECT COUNT(*) FROM audit_log WHERE action = 'acknowledgment.refused'", [], |r| r.get(0)).unwrap();
        (n == 2).then_some(())
    })
    .await;
    let deliveries = receipt["deliveries"].as_array().unwrap().len() as i64;
    // Confirmations received together share a record, which names each delivery.
    let published_in = |db: &rusqlite::Connection| -> i64 {
        let subjects: Vec<String> = db
            .prepare("SELECT subject FROM audit_log WHERE action = 'delivery.published'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        subjects.iter().map(|s| s.split_once(':').map_or(0, |(_, ids)| ids.split(',').count() as i64)).sum()
    };
    crate::support::eventually(Duration::from_secs(10), "every delivery's publication recorded", || async {
        (published_in(&db) == deliveries).then_some(())
    })
    .await;
    let rows: Vec<(String, String, String, String)> = db
        .prepare("SELECT participant, action, subject, detail FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let find = |action: &str, participant: &str, code: Option<&str>| {
        rows.iter().any(|(p, a, _, d)| {
            a == action && p == participant && code.is_none_or(|c| serde_json::from_str::<Value>(d).unwrap()["code"] == c)
        })
    };
    let accepted = rows.iter().find(|(_, a, _, _)| a == "submission.accepted").expect("the submission is audited");
    assert_eq!((accepted.0.as_str(), accepted.2.as_str()), ("demo-trader", receipt["documentId"].as_str().unwrap()));
    let routing: Value = serde_json::from_str(&accepted.3).unwrap();
    assert_eq!(routing["routing"].as_array().unwrap().len(), deliveries as usize, "the routing decision is in the record");
    let hash_of_accepted: String = db
        .query_row("SELECT hash FROM audit_log WHERE action = 'submission.accepted'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hash_of_accepted, audit_hash, "the receipt's hash is its audit record's");
    assert!(find("request.refused", "demo-trader", Some("invalid-document")), "{rows:#?}");
    // Anonymous refusals are counted per source and minute, not recorded one by one
    // (tests/api/fairness.rs checks their summary record).
    assert!(!find("request.refused", "anonymous", Some("unauthenticated")), "{rows:#?}");
    assert!(find("request.refused", "demo-trader", Some("forbidden")), "{rows:#?}");
    assert!(find("request.refused", "demo-trader", Some("not-found")), "{rows:#?}");
    assert!(find("acknowledgment.recorded", &format!("demo-{agency}"), None), "{rows:#?}");
    assert!(find("delivery.published", "gateway", None), "{rows:#?}");
    assert!(find("acknowledgment.refused", &format!("kafka:{agency}"), None), "{rows:#?}");
    let forged_refusal = rows.iter().find(|(p, a, _, _)| a == "acknowledgment.refused" && p == "kafka:uy-customs").expect("the forged answer is refused");
    assert!(forged_refusal.3.contains("may not answer for agency"), "{forged_refusal:?}");
    let released: i64 = db.query_row("SELECT COUNT(*) FROM delivery_events WHERE status = 'released'", [], |r| r.get(0)).unwrap();
    assert_eq!(released, 0, "the forged answer changed nothing");
    assert!(!rows.iter().any(|(_, _, s, d)| s.contains("Bearer") || d.contains("Bearer")), "no credentials in the log");
    assert!(!rows.iter().any(|(_, _, s, d)| s.contains("not-a-token") || d.contains("not-a-token")), "the refused token is not logged");

    let count = rows.len();
    // One submission, three refusals of a participant, one acknowledgment, two refused answers
    // from Kafka, and the publications (one record per batch of confirmations, counted above).
    let publications = rows.iter().filter(|(_, a, _, _)| a == "delivery.published").count();
    assert!((1..=deliveries as usize).contains(&publications), "{rows:#?}");
    assert_eq!(count, 7 + publications, "{rows:#?}");
    let (ok, out) = verify_expecting(app.data.path(), &[&audit_hash]);
    assert!(ok && out.contains(&format!("{count} records")), "{out}");
    let head = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(head.len(), 64, "{out}");

    // Cut short at its end: still a valid chain, but the head kept from before is missing.
    let cut = tampered_copy(&app, "cut", "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)");
    assert!(verify(cut.path()).0, "a shorter chain is still a chain");
    let (ok, out) = verify_expecting(cut.path(), &[&head]);
    assert!(!ok && out.contains("lacks"), "{out}");

    // Edited, deleted, swapped: each is caught and the first bad record named.
    let edited = tampered_copy(&app, "edit", "UPDATE audit_log SET participant = 'someone-else' WHERE seq = 3");
    let (ok, out) = verify(edited.path());
    assert!(!ok && out.contains("audit record 3 was changed"), "{out}");

    let deleted = tampered_copy(&app, "delete", "DELETE FROM audit_log WHERE seq = 4");
    let (ok, out) = verify(deleted.path());
    assert!(!ok && out.contains("audit record 4 was removed"), "{out}");

    let swapped = tampered_copy(
        &app,
        "swap",
        "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 5; UPDATE audit_log SET seq = 5 WHERE seq = -2;",
    );
    let (ok, out) = verify(swapped.path());
    assert!(!ok && out.contains("audit record 2 is out of order") && out.contains("position 5"), "{out}");

    let first_edited = tampered_copy(&app, "rewrite", "UPDATE audit_log SET detail = '{}' WHERE seq = 1");
    let (ok, out) = verify(first_edited.path());
    assert!(!ok && out.contains("audit record 1 was changed"), "{out}");
}

/// Issue 26, 14: replays are audited as refusals are, in a bounded form: a participant's first
/// ones one by one, the rest counted in one summary record per minute, and the chain verifies.
#[tokio::test]
async fn replays_add_a_bounded_number_of_records_to_the_audit_log() {
    let app = crate::helpers::spawn_app_with(None).await;
    let body = example("packingList/valid/beef-road-AR-BR.json");
    assert_eq!(app.submit(&body).await.status(), 202);
    for _ in 0..120 {
        let r = app.submit(&body).await;
        assert_eq!(r.headers().get("idempotent-replayed").unwrap(), "true");
    }
    let count = |action: &str| -> i64 {
        let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
        db.query_row("SELECT COUNT(*) FROM audit_log WHERE action = ?1", [action], |r| r.get(0)).unwrap()
    };
    let recorded = count("submission.replayed");
    assert_eq!(recorded, i64::from(ventanilla::replays::PER_PARTICIPANT), "the first ones, one by one");
    // At the stop, the minute's count is written: one record for the rest.
    let data = app.data.clone();
    app.stop().await;
    let db = rusqlite::Connection::open(data.path().join("ventanilla.db")).unwrap();
    let (participant, detail): (String, String) = db
        .query_row("SELECT participant, detail FROM audit_log WHERE action = 'replay.summary'", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("one summary record of the replays");
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!((participant.as_str(), detail["replayed"].as_i64()), ("demo-trader", Some(120 - recorded)), "{detail:#}");
    let (ok, out) = verify(data.path());
    assert!(ok, "{out}");
}
