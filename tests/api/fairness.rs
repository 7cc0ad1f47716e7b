//! A noisy neighbour: one participant runs each attack that was found to stall, starve or swell
//! the gateway (issue 14) while another submits, acknowledges and reads; the honest
//! participant's requests keep succeeding (outcomes asserted, not timings), the attacker meets
//! its own quota (`429`), and refusals do not swell the audit log. The demo participants get
//! their roles' built-in quotas here (`quotas.demo` unset), as real participants would.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{assert_problem, example, held_write, spawn_app_configured, test_brokers, TestApp};

/// The honest participant's round: a document submitted, answered by one agency it was routed
/// to, and its consignment read; each answer as expected, within the client's 20 s.
async fn honest_round(app: &TestApp, n: usize) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut doc = example("commercialInvoice/valid/beef-road-AR-BR.json");
    let ucr = format!("FAIR{}{n}", &uuid::Uuid::now_v7().simple().to_string()[20..].to_uppercase());
    doc["ucr"] = json!(ucr);
    let r = client.post(format!("{}/v1/documents", app.address)).bearer_auth("demo-trader").json(&doc).send().await.expect("submission answered");
    assert_eq!(r.status(), 202, "the honest submission: {}", r.text().await.unwrap_or_default());
    let receipt: Value = r.json().await.unwrap();
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let ack = json!({"documentId": receipt["documentId"], "agency": agency, "status": "accepted"});
    let r = client
        .post(format!("{}/v1/acknowledgments", app.address))
        .bearer_auth(format!("demo-{agency}"))
        .json(&ack)
        .send()
        .await
        .expect("acknowledgment answered");
    assert_eq!(r.status(), 200, "the honest acknowledgment: {}", r.text().await.unwrap_or_default());
    let r = client.get(format!("{}/v1/consignments/{ucr}", app.address)).bearer_auth("demo-trader").send().await.expect("view answered");
    assert_eq!(r.status(), 200, "the honest view");
}

/// Rounds of the honest participant while `attack` runs.
async fn honest_during<F: std::future::Future>(app: &TestApp, rounds: usize, attack: F) -> F::Output {
    let honest = async {
        for n in 0..rounds {
            honest_round(app, n).await;
        }
    };
    let (_, out) = tokio::join!(honest, attack);
    out
}

async fn gateway() -> TestApp {
    spawn_app_configured(Some(test_brokers()), |s| s.region.quotas.demo = None).await
}

