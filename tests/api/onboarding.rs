//! A standard onboarded as its publisher ships it (issue 29), from the files under
//! `tests/fixtures/standards/`: each needs what a real standard needs, without one edit of the
//! publisher's file and without a line of code.
//! - The ocean bill of lading is published in OpenAPI 3.0 form (item 2: imported with
//!   `ventanilla schemas import`), states its facts otherwise than the region routes by (item 3:
//!   computed from its fields), and has its table checked against the imported schema at start
//!   (item 4).
//! - The commercial invoice credential requires nothing (`{}` is valid) and gives HS codes no
//!   pattern: the region's overlays add what it enforces, and its hints tell the publisher's own
//!   date format in the region's words (item 1).
//!
//! Each is then submitted, delivered to its agencies, acknowledged, and its invalid variants
//! refused.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};
use ventanilla::config::DocumentTypeConfig;
use ventanilla::schema::SchemaRegistry;

use crate::helpers::{assert_problem, consumer, copy_dir, repo, shipped_region, spawn_app_configured, test_brokers, ventanilla};

const TYPE: &str = "oceanBillOfLading";

fn fixture(file: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/standards/ocean-bill-of-lading").join(file)
}

/// The document `id` as `agency`'s topic delivers it (its first record: the payload of
/// `document` as sent, as a CloudEvent of that id), then its release by the agency, applied:
/// the record's headers.
async fn delivered_and_released(app: &crate::helpers::TestApp, agency: &str, id: &str, document: &Value) -> HashMap<String, String> {
    let topic = consumer(&app.brokers, &[&app.topic(&format!("agency.{agency}"))]);
    let m = tokio::time::timeout(Duration::from_secs(60), topic.recv()).await.expect("the agency's topic gets it").unwrap();
    let headers: HashMap<String, String> = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
        .unwrap_or_default();
    assert_eq!(headers["ce_id"], id);
    assert_eq!(serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap(), document["payload"]);
    let ack = json!({"documentId": id, "agency": agency, "status": "released"}).to_string();
    let answer: Value = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack).await.json().await.unwrap();
    assert_eq!(answer["outcome"], "applied", "{answer:#}");
    headers
}

/// Submits the envelope in `file` as `demo-trader`: it is accepted for `br-customs` and
/// `br-sanitary` (a document of beef for Brazil); the envelope and its document id.
async fn submitted(app: &crate::helpers::TestApp, file: &std::path::Path) -> (Value, String) {
    let document: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let r = app.submit(&document).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let receipt: Value = r.json().await.unwrap();
    let agencies: Vec<&str> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap()).collect();
    assert_eq!(agencies, ["br-customs", "br-sanitary"], "{receipt:#}");
    let id = receipt["documentId"].as_str().unwrap().to_owned();
    (document, id)
}

const CREDENTIAL: &str = "commercialInvoiceCredential";

fn credential(file: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/standards/invoice-credential").join(file)
}

