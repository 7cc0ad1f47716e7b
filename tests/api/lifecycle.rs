//! A declaration's whole life, over HTTP and the real broker: amended (agencies receive the new
//! version, an agency no longer concerned is told the earlier one is withdrawn), queried and
//! answered by the trader, withdrawn, and refused changes after release.

use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, consumer, example, spawn_app, spawn_app_configured, spawn_app_with, test_brokers, TestApp, TestConsumer};

const BEEF: &str = "customsDeclaration/valid/export-beef-road-AR-BR.json";

/// One record of an agency's topic: its CloudEvents headers and its value.
struct Record {
    headers: std::collections::BTreeMap<String, String>,
    value: String,
}

/// The next `n` records of `c`, within 30 s.
async fn records(c: &TestConsumer, n: usize) -> Vec<Record> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), c.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", out.len()))
            .expect("a record");
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        out.push(Record { headers, value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned() });
    }
    out
}

/// The actions of the gateway's audit log, read from its store.
async fn audit_actions(app: &TestApp) -> Vec<String> {
    let store = ventanilla::store::sqlite::SqliteStore::open_existing(app.data.path()).unwrap();
    let store: std::sync::Arc<dyn ventanilla::store::Store> = std::sync::Arc::new(store);
    store.read_with(|l| l.audit_records()).await.unwrap().into_iter().map(|r| r.action).collect()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.post_json(path, Some(token), &body.to_string()).await
}

async fn view(app: &TestApp, ucr: &str, token: &str) -> Value {
    app.get(&format!("/v1/consignments/{ucr}"), Some(token)).await.json().await.unwrap()
}

fn delivery<'a>(view: &'a Value, version: i64, agency: &str) -> &'a Value {
    view["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["version"] == version)
        .and_then(|d| d["deliveries"].as_array().unwrap().iter().find(|x| x["agency"] == agency))
        .unwrap_or_else(|| panic!("no delivery of version {version} to {agency}: {view:#}"))
}

