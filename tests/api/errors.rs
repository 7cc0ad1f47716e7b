//! Every error status of the API, each checked for its problem+json body, and that a refused
//! request changes nothing.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, example, spawn_app};

fn declaration() -> Value {
    example("customsDeclaration/valid/export-beef-road-AR-BR.json")
}

#[tokio::test]
async fn malformed_json_is_400_with_the_position() {
    let app = spawn_app().await;
    let r = app.post_json("/v1/documents", Some("demo-trader"), "{\"documentType\": ").await;
    let p = assert_problem(r, 400, "malformed-json").await;
    assert!(p["line"].is_number() && p["column"].is_number());
}

#[tokio::test]
async fn a_body_that_is_not_json_media_type_is_415() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(format!("{}/v1/documents", app.address))
        .bearer_auth("demo-trader")
        .header("Content-Type", "text/plain")
        .body(declaration().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported-media-type").await;
    let r = app
        .client
        .post(format!("{}/v1/documents", app.address))
        .bearer_auth("demo-trader")
        .body(declaration().to_string())
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported-media-type").await;
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_413() {
    let app = spawn_app().await;
    let mut body = declaration();
    body["payload"]["padding"] = json!("x".repeat(1_100_000));
    let r = app.submit(&body).await;
    let p = assert_problem(r, 413, "payload-too-large").await;
    assert_eq!(p["limit"], 1_048_576);
}

#[tokio::test]
async fn an_unknown_document_type_is_422_naming_the_known_ones() {
    let app = spawn_app().await;
    let mut body = declaration();
    body["documentType"] = json!("airWaybill");
    let p = assert_problem(app.submit(&body).await, 422, "unknown-document-type").await;
    let known: Vec<&str> = p["knownTypes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(known.contains(&"customsDeclaration") && known.contains(&"spsCertificate"), "{known:?}");
}

#[tokio::test]
async fn an_unknown_schema_version_is_422_naming_the_known_ones() {
    let app = spawn_app().await;
    let mut body = declaration();
    body["schemaVersion"] = json!("9.0.0");
    let p = assert_problem(app.submit(&body).await, 422, "unknown-schema-version").await;
    assert_eq!(p["knownVersions"], json!(["1.0.0"]));
}

#[tokio::test]
async fn a_destination_without_agencies_is_422_unroutable() {
    let app = spawn_app().await;
    let mut body = example("commercialInvoice/valid/beef-road-AR-BR.json");
    // A document bound for Chile, envelope and payload alike (the payload's destination must be
    // the envelope's).
    body["destination"] = json!("CL");
    body["payload"]["destinationCountry"] = json!("CL");
    assert_problem(app.submit(&body).await, 422, "unroutable").await;
}

#[tokio::test]
async fn no_token_or_an_unknown_token_is_401() {
    let app = spawn_app().await;
    let r = app.post_json("/v1/documents", None, &declaration().to_string()).await;
    assert!(r.headers().get("www-authenticate").is_some());
    assert_problem(r, 401, "unauthenticated").await;
    let r = app.post_json("/v1/documents", Some("not-a-token"), &declaration().to_string()).await;
    assert_problem(r, 401, "unauthenticated").await;
    let r = app.get("/v1/consignments/ANY", None).await;
    assert_problem(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn an_agency_cannot_acknowledge_a_delivery_not_routed_to_it_and_nothing_changes() {
    let app = spawn_app().await;
    let body = declaration();
    let receipt: Value = app.submit(&body).await.json().await.unwrap();
    let doc = receipt["documentId"].as_str().unwrap();
    let ucr = receipt["ucr"].as_str().unwrap();
    let before: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();

    // uy-customs answers for itself, but the document was never routed to it: to uy-customs
    // the document does not exist (404, like an unknown one), so its existence does not leak.
    let ack = json!({"documentId": doc, "agency": "uy-customs", "status": "released"});
    let r = app.post_json("/v1/acknowledgments", Some("demo-uy-customs"), &ack.to_string()).await;
    assert_problem(r, 404, "unknown-document").await;
    // br-customs tries to answer in uy-customs' name... and in ar-customs' (which is routed).
    let ack = json!({"documentId": doc, "agency": "ar-customs", "status": "released"});
    let r = app.post_json("/v1/acknowledgments", Some("demo-br-customs"), &ack.to_string()).await;
    assert_problem(r, 403, "forbidden").await;
    // A trader cannot acknowledge at all.
    let r = app.post_json("/v1/acknowledgments", Some("demo-trader"), &ack.to_string()).await;
    assert_problem(r, 403, "forbidden").await;

    let after: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    let histories = |v: &Value| -> Vec<usize> {
        v["documents"][0]["deliveries"].as_array().unwrap().iter()
            .map(|d| d["history"].as_array().unwrap().iter().filter(|h| h["source"] == "http").count())
            .collect()
    };
    assert_eq!(histories(&before), histories(&after));
    assert_eq!(after["state"], before["state"]);
}

#[tokio::test]
async fn a_consignment_is_hidden_from_participants_it_does_not_concern() {
    let app = spawn_app().await;
    let receipt: Value = app.submit(&declaration()).await.json().await.unwrap();
    let ucr = receipt["ucr"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/consignments/{ucr}"), Some("demo-trader")).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/consignments/{ucr}"), Some("demo-br-customs")).await.status(), 200);
    let r = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-uy-customs")).await;
    assert_problem(r, 404, "not-found").await;
    let r = app.get("/v1/consignments/NO-SUCH-UCR", Some("demo-operator")).await;
    assert_problem(r, 404, "not-found").await;
}

#[tokio::test]
async fn schemas_are_listed_and_served() {
    let app = spawn_app().await;
    let list: Value = app.get("/v1/schemas", None).await.json().await.unwrap();
    let names: Vec<&str> = list["schemas"].as_array().unwrap().iter().map(|s| s["documentType"].as_str().unwrap()).collect();
    for t in ["customsDeclaration", "spsCertificate", "certificateOfOrigin", "commercialInvoice", "packingList",
              "borderCrossingNotice", "ecommerceShipment", "acknowledgment", "common", "envelope"] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }
    let r = app.get("/v1/schemas/spsCertificate/1.0.0", None).await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["$id"], "https://schemas.ventanilla.example/spsCertificate/1.0.0.json");
    assert_problem(app.get("/v1/schemas/spsCertificate/2.0.0", None).await, 404, "not-found").await;
    assert_problem(app.get("/v1/schemas/..%2F..%2Fetc/1.0.0", None).await, 404, "not-found").await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status(), 200);
    let mut body: Value = r.json().await.unwrap();
    let instance = body["instance"].as_str().map(str::to_owned).unwrap_or_default();
    assert!(instance.starts_with("gw-"), "{body:#}");
    body.as_object_mut().unwrap().remove("instance");
    assert_eq!(
        body,
        json!({"status": "ready", "store": "ok", "broker": "ok",
               "kafka": {"brokers": 1, "underReplicatedPartitions": 0, "partitionsWithoutLeader": 0},
               "outboxBacklog": 0, "claims": 0, "failedTasks": []})
    );
    assert_problem(app.get("/v1/nothing-here", None).await, 404, "not-found").await;
}