#[tokio::test]
async fn an_invoice_credential_that_requires_nothing_is_overlaid_by_the_region_without_editing_it() {
    let schemas = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("schemas"), schemas.path());
    std::fs::create_dir(schemas.path().join(CREDENTIAL)).unwrap();
    let published = std::fs::read(credential("1.0.0.json")).unwrap();
    std::fs::write(schemas.path().join(CREDENTIAL).join("1.0.0.json"), &published).unwrap();
    let table: DocumentTypeConfig = toml::from_str(&std::fs::read_to_string(credential("table.toml")).unwrap()).unwrap();
    assert!(table.overlays.len() >= 5);

    // An overlay at a pointer the publisher's file does not have stops the start, naming it.
    let mut region = shipped_region();
    let mut misplaced = table.clone();
    misplaced.overlays[0].at = "/properties/nowhere".into();
    region.document_types.insert(CREDENTIAL.into(), misplaced);
    let refused = SchemaRegistry::of_region(schemas.path(), &region).err().expect("refused").to_string();
    assert!(refused.contains(&format!("[document_types.{CREDENTIAL}] overlay of {CREDENTIAL}/1.0.0.json at \"/properties/nowhere\"")), "{refused}");

    // `schemas diff` compares the publisher's file with itself overlaid as the registry uses it:
    // the region's additions only, each named (here through the CLI, the region given).
    let config = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    let text = text.replace("schemas_dir = \"../schemas\"", &format!("schemas_dir = {:?}", schemas.path().display().to_string()));
    let table_text = std::fs::read_to_string(credential("table.toml")).unwrap();
    let table_text = table_text.replace("[[overlays]]", &format!("[[document_types.{CREDENTIAL}.overlays]]"));
    let (head, overlays) = table_text.split_once("# What the region enforces").unwrap();
    std::fs::write(config.path().join("ventanilla.toml"), format!("{text}\n[document_types.{CREDENTIAL}]\n{head}\n# What the region enforces{overlays}")).unwrap();
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("publisher.json"), &published).unwrap();
    let out = ventanilla(vec![
        "schemas".into(),
        "diff".into(),
        "--config".into(),
        config.path().display().to_string(),
        plain.path().join("publisher.json").display().to_string(),
        schemas.path().join(CREDENTIAL).join("1.0.0.json").display().to_string(),
    ])
    .await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "the additions narrow what it accepts: not backward compatible\n{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("/required") && said.contains("/properties/items/items/properties/hsCode"), "{said}");
    assert!(!said.contains("constraint-removed") && !said.contains("$ref"), "nothing of the publisher's file seems removed: {said}");

    let schemas_dir = schemas.path().to_owned();
    let app = spawn_app_configured(Some(test_brokers()), move |s| {
        s.region.document_types.insert(CREDENTIAL.into(), table);
        s.region.gateway.schemas_dir = schemas_dir;
        let trader = s.region.participants.iter_mut().find(|p| p.id == "demo-trader").unwrap();
        trader.acts_for.push("DID:did:web:frigorifico-litoral.example.com.ar".into());
    })
    .await;
    assert_eq!(std::fs::read(schemas.path().join(CREDENTIAL).join("1.0.0.json")).unwrap(), published, "the publisher's file is never edited");

    // A submission: the seller by its DID, the destination from the port's UN/LOCODE.
    let (document, id) = submitted(&app, &credential("valid.json")).await;
    delivered_and_released(&app, "br-customs", &id, &document).await;

    // What the publisher's schema took and the region refuses, in the region's words.
    let mut empty = document.clone();
    empty["ucr"] = json!("5AR30714255831-C0785");
    empty["payload"] = json!({});
    let problem = assert_problem(app.submit(&empty).await, 422, "invalid-document").await;
    let missing: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert!(missing.contains(&"/payload/invoiceNumber") && missing.contains(&"/payload/seller"), "{problem:#}");
    let mut dated = document.clone();
    dated["ucr"] = json!("5AR30714255831-C0786");
    dated["payload"]["invoiceDate"] = json!("01/12/2026");
    dated["payload"]["items"][0]["hsCode"] = json!("0201.30");
    let problem = assert_problem(app.submit(&dated).await, 422, "invalid-document").await;
    let told: HashMap<&str, &str> =
        problem["errors"].as_array().unwrap().iter().map(|e| (e["pointer"].as_str().unwrap(), e["message"].as_str().unwrap())).collect();
    assert!(told["/payload/invoiceDate"].starts_with("a date written year-month-day"), "the publisher's format, in the region's words: {problem:#}");
    assert!(told["/payload/items/0/hsCode"].starts_with("an HS code of 6 to 10 digits"), "{problem:#}");
    app.stop().await;
}