/// How many records the audit log holds, from `ventanilla audit verify` on the running store.
fn audit_records(app: &TestApp) -> u64 {
    let out = crate::support::cli()
        .args(["audit", "verify", "--data-dir"])
        .arg(app.data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    text.split_whitespace().find_map(|w| w.parse().ok()).expect("a count of records")
}

#[tokio::test]
async fn fifty_event_polls_of_a_participant_without_consignments_take_only_its_own_quota() {
    let app = gateway().await;
    honest_round(&app, 0).await;
    let polls = honest_during(&app, 5, async {
        let client = reqwest::Client::new();
        let polls = (0..50).map(|_| {
            let (client, url) = (client.clone(), format!("{}/v1/consignments/events?after=0&wait=5s", app.address));
            tokio::spawn(async move { client.get(url).bearer_auth("demo-nsw-br").send().await.map(|r| r.status().as_u16()) })
        });
        let mut statuses = Vec::new();
        for p in polls.collect::<Vec<_>>() {
            statuses.push(p.await.unwrap().expect("every poll is answered"));
        }
        statuses
    })
    .await;
    let served = polls.iter().filter(|s| **s == 200).count();
    assert_eq!(served + polls.iter().filter(|s| **s == 429).count(), 50, "200 or 429 only: {polls:?}");
    assert!((1..=8).contains(&served), "at most the NSW role's 8 open streams at once: {polls:?}");
    // Nothing of its own: the cursor it is given moves past the others' events, so its next
    // poll starts there instead of looking at them again.
    let page: Value = app.get("/v1/consignments/events?after=0&wait=1s", Some("demo-nsw-br")).await.json().await.unwrap();
    assert_eq!(page["events"], json!([]));
    let mine: Value = app.get("/v1/consignments/events?after=0&wait=1s", Some("demo-trader")).await.json().await.unwrap();
    let last_of_mine = mine["cursor"].as_i64().unwrap();
    assert!(page["cursor"].as_i64().unwrap() >= last_of_mine && last_of_mine > 0, "{page} {mine}");
}

#[tokio::test]
async fn an_agency_holding_writes_open_takes_neither_the_pool_nor_a_traders_place() {
    let app = gateway().await;
    // Submissions with an agency's token: refused before anything is held or read. Then its
    // own write endpoint, with bodies that never come: its quota of writes, not the pool.
    let mut held = Vec::new();
    for path in ["/v1/documents", "/v1/acknowledgments"] {
        for _ in 0..100 {
            held.push(held_write(&app.address, path, "demo-br-border", 100_000, "{").await);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    honest_during(&app, 5, async {}).await;
    let refused = app.post_json("/v1/acknowledgments", Some("demo-br-border"), "{}").await;
    let header = |name: &str| refused.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert_eq!(header("ratelimit-policy").as_deref(), Some("\"writes\";q=64;qu=\"concurrent-requests\""));
    assert_eq!(header("ratelimit").as_deref(), Some("\"writes\";r=0;t=1"));
    let problem = assert_problem(refused, 429, "too-many-requests").await;
    assert_eq!((problem["quota"].as_str(), problem["limit"].as_u64()), (Some("writes"), Some(64)), "{problem:#}");
    assert!(problem["detail"].as_str().unwrap().contains("more than 64 submissions or acknowledgments in progress"), "{problem:#}");
    // The submissions with its token were refused as such, not held.
    let forbidden = app.post_json("/v1/documents", Some("demo-br-border"), "{}").await;
    assert_problem(forbidden, 403, "forbidden").await;
    drop(held);
}

#[tokio::test]
async fn streams_that_are_never_read_stop_at_the_readers_quota_and_others_go_on() {
    let app = gateway().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for n in 0..3 {
        honest_round(&app, 100 + n).await;
    }
    // SSE streams of the agency's documents whose reader never reads.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&host).await.unwrap();
        let head = format!("GET /v1/agencies/br-customs/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer demo-br-customs\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = app.get("/v1/agencies/br-customs/documents?after=0&wait=1s", Some("demo-br-customs")).await;
    assert_eq!(more.status(), 429, "past the agency role's 8 open streams");
    honest_during(&app, 5, async {}).await;
    drop(stalled);
}

#[tokio::test]
async fn thousands_of_anonymous_refusals_add_no_record_each_to_the_audit_log() {
    let app = gateway().await;
    honest_round(&app, 0).await;
    let before = audit_records(&app);
    let nope = format!("/v1/nope-{}", "x".repeat(150));
    honest_during(&app, 3, async {
        // One keep-alive connection, request after request.
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
        for _ in 0..2_000 {
            let r = client.get(format!("{}{nope}", app.address)).send().await.unwrap();
            assert_eq!(r.status(), 404);
        }
    })
    .await;
    let after = audit_records(&app);
    // The honest rounds' own records (3 of submission, answer) and no more than a few others.
    assert!(after - before < 20, "{} records for 2,000 anonymous refusals", after - before);
    // At the stop, the minute's count is written: one record for the source.
    let data = app.data.clone();
    app.stop().await;
    let db = rusqlite::Connection::open(data.path().join("ventanilla.db")).unwrap();
    let (subject, detail): (String, String) = db
        .query_row("SELECT subject, detail FROM audit_log WHERE action = 'request.refused.summary' AND participant = 'anonymous'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("one summary record of the anonymous refusals");
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(subject, "source 127.0.0.1");
    assert_eq!((detail["refused"].as_u64(), detail["codes"]["not-found"].as_u64()), (Some(2_000), Some(2_000)), "{detail:#}");
}

/// Issue 26, "Also": validating large documents by one trader took another trader's submissions
/// from 5 to 78 ms, as validation CPU was in no quota. Now parsing and validating are charged to
/// the sender's CPU quota (here 50 ms a second for the attacker): past it, 429 `cpu`, while the
/// honest trader's rounds go on.
#[tokio::test]
async fn validation_cpu_is_the_senders_and_past_its_quota_it_is_refused() {
    let app = spawn_app_configured(Some(test_brokers()), |s| {
        s.region.quotas.demo = None;
        let over = ventanilla::config::QuotaOverride { cpu_millis_per_second: Some(50), ..Default::default() };
        s.region.quotas.participants.insert("demo-trader-2".into(), over);
    })
    .await;
    let mut large = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    large["payload"]["extra"] = json!((0..50_000).collect::<Vec<u32>>());
    let large = large.to_string();
    let attack = async {
        let client = reqwest::Client::new();
        let mut refused: Option<reqwest::Response> = None;
        for _ in 0..400 {
            let r = client
                .post(format!("{}/v1/validate", app.address))
                .bearer_auth("demo-trader-2")
                .header("content-type", "application/json")
                .body(large.clone())
                .send()
                .await
                .unwrap();
            if r.status() == 429 {
                refused = Some(r);
                break;
            }
            assert_eq!(r.status(), 422, "validated (and refused by its schema) until the CPU quota is spent");
        }
        refused
    };
    let refused = honest_during(&app, 3, attack).await.expect("the CPU quota was met within 400 validations");
    assert!(refused.headers()["ratelimit-policy"].to_str().unwrap().starts_with("\"cpu\";q=50;w=1"), "{:?}", refused.headers());
    let problem = assert_problem(refused, 429, "too-many-requests").await;
    assert_eq!(problem["quota"], "cpu", "{problem:#}");
    // Another trader's account is its own.
    let r = app.post_json("/v1/validate", Some("demo-trader"), &example("customsDeclaration/valid/export-beef-road-AR-BR.json").to_string()).await;
    assert_eq!(r.status(), 200);
}