/// The region file is checked at start against the schema registry: a route that names a
/// document type the registry lacks stops the gateway, and the error names the route.
#[tokio::test]
async fn a_route_naming_an_unknown_document_type_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::settings_for(&data, "t-unknown-type.", None);
    settings.region.routes[1].document_types = vec![ventanilla::domain::DocumentType::parse("billOfLading").unwrap()];
    let name = settings.region.routes[1].name.clone();
    let err = ventanilla::startup::Application::build(settings).await.err().expect("the gateway refuses to start").to_string();
    assert!(err.contains(&format!("route {name:?}")) && err.contains("billOfLading"), "{err}");
}

/// A risk rule is checked at start against the facts of the document types it names: a rule on
/// the declared value of border-crossing notices (which state none) stops the start, and the
/// error names the rule, the type and the setting to add.
#[tokio::test]
async fn a_risk_rule_reading_a_fact_its_type_lacks_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::settings_for(&data, "t-risk-rule.", None);
    settings.region.risk.rules.push(
        toml::from_str(
            r#"name = "cheap-anything"
               reason = "Declared under 10."
               document_types = ["customsDeclaration", "borderCrossingNotice"]
               value_below = 10.0
               points = 5"#,
        )
        .unwrap(),
    );
    let err = ventanilla::startup::Application::build(settings).await.err().expect("the gateway refuses to start").to_string();
    assert!(
        err.contains("risk profiling") && err.contains("\"cheap-anything\"") && err.contains("[document_types.borderCrossingNotice]")
            && err.contains("risk.value"),
        "{err}"
    );
}

/// The region file's entries are checked against each other at start, and the error names the
/// entry: a document-type table whose schemas are missing, a national single window of a country
/// the region has no agency in, a simulation naming a type the region lacks.
#[tokio::test]
async fn region_entries_that_refer_to_nothing_stop_the_start() {
    let data = tempfile::tempdir().unwrap();
    let start = |change: &dyn Fn(&mut ventanilla::config::Settings)| {
        let mut settings = crate::helpers::settings_for(&data, "t-region-check.", None);
        change(&mut settings);
        settings
    };
    let table = start(&|_| {}).region.document_types["customsDeclaration"].clone();
    let settings = start(&|s| {
        s.region.document_types.insert("billOfLading".into(), table.clone());
    });
    let err = ventanilla::startup::Application::build(settings).await.err().expect("refused").to_string();
    assert!(err.contains("[document_types.billOfLading]") && err.contains("billOfLading/<version>.json"), "{err}");

    let settings = start(&|s| {
        s.region.indicators.simulation.as_mut().unwrap().border_notice = ventanilla::domain::DocumentType::parse("railConsignmentNote").unwrap();
    });
    let err = ventanilla::startup::Application::build(settings).await.err().expect("refused").to_string();
    assert!(err.contains("[indicators.simulation] border_notice") && err.contains("railConsignmentNote"), "{err}");

    // The region file itself: a national single window of Chile, where the region has no agency.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(crate::helpers::repo().join("config/ventanilla.toml")).unwrap();
    let text = text.replace("schemas_dir = \"../schemas\"", &format!("schemas_dir = {:?}", crate::helpers::repo().join("schemas")));
    std::fs::write(dir.path().join("ventanilla.toml"), text.replace("id = \"demo-nsw-br\"\nrole = \"nsw\"\ncountry = \"BR\"", "id = \"demo-nsw-br\"\nrole = \"nsw\"\ncountry = \"CL\"")).unwrap();
    let err = ventanilla::config::Settings::load(dir.path().into(), ventanilla::config::ServeOptions::local("127.0.0.1:0".parse().unwrap(), data.path().into()))
        .expect_err("refused")
        .to_string();
    assert!(err.contains("participant demo-nsw-br is the national single window of CL") && err.contains("AR, BR, UY"), "{err}");
}
