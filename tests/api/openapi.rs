//! `/openapi.json`, generated from the route table and the schema registry: every route is in
//! it, every reference resolves, real answers conform to it, and schemathesis (from PyPI,
//! installed by `scripts/test.sh`) run against a real gateway finds no 5xx and no answer that
//! contradicts it.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app, spawn_app_configured, test_brokers, TestApp};

async fn description(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Follows a local JSON pointer reference (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_description_has_every_route_and_references_the_document_schemas() {
    let app = spawn_app().await;
    let doc = description(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/documents", "post"),
        ("/v1/documents:batch", "post"),
        ("/v1/validate", "post"),
        ("/v1/acknowledgments", "post"),
        ("/v1/agencies/{agency}/documents", "get"),
        ("/v1/consignments/events", "get"),
        ("/v1/consignments/{ucr}", "get"),
        ("/v1/deliveries/failed", "get"),
        ("/v1/deliveries/failed/retry", "post"),
        ("/v1/deliveries/{id}/retry", "post"),
        ("/v1/schemas", "get"),
        ("/v1/schemas/{name}/{version}", "get"),
        ("/metrics", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/openapi.json", "get"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{webhook}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is described");
    }
    // Every document type of the registry is a component, and the submission body reaches it.
    let catalogue: Value = app.get("/v1/schemas", None).await.json().await.unwrap();
    let envelope = doc["components"]["schemas"]["DocumentEnvelope"].to_string();
    for entry in catalogue["schemas"].as_array().unwrap() {
        let name = entry["documentType"].as_str().unwrap();
        for v in entry["versions"].as_array().unwrap() {
            let component = format!("{name}-{}", v.as_str().unwrap());
            assert!(doc["components"]["schemas"][&component].is_object(), "{component} is a component");
            if !["envelope", "common", "acknowledgment"].contains(&name) {
                assert!(envelope.contains(&format!("#/components/schemas/{component}")), "the envelope references {component}");
            }
        }
    }
    let submit = &doc["paths"]["/v1/documents"]["post"];
    assert_eq!(submit["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/DocumentEnvelope");
    assert_eq!(submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Receipt");
    assert!(submit["responses"]["422"]["description"].as_str().unwrap().contains("`invalid-document`"));
    // No reference is left pointing at a schema file by its $id, and every one resolves.
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    for r in &refs {
        assert!(resolve(&doc, r).is_some(), "{r} resolves");
    }
}

#[tokio::test]
async fn an_unserved_method_is_405_with_allow_from_the_same_table() {
    let app = spawn_app().await;
    let r = app.client.delete(format!("{}/v1/consignments/ANY-1", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app.client.get(format!("{}/v1/documents", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = app.client.get(format!("{}/v1/nothing-here", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A query string the handler cannot read is a problem document too.
    let r = app.get("/v1/deliveries/failed?agency=br-customs&agency=ar-customs", Some("demo-operator")).await;
    crate::helpers::assert_problem(r, 400, "invalid-query").await;
    // Two templates match /v1/consignments/events; the method is listed once.
    let r = app.client.post(format!("{}/v1/consignments/events", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
}

/// A validator for the schema at `pointer` in the description, its references resolved in it.
fn validator_for(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let registry = jsonschema::Registry::new()
        .draft(jsonschema::Draft::Draft202012)
        .add("urn:ventanilla:openapi", doc.clone())
        .expect("the description is a resource")
        .prepare()
        .expect("the description's references resolve");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(&registry)
        // Braces are not allowed in a URI: percent-encoded, as RFC 6901 says for fragments.
        .build(&json!({ "$ref": format!("urn:ventanilla:openapi{}", pointer.replace('{', "%7B").replace('}', "%7D")) }))
        .expect("the schema compiles")
}

/// Checks `body` against the schema the description gives for `method path status`.
fn conforms(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let pointer = format!("#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema");
    assert!(resolve(doc, &pointer).is_some(), "the description has {pointer}");
    let validator = validator_for(doc, &pointer);
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body:#}");
}

#[tokio::test]
async fn real_answers_conform_to_the_description() {
    let app = spawn_app().await;
    let doc = description(&app).await;
    let body = example("commercialInvoice/valid/cars-sea-BR-UY.json");

    let r = app.post_json("/v1/validate", Some("demo-trader"), &body.to_string()).await;
    assert_eq!(r.status(), 200);
    conforms(&doc, "/v1/validate", "post", 200, &r.json().await.unwrap());

    let r = app.submit(&body).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    conforms(&doc, "/v1/documents", "post", 202, &receipt);
    let (doc_id, ucr) = (receipt["documentId"].as_str().unwrap(), receipt["ucr"].as_str().unwrap());
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap();

    let mut invalid = body.clone();
    invalid["payload"]["invoiceNumber"] = json!(42);
    let batch = json!([body, invalid, "not an envelope"]);
    let r = app.post_json("/v1/documents:batch", Some("demo-trader"), &batch.to_string()).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["results"][0]["replayed"], true);
    conforms(&doc, "/v1/documents:batch", "post", 200, &answer);

    let ack = json!({"documentId": doc_id, "agency": agency, "status": "hold", "reason": "inspection"});
    let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await;
    assert_eq!(r.status(), 200);
    conforms(&doc, "/v1/acknowledgments", "post", 200, &r.json().await.unwrap());

    let view = app.wait_for_state(ucr, "on_hold").await;
    conforms(&doc, "/v1/consignments/{ucr}", "get", 200, &view);

    // A document's life: a query answered, an amendment, a withdrawal; the view that shows them.
    let query = json!({"documentId": doc_id, "agency": agency, "status": "query", "reason": "which port?"});
    app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &query.to_string()).await;
    let r = app.post_json(&format!("/v1/documents/{doc_id}/responses"), Some("demo-trader"), &json!({"text": "Montevideo"}).to_string()).await;
    assert_eq!(r.status(), 202);
    conforms(&doc, "/v1/documents/{documentId}/responses", "post", 202, &r.json().await.unwrap());
    let mut amended = body.clone();
    amended["payload"]["incoterm"] = json!("FOB");
    let amendment = json!({"reason": "incoterm corrected", "document": amended});
    let r = app.post_json(&format!("/v1/documents/{doc_id}/amendments"), Some("demo-trader"), &amendment.to_string()).await;
    assert_eq!(r.status(), 202);
    let v2: Value = r.json().await.unwrap();
    conforms(&doc, "/v1/documents/{documentId}/amendments", "post", 202, &v2);
    let v2_id = v2["documentId"].as_str().unwrap();
    let r = app.post_json(&format!("/v1/documents/{v2_id}/withdrawal"), Some("demo-trader"), &json!({"reason": "cancelled"}).to_string()).await;
    assert_eq!(r.status(), 202);
    conforms(&doc, "/v1/documents/{documentId}/withdrawal", "post", 202, &r.json().await.unwrap());
    let view = app.wait_for_state(ucr, "withdrawn").await;
    conforms(&doc, "/v1/consignments/{ucr}", "get", 200, &view);

    let r = app.get(&format!("/v1/agencies/{agency}/documents?wait=1s"), Some(&format!("demo-{agency}"))).await;
    let page: Value = r.json().await.unwrap();
    let types: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["org.ventanilla.document.commercialInvoice", "org.ventanilla.query.answered", "org.ventanilla.document.amended",
         "org.ventanilla.document.withdrawn"],
        "the document, then its notices and its new version, on the agency's HTTP stream too"
    );
    conforms(&doc, "/v1/agencies/{agency}/documents", "get", 200, &page);
    let r = app.get("/v1/consignments/events?wait=1s", Some("demo-trader")).await;
    conforms(&doc, "/v1/consignments/events", "get", 200, &r.json().await.unwrap());

    for (path, token) in [("/v1/deliveries/failed", Some("demo-operator")), ("/v1/schemas", None), ("/healthz", None), ("/readyz", None)] {
        let r = app.get(path, token).await;
        assert_eq!(r.status(), 200, "{path}");
        conforms(&doc, path, "get", 200, &r.json().await.unwrap());
    }
    let r = app.post_json("/v1/deliveries/failed/retry", Some("demo-operator"), "").await;
    conforms(&doc, "/v1/deliveries/failed/retry", "post", 200, &r.json().await.unwrap());

    let r = app.post_json("/v1/webhooks", Some("demo-trader"), &json!({"url": "https://trader.example/hook"}).to_string()).await;
    assert_eq!(r.status(), 201);
    conforms(&doc, "/v1/webhooks", "post", 201, &r.json().await.unwrap());
    let r = app.get("/v1/webhooks", Some("demo-trader")).await;
    conforms(&doc, "/v1/webhooks", "get", 200, &r.json().await.unwrap());

    // Problems conform too: an invalid document's, with its violations.
    let r = app.post_json("/v1/documents", Some("demo-trader"), &invalid.to_string()).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    let pointer = "#/components/schemas/Problem";
    let validator = validator_for(&doc, pointer);
    assert!(validator.is_valid(&problem), "{problem:#}");
    assert!(!validator.is_valid(&json!({"code": "made-up", "status": 422})), "the problem schema has teeth");
}

/// The number of test cases schemathesis generated, from its summary line `N generated, ...`.
fn generated_cases(output: &str) -> Option<u64> {
    output.lines().find_map(|l| l.trim().split_once(" generated").and_then(|(n, _)| n.trim().parse().ok()))
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_contradiction() {
    // Streams and long polls end within 2 s, so every generated request is answered promptly.
    let app = spawn_app_configured(Some(test_brokers()), |s| {
        s.region.gateway.stream_max_seconds = 2;
        s.region.gateway.max_poll_wait_seconds = 2;
    })
    .await;
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    let seed = std::env::var("VENTANILLA_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let examples = std::env::var("VENTANILLA_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let url = format!("{}/openapi.json", app.address);
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .arg("--config-file")
            .arg(crate::helpers::repo().join("tests/schemathesis.toml"))
            .args(["run", &url, "--checks", "all", "-H", "Authorization: Bearer demo-trader"])
            .args(["--request-timeout", "10", "--max-examples", &examples, "--seed", &seed, "--no-color"])
            // One worker: CPython 3.11.7's parser is not thread-safe under schemathesis's
            // coverage phase ("AST constructor recursion depth mismatch").
            .args(["--workers", "1"])
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (scripts/test.sh installs it from PyPI): {e}"))
    });
    let out = tokio::time::timeout(Duration::from_secs(900), run).await.expect("schemathesis finishes").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The whole report, for reading after a failure.
    let report = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-report.txt");
    let _ = std::fs::write(&report, stdout.as_bytes());
    let tail: String = stdout.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        out.status.success(),
        "schemathesis found problems (whole report: {}):\n{tail}\n{}",
        report.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = generated_cases(&stdout).unwrap_or_else(|| panic!("no count of generated cases in:\n{tail}"));
    assert!(cases >= 1000, "schemathesis generated only {cases} cases:\n{tail}");
    eprintln!("schemathesis: {cases} generated test cases, no failure (seed {})", std::env::var("VENTANILLA_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into()));
}