async fn answer(app: &TestApp, doc: &str, agency: &str, status: &str, reason: Option<&str>) -> Value {
    let mut body = json!({"documentId": doc, "agency": agency, "status": status});
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let r = post(app, "/v1/acknowledgments", &format!("demo-{agency}"), &body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn an_amended_declaration_reaches_its_agencies_and_an_agency_no_longer_concerned_hears_it_is_withdrawn() {
    let app = spawn_app().await;
    let v1_body = example(BEEF);
    let v1: Value = app.submit(&v1_body).await.json().await.unwrap();
    let (v1_id, ucr) = (v1["documentId"].as_str().unwrap().to_owned(), v1["ucr"].as_str().unwrap().to_owned());
    assert_eq!(v1["version"], 1);
    let border = consumer(&app.brokers, &[&app.topic("agency.br-border")]);
    let customs = consumer(&app.brokers, &[&app.topic("agency.br-customs")]);

    // By sea, the declaration no longer goes to the border agency.
    let mut v2_body = v1_body.clone();
    v2_body["payload"]["modeOfTransport"] = json!("sea");
    let amendment = json!({"reason": "the goods travel by sea", "document": v2_body});
    let path = format!("/v1/documents/{v1_id}/amendments");
    let r = post(&app, &path, "demo-trader", &amendment).await;
    assert_eq!(r.status(), 202);
    let v2: Value = r.json().await.unwrap();
    let v2_id = v2["documentId"].as_str().unwrap().to_owned();
    assert_eq!((v2["version"].clone(), v2["amends"].clone()), (json!(2), json!(v1_id)));
    let agencies: Vec<&str> = v2["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap()).collect();
    assert!(!agencies.contains(&"br-border") && agencies.contains(&"br-customs"), "{agencies:?}");

    // The border agency: the declaration, then its withdrawal naming the new version.
    let got = records(&border, 2).await;
    assert_eq!(got[0].headers["ce_type"], "org.ventanilla.document.customsDeclaration");
    assert_eq!(got[1].headers["ce_type"], "org.ventanilla.document.withdrawn");
    assert_eq!(got[1].headers["ce_documentid"], v1_id);
    assert_ne!(got[1].headers["ce_id"], v1_id, "a notice has an id of its own");
    let notice: Value = serde_json::from_str(&got[1].value).unwrap();
    assert_eq!(notice["supersededBy"], v2_id);
    assert!(notice["reason"].as_str().unwrap().contains("the goods travel by sea"), "{notice:#}");
    // Customs: the declaration, then the amended version naming the one it replaces.
    let got = records(&customs, 2).await;
    assert_eq!(got[1].headers["ce_type"], "org.ventanilla.document.amended");
    assert_eq!(got[1].headers["ce_id"], v2_id);
    assert_eq!(got[1].headers["ce_amends"], v1_id);
    assert_eq!(got[1].headers["ce_documentversion"], "2");
    assert_eq!(got[1].headers["ce_documenttype"], "customsDeclaration");

    // Sent again: its first receipt. Amending the earlier version otherwise: superseded.
    let again = post(&app, &path, "demo-trader", &amendment).await;
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap()["documentId"], v2_id);
    let mut v3_body = v2_body.clone();
    v3_body["payload"]["modeOfTransport"] = json!("air");
    let p = assert_problem(post(&app, &path, "demo-trader", &json!({"reason": "by air", "document": v3_body})).await, 409, "document-superseded").await;
    assert_eq!(p["latestDocumentId"], v2_id);
    // The same body as the version it amends changes nothing; another UCR is another document.
    let same = json!({"reason": "no change", "document": v2_body});
    assert_problem(post(&app, &format!("/v1/documents/{v2_id}/amendments"), "demo-trader", &same).await, 409, "amendment-unchanged").await;
    let mut elsewhere = v2_body.clone();
    elsewhere["ucr"] = json!("5AR30714255831-C9999");
    let p = assert_problem(
        post(&app, &format!("/v1/documents/{v2_id}/amendments"), "demo-trader", &json!({"reason": "x", "document": elsewhere})).await,
        422,
        "invalid-request",
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/document/ucr");
    // An invalid amended version is refused with pointers into the request.
    let mut invalid = v2_body.clone();
    invalid["payload"]["goodsItems"][0]["hsCode"] = json!("O2013000");
    let p = assert_problem(
        post(&app, &format!("/v1/documents/{v2_id}/amendments"), "demo-trader", &json!({"reason": "x", "document": invalid})).await,
        422,
        "invalid-document",
    )
    .await;
    assert_eq!(p["errors"][0]["pointer"], "/document/payload/goodsItems/0/hsCode");
    // Another trader may not submit the declarant's documents, so nor amend them (a withdrawal
    // or a response, which carry no document, reads as unknown to it).
    let other = json!({"reason": "not mine", "document": v3_body});
    assert_problem(post(&app, &format!("/v1/documents/{v2_id}/amendments"), "demo-trader-2", &other).await, 403, "forbidden").await;

    // Answers to version 1 are late; the consignment follows version 2.
    let late = answer(&app, &v1_id, "br-customs", "rejected", Some("wrong mode of transport")).await;
    assert_eq!(late["outcome"], "late");
    for agency in ["ar-customs", "br-customs", "br-sanitary"] {
        answer(&app, &v2_id, agency, "released", None).await;
    }
    let released = app.wait_for_state(&ucr, "released").await;
    let statuses: Vec<(i64, &str)> =
        released["documents"].as_array().unwrap().iter().map(|d| (d["version"].as_i64().unwrap(), d["status"].as_str().unwrap())).collect();
    assert_eq!(statuses, [(1, "superseded"), (2, "current")]);
    let history: Vec<&str> = delivery(&released, 1, "br-border")["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert!(history.contains(&"withdrawn"), "{history:?}");

    // Released: no more changes in this region.
    let mut v3_body = v2_body.clone();
    v3_body["payload"]["incoterm"] = json!("FOB");
    let after = json!({"reason": "late correction", "document": v3_body});
    assert_problem(post(&app, &format!("/v1/documents/{v2_id}/amendments"), "demo-trader", &after).await, 409, "consignment-released").await;
    let audit = audit_actions(&app).await;
    assert!(audit.iter().any(|a| a == "document.amended"), "{audit:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_region_that_allows_changes_after_release_takes_an_amendment() {
    let app = spawn_app_configured(Some(test_brokers()), |s| s.region.gateway.change_after_release = true).await;
    let body = example(BEEF);
    let v1: Value = app.submit(&body).await.json().await.unwrap();
    let (id, ucr) = (v1["documentId"].as_str().unwrap().to_owned(), v1["ucr"].as_str().unwrap().to_owned());
    for agency in ["ar-customs", "br-customs", "br-sanitary", "br-border"] {
        answer(&app, &id, agency, "released", None).await;
    }
    app.wait_for_state(&ucr, "released").await;
    let mut v2 = body.clone();
    v2["payload"]["incoterm"] = json!("FOB");
    // The national single window of the declarant's country amends it for the trader: the new
    // version stays the trader's, and the audit log names who acted.
    let r = post(&app, &format!("/v1/documents/{id}/amendments"), "demo-nsw-ar", &json!({"reason": "incoterm corrected", "document": v2})).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["consignmentState"], "submitted", "the new version awaits its agencies' answers");
    let view = view(&app, &ucr, "demo-trader").await;
    assert_eq!(view["documents"][1]["sender"], "demo-trader", "{view:#}");
    let store = ventanilla::store::sqlite::SqliteStore::open_existing(app.data.path()).unwrap();
    let store: std::sync::Arc<dyn ventanilla::store::Store> = std::sync::Arc::new(store);
    let records = store.read_with(|l| l.audit_records()).await.unwrap();
    let amended = records.iter().find(|r| r.action == "document.amended").expect("audited");
    assert_eq!(amended.participant, "demo-nsw-ar");
    assert!(amended.detail.contains("incoterm corrected"), "{}", amended.detail);
}

#[tokio::test]
async fn a_query_is_seen_by_the_trader_answered_with_a_supporting_document_and_received_by_the_agency() {
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example(BEEF)).await.json().await.unwrap();
    let (id, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let customs = consumer(&app.brokers, &[&app.topic("agency.br-customs")]);
    let respond_path = format!("/v1/documents/{id}/responses");
    assert_problem(post(&app, &respond_path, "demo-trader", &json!({"text": "nothing was asked"})).await, 409, "no-open-query").await;

    answer(&app, &id, "br-customs", "query", Some("send the commercial invoice")).await;
    let v = app.wait_for_state(&ucr, "on_hold").await;
    assert_eq!(delivery(&v, 1, "br-customs")["turn"], "trader");
    // The trader hears of it, with its reason, on its event stream.
    let page: Value = app.get("/v1/consignments/events?after=0&wait=5s", Some("demo-trader")).await.json().await.unwrap();
    let query = page["events"].as_array().unwrap().iter().find(|e| e["cause"]["status"] == "query").cloned();
    assert_eq!(query.map(|q| q["cause"]["reason"].clone()), Some(json!("send the commercial invoice")), "{page:#}");

    // The answer, with the invoice as a supporting document (of the same consignment), its
    // payload formatted the trader's way.
    let mut invoice = example("commercialInvoice/valid/beef-road-AR-BR.json");
    invoice["ucr"] = json!(ucr);
    let payload_text = serde_json::to_string_pretty(&invoice["payload"]).unwrap().replace("\n", "\n\t");
    let mut request = json!({"text": "the invoice is attached", "agency": "br-customs", "supportingDocument": invoice}).to_string();
    let canonical = invoice["payload"].to_string();
    request = request.replacen(&canonical, &payload_text, 1);
    let r = app.post_json(&respond_path, Some("demo-trader"), &request).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let response: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-trader")).await.json().await.unwrap();
    assert_eq!(delivery(&response, 1, "br-customs")["turn"], "agency");

    let got = records(&customs, 2).await;
    assert_eq!(got[1].headers["ce_type"], "org.ventanilla.query.answered");
    assert_eq!(got[1].headers["ce_documentid"], id);
    assert!(got[1].value.contains(&payload_text), "the supporting document's payload as the trader sent it");
    let notice: Value = serde_json::from_str(&got[1].value).unwrap();
    assert_eq!(notice["text"], "the invoice is attached");
    assert_eq!(notice["supportingDocument"]["documentType"], "commercialInvoice");

    // A supporting document is checked as a submission: invalid, or of another consignment, refused.
    let mut wrong = invoice.clone();
    wrong["ucr"] = json!("5AR30714255831-C0000");
    let p = assert_problem(post(&app, &respond_path, "demo-trader", &json!({"text": "x", "supportingDocument": wrong})).await, 422, "invalid-request").await;
    assert_eq!(p["errors"][0]["pointer"], "/supportingDocument/ucr");
    // To another trader the document does not exist, whatever its request holds.
    let foreign = json!({"text": "x", "supportingDocument": wrong});
    assert_problem(post(&app, &respond_path, "demo-trader-2", &foreign).await, 404, "unknown-document").await;
    let p = assert_problem(post(&app, &respond_path, "demo-trader", &json!({"text": "  "})).await, 422, "invalid-request").await;
    assert_eq!(p["errors"][0]["pointer"], "/text");
    // The agency answers again: the query is closed.
    answer(&app, &id, "br-customs", "accepted", None).await;
    let v = view(&app, &ucr, "demo-trader").await;
    assert!(delivery(&v, 1, "br-customs").get("turn").is_none(), "{v:#}");
    assert_eq!(audit_actions(&app).await.iter().filter(|a| *a == "query.answered").count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_withdrawn_declaration_is_announced_to_every_agency_and_later_answers_are_late() {
    let app = spawn_app().await;
    let body = example(BEEF);
    let receipt: Value = app.submit(&body).await.json().await.unwrap();
    let (id, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let sanitary = consumer(&app.brokers, &[&app.topic("agency.br-sanitary")]);
    let path = format!("/v1/documents/{id}/withdrawal");
    assert_problem(post(&app, &path, "demo-trader", &json!({})).await, 422, "invalid-request").await;
    assert_problem(post(&app, &path, "demo-br-customs", &json!({"reason": "x"})).await, 403, "forbidden").await;
    assert_problem(post(&app, &path, "demo-trader-2", &json!({"reason": "x"})).await, 404, "unknown-document").await;

    let r = post(&app, &path, "demo-trader", &json!({"reason": "the sale was cancelled"})).await;
    assert_eq!(r.status(), 202);
    let withdrawal: Value = r.json().await.unwrap();
    assert_eq!(withdrawal["consignmentState"], "withdrawn");
    assert_eq!(withdrawal["agencies"].as_array().unwrap().len(), 4);
    let v = app.wait_for_state(&ucr, "withdrawn").await;
    assert_eq!(v["documents"][0]["status"], "withdrawn");
    let got = records(&sanitary, 2).await;
    assert_eq!(got[1].headers["ce_type"], "org.ventanilla.document.withdrawn");
    let notice: Value = serde_json::from_str(&got[1].value).unwrap();
    assert_eq!((notice["documentId"].clone(), notice["reason"].clone()), (json!(id), json!("the sale was cancelled")));

    let late = answer(&app, &id, "br-sanitary", "released", None).await;
    assert_eq!((late["outcome"].clone(), late["consignmentState"].clone()), (json!("late"), json!("withdrawn")));
    // Withdrawing again answers the first withdrawal; amending a withdrawn document is refused.
    let again: Value = post(&app, &path, "demo-trader", &json!({"reason": "again"})).await.json().await.unwrap();
    assert_eq!(again["withdrawnAt"], withdrawal["withdrawnAt"]);
    let mut v2 = body.clone();
    v2["payload"]["incoterm"] = json!("FOB");
    let amend = json!({"reason": "x", "document": v2});
    assert_problem(post(&app, &format!("/v1/documents/{id}/amendments"), "demo-trader", &amend).await, 409, "document-withdrawn").await;
    // The national single window of the declarant's country may act for the trader (here: it
    // answers the first withdrawal); the other country's may not.
    assert_eq!(post(&app, &path, "demo-nsw-ar", &json!({"reason": "x"})).await.status(), 202);
    assert_problem(post(&app, &path, "demo-nsw-br", &json!({"reason": "x"})).await, 404, "unknown-document").await;
    assert_eq!(audit_actions(&app).await.iter().filter(|a| *a == "document.withdrawn").count(), 1, "withdrawn once");
    app.stop().await;
}

/// The `n`th amendment of the declaration `body`: a new functional reference, the rest as sent.
fn amended(body: &Value, n: usize) -> Value {
    let mut next = body.clone();
    next["payload"]["functionalReference"] = json!(format!("FLP-EXP-2025-0781-{n}"));
    json!({"reason": format!("correction {n}"), "document": next})
}

/// Issue 26, 3: a document's history is bounded (`gateway.max_document_versions`), its latest
/// version is found however long it is, and the consignment's view shows the latest versions
/// and pages the rest.
#[tokio::test]
async fn a_document_history_is_bounded_and_the_consignments_view_pages_it() {
    let app = spawn_app_configured(None, |s| s.region.gateway.max_document_versions = 8).await;
    let body = example(BEEF);
    let v1: Value = app.submit(&body).await.json().await.unwrap();
    let ucr = v1["ucr"].as_str().unwrap().to_owned();
    let mut ids = vec![v1["documentId"].as_str().unwrap().to_owned()];
    for n in 2..=8 {
        let r = post(&app, &format!("/v1/documents/{}/amendments", ids.last().unwrap()), "demo-trader", &amended(&body, n)).await;
        assert_eq!(r.status(), 202, "version {n}");
        ids.push(r.json::<Value>().await.unwrap()["documentId"].as_str().unwrap().to_owned());
    }
    // The ninth version is one too many, and nothing of it is stored.
    let latest = format!("/v1/documents/{}/amendments", ids[7]);
    let p = assert_problem(post(&app, &latest, "demo-trader", &amended(&body, 9)).await, 409, "too-many-versions").await;
    assert_eq!(p["limit"], 8);
    // A change to the first version names the latest one.
    let p = assert_problem(post(&app, &format!("/v1/documents/{}/withdrawal", ids[0]), "demo-trader", &json!({"reason": "x"})).await, 409, "document-superseded").await;
    assert_eq!(p["latestDocumentId"], json!(ids[7]));

    // The view: the latest five versions, and where the three earlier ones are.
    let v = view(&app, &ucr, "demo-trader").await;
    let versions: Vec<i64> = v["documents"].as_array().unwrap().iter().map(|d| d["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [4, 5, 6, 7, 8], "{v:#}");
    let earlier = &v["earlierVersions"][0];
    assert_eq!((earlier["documentId"].clone(), earlier["latestDocumentId"].clone()), (json!(ids[0]), json!(ids[7])));
    assert_eq!((earlier["versions"].as_i64(), earlier["notShown"].as_i64()), (Some(8), Some(3)));
    let next = earlier["next"].as_str().unwrap();
    let page: Value = app.get(next, Some("demo-trader")).await.json().await.unwrap();
    let versions: Vec<i64> = page["documents"].as_array().unwrap().iter().map(|d| d["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3], "{page:#}");
    assert_eq!(page["earlierVersions"], json!([]), "the last page: {page:#}");
    // An agency sees its own deliveries' pages; another trader, nothing; a cursor that is not one is refused.
    let page: Value = app.get(next, Some("demo-br-customs")).await.json().await.unwrap();
    assert_eq!(page["documents"].as_array().unwrap().len(), 3);
    assert_eq!(app.get(next, Some("demo-trader-2")).await.status(), 404);
    assert_problem(app.get(&format!("/v1/consignments/{ucr}?versionsOf={}&before=0", ids[0]), Some("demo-trader")).await, 400, "invalid-query").await;
    assert_problem(app.get(&format!("/v1/consignments/{ucr}?versionsOf=v1"), Some("demo-trader")).await, 400, "invalid-query").await;
    app.stop().await;
}

/// Issue 26, 7: with `change_after_release = false`, a released consignment takes no new
/// document (which would move it back under review and reopen the released declaration to an
/// amendment): it stays released.
#[tokio::test]
async fn a_released_consignment_takes_no_later_document_that_would_reopen_it() {
    let app = spawn_app_with(None).await;
    let body = example(BEEF);
    let v1: Value = app.submit(&body).await.json().await.unwrap();
    let (id, ucr) = (v1["documentId"].as_str().unwrap().to_owned(), v1["ucr"].as_str().unwrap().to_owned());
    for agency in ["ar-customs", "br-customs", "br-sanitary", "br-border"] {
        answer(&app, &id, agency, "released", None).await;
    }
    app.wait_for_state(&ucr, "released").await;

    let mut invoice = example("commercialInvoice/valid/beef-road-AR-BR.json");
    invoice["ucr"] = json!(ucr);
    let p = assert_problem(app.submit(&invoice).await, 409, "consignment-released").await;
    assert!(p["detail"].as_str().unwrap().contains("gateway.change_after_release"), "{p:#}");
    let batch: Value = app.post_json("/v1/documents:batch", Some("demo-trader"), &json!([invoice]).to_string()).await.json().await.unwrap();
    assert_eq!(batch["results"][0]["problem"]["code"], "consignment-released", "{batch:#}");
    assert_problem(post(&app, &format!("/v1/documents/{id}/amendments"), "demo-trader", &amended(&body, 2)).await, 409, "consignment-released").await;
    // The declaration sent again still gets its first receipt.
    assert_eq!(app.submit(&body).await.headers().get("idempotent-replayed").unwrap(), "true");
    let v = view(&app, &ucr, "demo-trader").await;
    assert_eq!((v["state"].clone(), v["documents"].as_array().unwrap().len()), (json!("released"), 1), "{v:#}");
    app.stop().await;
}

/// Issue 26, 8: one response per query turn; the next waits for the agency to ask again.
#[tokio::test]
async fn a_query_takes_one_response_until_the_agency_asks_again() {
    let app = spawn_app_with(None).await;
    let receipt: Value = app.submit(&example(BEEF)).await.json().await.unwrap();
    let (id, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    answer(&app, &id, "br-customs", "query", Some("send the commercial invoice")).await;
    app.wait_for_state(&ucr, "on_hold").await;
    let path = format!("/v1/documents/{id}/responses");
    assert_eq!(post(&app, &path, "demo-trader", &json!({"text": "the invoice is attached"})).await.status(), 202);
    // Again, and again to the agency by name: refused, nothing sent or recorded.
    let big = json!({"text": "x".repeat(9_000)});
    let p = assert_problem(post(&app, &path, "demo-trader", &big).await, 409, "query-already-answered").await;
    assert!(p["detail"].as_str().unwrap().contains("wait for the agency's next query"), "{p:#}");
    let named = json!({"text": "once more", "agency": "br-customs"});
    assert_problem(post(&app, &path, "demo-trader", &named).await, 409, "query-already-answered").await;
    let v = view(&app, &ucr, "demo-trader").await;
    let history = delivery(&v, 1, "br-customs")["history"].as_array().unwrap().iter().filter(|h| h["status"] == "responded").count();
    assert_eq!((delivery(&v, 1, "br-customs")["turn"].clone(), history), (json!("agency"), 1));
    assert_eq!(audit_actions(&app).await.iter().filter(|a| *a == "query.answered").count(), 1);
    // The agency asks again: the trader's turn, one response more.
    answer(&app, &id, "br-customs", "query", Some("and the packing list?")).await;
    assert_eq!(post(&app, &path, "demo-trader", &named).await.status(), 202);
    assert_eq!(audit_actions(&app).await.iter().filter(|a| *a == "query.answered").count(), 2);
    app.stop().await;
}
