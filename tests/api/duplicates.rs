//! A document sent twice is accepted once: the same sender, UCR, type and body returns the first
//! receipt whatever the `Idempotency-Key`; a different body under a key already used, or for a
//! sender, UCR and type already accepted, is a conflict.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, example, spawn_app};

#[tokio::test]
async fn the_same_key_returns_the_first_receipt_and_a_different_body_is_409() {
    let app = spawn_app().await;
    let body = example("certificateOfOrigin/valid/ace18-beef-AR-BR.json");
    let send = |b: Value, key: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/v1/documents", app.address))
                .bearer_auth("demo-trader")
                .header("Idempotency-Key", key)
                .json(&b)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(body.clone(), "co-2025-0001").await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = send(body.clone(), "co-2025-0001").await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first receipt, as it was given");

    let mut changed = body.clone();
    changed["payload"]["certificateNumber"] = json!("CHANGED-0001");
    let p = assert_problem(send(changed, "co-2025-0001").await, 409, "duplicate-conflict").await;
    assert_eq!(p["documentId"], first["documentId"]);

    // Without a key, the same document again is recognised too.
    let r = app.submit(&body).await;
    assert_eq!(r.status(), 202);
    let third: Value = r.json().await.unwrap();
    assert_eq!(third["documentId"], first["documentId"]);

    let ucr = first["ucr"].as_str().unwrap();
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(view["documents"].as_array().unwrap().len(), 1, "one document stored, published once");

    let bad = app
        .client
        .post(format!("{}/v1/documents", app.address))
        .bearer_auth("demo-trader")
        .header("Idempotency-Key", "has spaces")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(bad, 400, "invalid-idempotency-key").await;
}

/// One rule for "the same document", in the other order: sent first without a key, then with
/// new keys, it is still accepted once; a different body for the same sender, UCR and type is a
/// conflict whatever the key.
#[tokio::test]
async fn the_same_document_under_new_keys_is_a_replay_and_a_different_one_a_conflict() {
    let app = spawn_app().await;
    let body = example("certificateOfOrigin/valid/ace18-beef-AR-BR.json");
    let send = |b: Value, key: Option<&'static str>| {
        let app = &app;
        async move {
            let mut req = app.client.post(format!("{}/v1/documents", app.address)).bearer_auth("demo-trader").json(&b);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            req.send().await.unwrap()
        }
    };
    let first: Value = send(body.clone(), None).await.json().await.unwrap();
    for key in ["co-new-key-1", "co-new-key-2"] {
        let again = send(body.clone(), Some(key)).await;
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true", "under {key}");
        assert_eq!(again.json::<Value>().await.unwrap()["documentId"], first["documentId"]);
    }
    let mut changed = body.clone();
    changed["payload"]["certificateNumber"] = json!("CHANGED-0002");
    let p = assert_problem(send(changed, Some("co-new-key-3")).await, 409, "duplicate-conflict").await;
    assert_eq!(p["documentId"], first["documentId"]);
    let ucr = first["ucr"].as_str().unwrap();
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(view["documents"].as_array().unwrap().len(), 1, "one document stored, published once");
}

/// Issue 26, 10: a withdrawn document is not the live one: a corrected document for the same
/// UCR and type is a new document (as the withdrawal's answer says), not a conflict.
#[tokio::test]
async fn a_withdrawn_document_is_replaced_by_a_corrected_one() {
    let app = crate::helpers::spawn_app_with(None).await;
    let body = example("certificateOfOrigin/valid/ace18-beef-AR-BR.json");
    let first: Value = app.submit(&body).await.json().await.unwrap();
    let first_id = first["documentId"].as_str().unwrap().to_owned();
    let ucr = first["ucr"].as_str().unwrap().to_owned();
    let withdrawal = app
        .post_json(&format!("/v1/documents/{first_id}/withdrawal"), Some("demo-trader"), &json!({"reason": "wrong certificate number"}).to_string())
        .await;
    assert_eq!(withdrawal.status(), 202);
    // Changing the withdrawn one is refused with the advice to submit a new document...
    let amend = json!({"reason": "x", "document": body});
    let p = assert_problem(
        app.post_json(&format!("/v1/documents/{first_id}/amendments"), Some("demo-trader"), &amend.to_string()).await,
        409,
        "document-withdrawn",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("submit a new document instead"), "{p:#}");
    // ...which is taken.
    let mut corrected = body.clone();
    corrected["payload"]["certificateNumber"] = json!("CORRECTED-0001");
    let r = app.submit(&corrected).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let second: Value = r.json().await.unwrap();
    assert_ne!(second["documentId"], first["documentId"]);
    assert_eq!((second["version"].clone(), second["consignmentState"].clone()), (json!(1), json!("submitted")));
    // Now the live one: the same again is its receipt, another body a conflict with it.
    let again = app.submit(&corrected).await;
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let mut other = body.clone();
    other["payload"]["certificateNumber"] = json!("OTHER-0002");
    let p = assert_problem(app.submit(&other).await, 409, "duplicate-conflict").await;
    assert_eq!(p["documentId"], second["documentId"]);
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-trader")).await.json().await.unwrap();
    let statuses: Vec<&str> = view["documents"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!((statuses, view["state"].as_str()), (vec!["withdrawn", "current"], Some("submitted")));
    app.stop().await;
}
