//! A standard onboarded as its publisher ships it (issue 29), from the files under
//! `tests/fixtures/standards/`: each needs what a real standard needs, without one edit of the
//! publisher's file and without a line of code. The ocean bill of lading is published in OpenAPI
//! 3.0 form (item 2: imported with `ventanilla schemas import`), states its facts otherwise than
//! the region routes by (item 3: computed from its fields), and has its table checked against
//! the imported schema at start (item 4). It is then submitted, delivered to its agencies,
//! acknowledged, and its invalid variants refused.

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
    assert_eq!(schema["x-imported-from"]["sha256"], ventanilla::gateway::sha256_hex(&published), "it names the file as published");
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
    let document: Value = serde_json::from_str(&std::fs::read_to_string(fixture("valid.json")).unwrap()).unwrap();
    let r = app.submit(&document).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let receipt: Value = r.json().await.unwrap();
    let agencies: Vec<&str> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap()).collect();
    assert_eq!(agencies, ["br-customs", "br-sanitary"], "{receipt:#}");
    let id = receipt["documentId"].as_str().unwrap().to_owned();

    // Its delivery: the sanitary agency's topic has it, the payload as sent.
    let sanitary = consumer(&app.brokers, &[&app.topic("agency.br-sanitary")]);
    let m = tokio::time::timeout(Duration::from_secs(60), sanitary.recv()).await.expect("the agency's topic gets it").unwrap();
    let headers: HashMap<String, String> = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
        .unwrap_or_default();
    assert_eq!(headers["ce_id"], id);
    assert_eq!(headers["ce_type"], format!("org.ventanilla.document.{TYPE}"));
    assert_eq!(serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap(), document["payload"]);

    // Its acknowledgment.
    let ack = json!({"documentId": id, "agency": "br-sanitary", "status": "released"}).to_string();
    let answer: Value = app.post_json("/v1/acknowledgments", Some("demo-br-sanitary"), &ack).await.json().await.unwrap();
    assert_eq!(answer["outcome"], "applied", "{answer:#}");

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