#[tokio::test]
async fn a_bill_of_lading_published_in_openapi_is_onboarded_without_editing_it() {
    // Item 2: the publisher's OpenAPI document, imported by the operations binary.
    let schemas = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("schemas"), schemas.path());
    std::fs::create_dir(schemas.path().join(TYPE)).unwrap();
    let imported = schemas.path().join(TYPE).join("3.0.0.json");
    let published = std::fs::read(fixture("openapi.yaml")).unwrap();
    let out = ventanilla(vec![
        "schemas".into(),
        "import".into(),
        fixture("openapi.yaml").display().to_string(),
        "--component".into(),
        "TransportDocument".into(),
        "--out".into(),
        imported.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let schema: Value = serde_json::from_slice(&std::fs::read(&imported).unwrap()).unwrap();
    assert_eq!(schema["x-imported-from"]["sha256"], ventanilla::digest::sha256_hex(&published), "it names the file as published");
    assert_eq!(std::fs::read(fixture("openapi.yaml")).unwrap(), published, "the publisher's file is never edited");
    for component in ["Party", "TaxLegalReference", "Address", "Location", "ConsignmentItem"] {
        assert!(schema["$defs"].get(component).is_some(), "{component} in $defs");
    }

    // Items 3 and 4: the region's table, with facts computed from fields, checked against the
    // imported schema at start; a typo in a computed fact stops the start naming its field.
    let table: DocumentTypeConfig = toml::from_str(&std::fs::read_to_string(fixture("table.toml")).unwrap()).unwrap();
    let mut region = shipped_region();
    let mut typo = table.clone();
    typo.destination = vec!["locode:/portOfDischarge/UNLocationcode".into()];
    region.document_types.insert(TYPE.into(), typo);
    let refused = SchemaRegistry::of_region(schemas.path(), &region).err().expect("a typo stops the start").to_string();
    assert!(refused.contains("(its field \"/portOfDischarge/UNLocationcode\")") && refused.contains("UNLocationCode"), "{refused}");
    region.document_types.insert(TYPE.into(), table.clone());
    let registry = SchemaRegistry::of_region(schemas.path(), &region).expect("the region loads with the imported standard");
    assert!(!registry.warnings().iter().any(|w| w.contains(TYPE)), "{:?}", registry.warnings());

    let schemas_dir = schemas.path().to_owned();
    let app = spawn_app_configured(Some(test_brokers()), move |s| {
        s.region.document_types.insert(TYPE.into(), table);
        s.region.gateway.schemas_dir = schemas_dir;
    })
    .await;

    // A submission: the shipper's AR-CUIT built from its tax reference (demo-trader acts for
    // it), the countries read from the ports' UN/LOCODEs, chapter 02 from the HS codes.
    let (document, id) = submitted(&app, &fixture("valid.json")).await;

    // Its delivery (the sanitary agency's topic has it, the payload as sent) and its
    // acknowledgment.
    let headers = delivered_and_released(&app, "br-sanitary", &id, &document).await;
    assert_eq!(headers["ce_type"], format!("org.ventanilla.document.{TYPE}"));

    // Refusals of invalid variants, each at its pointer: the publisher's own bound (a boolean
    // exclusiveMinimum of OpenAPI 3.0, imported as the bound it qualifies), and a port of
    // another country than the envelope's destination (a computed fact, at the field).
    let mut weightless = document.clone();
    weightless["ucr"] = json!("5AR30714255831-C0782");
    weightless["payload"]["consignmentItems"][0]["weight"] = json!(0);
    let problem = assert_problem(app.submit(&weightless).await, 422, "invalid-document").await;
    assert_eq!(problem["errors"][0]["pointer"], "/payload/consignmentItems/0/weight", "{problem:#}");
    let mut elsewhere = document.clone();
    elsewhere["ucr"] = json!("5AR30714255831-C0783");
    elsewhere["payload"]["portOfDischarge"]["UNLocationCode"] = json!("UYMVD");
    let problem = assert_problem(app.submit(&elsewhere).await, 422, "invalid-document").await;
    assert_eq!(problem["errors"][0]["pointer"], "/payload/portOfDischarge/UNLocationCode", "{problem:#}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("the country of the UN/LOCODE"), "{problem:#}");
    // And a shipper the trader does not act for: refused, naming the scheme built from fields.
    let mut other = document.clone();
    other["ucr"] = json!("5AR30714255831-C0784");
    other["payload"]["shipper"]["taxLegalReferences"][0]["value"] = json!("20111111112");
    let problem = assert_problem(app.submit(&other).await, 403, "forbidden").await;
    assert!(problem["detail"].as_str().unwrap().contains("AR-CUIT:20111111112"), "{problem:#}");
    app.stop().await;
}
