//! Batch submission: one result per item, in order, with the same validation, authorization,
//! idempotency and durability as single submission; one bad document never sinks the others.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{await_deliveries, example, spawn_app, TestApp};

fn documents(app: &TestApp) -> i64 {
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0)).unwrap()
}

async fn batch(app: &TestApp, token: &str, content_type: &str, body: String, key: Option<&str>) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/v1/documents:batch", app.address))
        .bearer_auth(token)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.unwrap()
}

fn statuses(answer: &Value) -> Vec<u64> {
    answer["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_batch_mixing_valid_invalid_duplicate_and_unauthorized_documents_gets_one_result_each() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let with_ucr = |path: &str, ucr: &str| {
        let mut d = example(path);
        d["ucr"] = json!(format!("{ucr}-{}", &run[24..]));
        d
    };
    let a = with_ucr("customsDeclaration/valid/export-beef-road-AR-BR.json", "BATCH-A");
    let b = with_ucr("commercialInvoice/valid/beef-road-AR-BR.json", "BATCH-B");
    let invalid = with_ucr("customsDeclaration/invalid/bad-hs-code.json", "BATCH-C");
    let mut not_yours = with_ucr("customsDeclaration/valid/export-beef-road-AR-BR.json", "BATCH-D");
    not_yours["payload"]["declarant"]["identifier"]["value"] = json!("20111111112");
    let unknown_type = json!({"documentType": "billOfLading", "ucr": "BATCH-E", "origin": "AR", "destination": "BR", "payload": {}});
    let items = json!([a, invalid, a, not_yours, b, unknown_type]);

    let r = batch(&app, "demo-trader", "application/json", items.to_string(), None).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(statuses(&answer), [202, 422, 202, 403, 202, 422], "{answer:#}");
    assert_eq!((answer["accepted"].as_u64(), answer["refused"].as_u64()), (Some(3), Some(3)));
    let results = answer["results"].as_array().unwrap();
    assert!(results.iter().enumerate().all(|(i, r)| r["index"] == i));
    assert_eq!(results[1]["problem"]["code"], "invalid-document");
    assert_eq!(results[3]["problem"]["code"], "forbidden");
    assert_eq!(results[5]["problem"]["code"], "unknown-document-type");
    // The duplicate is the first one's receipt, not a second document.
    assert_eq!(results[2]["replayed"], true);
    assert_eq!(results[2]["receipt"]["documentId"], results[0]["receipt"]["documentId"]);
    // Each receipt is signed as it is answered (the store keeps it awaiting its signature): the
    // replay's is the first's, byte for byte, and both verify with the gateway's keys.
    assert_eq!(results[2]["receipt"], results[0]["receipt"]);
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    for r in [&results[0], &results[4]] {
        assert!(ventanilla::receipts::verify(&r["receipt"], &jwks).is_ok(), "{:#}", r["receipt"]);
    }
    assert_eq!(documents(&app), 2, "two documents stored, the refused ones not");

    // Durable and published like single submissions.
    let accepted: Vec<(String, Vec<String>)> = [&results[0], &results[4]]
        .iter()
        .map(|r| {
            let topics = r["receipt"]["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
            (r["receipt"]["documentId"].as_str().unwrap().to_owned(), topics)
        })
        .collect();
    let (deliveries, _) = await_deliveries(&app.brokers, &accepted, Duration::from_secs(60)).await;
    assert!(deliveries >= 2);

    // NDJSON, with a line that is not JSON: that item alone is refused.
    let c = with_ucr("packingList/valid/beef-road-AR-BR.json", "BATCH-F");
    let ndjson = format!("{}\n{{broken\n\n{}\n", c, b);
    let answer: Value = batch(&app, "demo-trader", "application/x-ndjson", ndjson, None).await.json().await.unwrap();
    assert_eq!(statuses(&answer), [202, 400, 202], "{answer:#}");
    assert_eq!(answer["results"][1]["problem"]["code"], "malformed-json");
    assert_eq!(answer["results"][2]["replayed"], true, "b was accepted before");
    // In a JSON array too, an item that is not strict JSON (a repeated key) is refused alone.
    let array = format!(r#"[{c}, {{"ucr": "BATCH-H", "ucr": "BATCH-I"}}]"#);
    let answer: Value = batch(&app, "demo-trader", "application/json", array, None).await.json().await.unwrap();
    assert_eq!(statuses(&answer), [202, 400], "{answer:#}");
    assert_eq!(answer["results"][0]["replayed"], true, "c was accepted before");
    assert!(answer["results"][1]["problem"]["detail"].as_str().unwrap().contains("duplicate key"), "{answer:#}");

    // The same batch under one Idempotency-Key, twice: answered from the first the second time.
    let keyed = json!([with_ucr("spsCertificate/valid/phyto-pears-road-AR-BR.json", "BATCH-G")]).to_string();
    let first: Value = batch(&app, "demo-trader", "application/json", keyed.clone(), Some("batch-42")).await.json().await.unwrap();
    let stored = documents(&app);
    let again: Value = batch(&app, "demo-trader", "application/json", keyed, Some("batch-42")).await.json().await.unwrap();
    assert_eq!(again["results"][0]["replayed"], true);
    assert_eq!(again["results"][0]["receipt"]["documentId"], first["results"][0]["receipt"]["documentId"]);
    assert_eq!(documents(&app), stored);

    // A role that submits nothing is refused the whole batch, before its body is read; no
    // token, no batch; too many items, 413.
    crate::helpers::assert_problem(batch(&app, "demo-operator", "application/json", json!([a]).to_string(), None).await, 403, "forbidden").await;
    let r = app.client.post(format!("{}/v1/documents:batch", app.address)).header("Content-Type", "application/json").body("[]").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let many = Value::Array(vec![json!({}); 10_001]).to_string();
    let r = batch(&app, "demo-trader", "application/json", many, None).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["maxItems"], 10_000);
    let r = batch(&app, "demo-trader", "application/x-ndjson", "x\n".repeat(10_001), None).await;
    assert_eq!(r.status(), 413, "lines are counted before any is parsed");
    // An item over a single submission's bound is that item's 413.
    let mut huge = a.clone();
    huge["payload"]["remarks"] = json!((0..20).map(|_| "r".repeat(60_000)).collect::<Vec<_>>());
    let answer: Value = batch(&app, "demo-trader", "application/json", json!([huge, b]).to_string(), None).await.json().await.unwrap();
    assert_eq!(statuses(&answer), [413, 202], "{answer:#}");
    let r = batch(&app, "demo-trader", "application/json", json!({"not": "an array"}).to_string(), None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(documents(&app), stored, "refused batches store nothing");
    // Refused items are in the audit log, one record per batch (however many items), each
    // naming its refused items; the operator's batch is one refused request.
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let details: Vec<String> = db
        .prepare("SELECT detail FROM audit_log WHERE action = 'batch.refused' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let details: Vec<Value> = details.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let refused: u64 = details.iter().map(|d| d["refused"].as_u64().unwrap()).sum();
    assert_eq!(refused, 3 + 1 + 1 + 1, "three in the first batch, the bad line, the repeated key, the huge item: {details:#?}");
    assert!(details.iter().all(|d| d["items"].as_array().unwrap().len() as u64 == d["refused"].as_u64().unwrap()));
    assert!(details.len() < 6, "one record per batch, not per item: {details:#?}");
    let operators: i64 = db
        .query_row("SELECT COUNT(*) FROM audit_log WHERE action = 'request.refused' AND participant = 'demo-operator'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(operators, 1);
}
