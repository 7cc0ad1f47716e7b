//! Every example under `examples/` is submitted: valid ones are accepted and routed, invalid
//! ones refused with 422 and every violation listed.

use serde_json::Value;

use crate::helpers::{assert_problem, repo, spawn_app};

fn files(doc_type: &str, kind: &str) -> Vec<(String, Value)> {
    let dir = repo().join("examples").join(doc_type).join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

const DOCUMENT_TYPES: [&str; 7] = [
    "customsDeclaration",
    "spsCertificate",
    "certificateOfOrigin",
    "commercialInvoice",
    "packingList",
    "borderCrossingNotice",
    "ecommerceShipment",
];

#[tokio::test]
async fn every_valid_example_is_accepted_and_routed() {
    let app = spawn_app().await;
    let mut count = 0;
    for t in DOCUMENT_TYPES {
        let valid = files(t, "valid");
        assert!(valid.len() >= 2, "{t} has at least two valid examples");
        for (name, body) in valid {
            let r = app.submit(&body).await;
            let status = r.status().as_u16();
            let receipt: Value = r.json().await.unwrap();
            assert_eq!(status, 202, "{t}/valid/{name}: {receipt:#}");
            assert_eq!(receipt["ucr"], body["ucr"]);
            assert_eq!(receipt["documentType"], t);
            assert!(receipt["documentId"].as_str().unwrap().len() == 36);
            let deliveries = receipt["deliveries"].as_array().unwrap();
            assert!(!deliveries.is_empty(), "{t}/valid/{name} is routed");
            let dest = body["destination"].as_str().unwrap().to_lowercase();
            assert!(
                deliveries.iter().any(|d| d["agency"] == format!("{dest}-customs")),
                "{t}/valid/{name} reaches the destination's customs"
            );
            // Nothing is answered yet, but for a parcel under its destination's de minimis,
            // which its agencies' standing instruction releases as it is accepted (docs/risk.md).
            let de_minimis = t == "ecommerceShipment" && body["payload"]["totalDeclaredValue"]["value"].as_f64().is_some_and(|v| v < 50.0);
            assert!(deliveries.iter().all(|d| d["status"] == "pending" || (de_minimis && d["status"] == "released")), "{receipt:#}");
            count += 1;
        }
    }
    assert!(count >= 14);
}

#[tokio::test]
async fn every_invalid_example_is_refused_with_each_violation_pointed_at() {
    let app = spawn_app().await;
    for t in DOCUMENT_TYPES {
        let invalid = files(t, "invalid");
        assert!(invalid.len() >= 3, "{t} has at least three invalid examples");
        for (name, body) in invalid {
            let r = app.submit(&body).await;
            let problem = assert_problem(r, 422, "invalid-document").await;
            let errors = problem["errors"].as_array().unwrap_or_else(|| panic!("{t}/{name}: {problem:#}"));
            assert!(!errors.is_empty(), "{t}/invalid/{name}");
            for e in errors {
                let pointer = e["pointer"].as_str().unwrap();
                assert!(pointer.is_empty() || pointer.starts_with('/'), "{pointer}");
                assert!(e["keyword"].is_string() && e["message"].is_string(), "{e}");
            }
        }
    }
    // Nothing was stored: no consignment of any invalid example exists.
    for t in DOCUMENT_TYPES {
        for (name, body) in files(t, "invalid") {
            if let Some(ucr) = body["ucr"].as_str() {
                let r = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await;
                assert_eq!(r.status().as_u16(), 404, "{t}/invalid/{name} left nothing behind");
            }
        }
    }
}

#[tokio::test]
async fn the_invalid_examples_name_the_field_that_is_wrong() {
    let app = spawn_app().await;
    let cases = [
        ("customsDeclaration/invalid/bad-hs-code.json", "/payload/goodsItems/0/hsCode", "pattern"),
        ("customsDeclaration/invalid/missing-consignee.json", "/payload/consignee", "required"),
    ];
    for (path, pointer, keyword) in cases {
        let body = crate::helpers::example(path);
        let problem = assert_problem(app.submit(&body).await, 422, "invalid-document").await;
        let errors = problem["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["pointer"] == pointer && e["keyword"] == keyword),
            "{path}: expected {keyword} at {pointer}, got {problem:#}"
        );
    }
    let body = crate::helpers::example("customsDeclaration/invalid/extra-field.json");
    let problem = assert_problem(app.submit(&body).await, 422, "invalid-document").await;
    assert!(problem["errors"].as_array().unwrap().iter().any(|e| e["keyword"] == "additionalProperties"));
}

#[tokio::test]
async fn acknowledgment_examples_pass_or_fail_their_schema() {
    let app = spawn_app().await;
    for (name, body) in files("acknowledgment", "valid") {
        let agency = body["agency"].as_str().unwrap();
        let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &body.to_string()).await;
        // Valid, but about a document this gateway never saw.
        assert_problem(r, 404, "unknown-document").await;
        let _ = name;
    }
    for (name, body) in files("acknowledgment", "invalid") {
        let r = app.post_json("/v1/acknowledgments", Some("demo-br-customs"), &body.to_string()).await;
        let p = assert_problem(r, 422, "invalid-acknowledgment").await;
        assert!(!p["errors"].as_array().unwrap().is_empty(), "{name}");
    }
}
