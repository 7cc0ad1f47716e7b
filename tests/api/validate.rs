//! Validation as a service: `POST /v1/validate` answers every example exactly as submission
//! would (the same problem for an invalid one, the same routing for a valid one) and stores
//! nothing; `ventanilla validate FILE...` gives the same report offline.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::{repo, spawn_app_with, TestApp};

fn examples(kind: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join(kind))
        .filter(|d| d.is_dir() && !d.starts_with(repo().join("examples/acknowledgment")))
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

fn stored(app: &TestApp) -> i64 {
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    db.query_row("SELECT (SELECT COUNT(*) FROM documents) + (SELECT COUNT(*) FROM deliveries)", [], |r| r.get(0)).unwrap()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &str) -> (u16, Value) {
    let r = app.post_json(path, Some(token), body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `ventanilla validate --as PARTICIPANT` on files: its exit code, and its output.
fn cli_as(participant: &str, files: &[PathBuf]) -> (Option<i32>, String) {
    let out = crate::support::cli()
        .arg("validate").arg("--config").arg(repo().join("config")).args(["--as", participant])
        .args(files)
        .output()
        .unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `validate --as` checks exactly what a submission by that participant would: who it may
/// submit for too; exit codes 0 (valid), 1 (refused), 2 (could not check).
#[test]
fn validate_as_a_participant_checks_whom_it_may_submit_for() {
    let beef = vec![repo().join("examples/customsDeclaration/valid/export-beef-road-AR-BR.json")];
    assert_eq!(cli_as("demo-trader", &beef).0, Some(0));
    assert_eq!(cli_as("demo-nsw-ar", &beef).0, Some(0), "the NSW of the declarant's country");
    let (code, out) = cli_as("demo-trader-2", &beef);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("\"code\":\"forbidden\"") && out.contains("may submit only as"), "{out}");
    let (code, out) = cli_as("demo-nsw-br", &beef);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(cli_as("demo-br-customs", &beef).0, Some(1), "an agency submits nothing");
    let (code, out) = cli_as("nobody", &beef);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no such participant") && out.contains("demo-trader"), "{out}");
    assert_eq!(cli_as("demo-trader", &[repo().join("examples/missing.json")]).0, Some(2), "a file that cannot be read");
}

/// `ventanilla validate` on files: (exit success, one output line per file).
fn cli(files: &[PathBuf]) -> (bool, Vec<String>) {
    let out = crate::support::cli()
        .arg("validate").arg("--config").arg(repo().join("config"))
        .args(files)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

#[tokio::test]
async fn validation_answers_as_submission_would_and_stores_nothing() {
    let app = spawn_app_with(None).await;
    let (valid, invalid) = (examples("valid"), examples("invalid"));
    assert!(valid.len() >= 30 && invalid.len() >= 50, "{} valid, {} invalid", valid.len(), invalid.len());

    // Invalid: the same status and problem from both endpoints; nothing stored by either.
    for file in &invalid {
        let body = std::fs::read_to_string(file).unwrap();
        let checked = post(&app, "/v1/validate", "demo-trader", &body).await;
        let submitted = post(&app, "/v1/documents", "demo-trader", &body).await;
        assert_eq!(checked, submitted, "{}", file.display());
        assert!(checked.0 >= 400, "{} is refused", file.display());
    }
    assert_eq!(stored(&app), 0);

    // Valid: 200 with the routing a submission then gets, and validation stores nothing.
    for file in &valid {
        let body = std::fs::read_to_string(file).unwrap();
        let (status, report) = post(&app, "/v1/validate", "demo-trader", &body).await;
        assert_eq!(status, 200, "{}: {report}", file.display());
        assert_eq!(report["valid"], true);
        let before = stored(&app);
        let (status, receipt) = post(&app, "/v1/documents", "demo-trader", &body).await;
        assert_eq!(status, 202, "{}: {receipt}", file.display());
        assert!(stored(&app) > before);
        let routed = |v: &Value, agency: &str, topic: &str| -> Vec<Value> {
            v.as_array().unwrap().iter().map(|d| json!([d[agency], d[topic], d["rule"]])).collect()
        };
        assert_eq!(routed(&report["routing"], "agency", "topic"), routed(&receipt["deliveries"], "agency", "topic"), "{}", file.display());
        let again = stored(&app);
        post(&app, "/v1/validate", "demo-trader", &body).await;
        assert_eq!(stored(&app), again, "validating stores nothing");
    }

    // Who may validate is who may submit.
    let body = std::fs::read_to_string(&valid[0]).unwrap();
    assert_eq!(post(&app, "/v1/validate", "demo-trader-2", &body).await.0, 403);
    assert_eq!(post(&app, "/v1/validate", "demo-operator", &body).await.0, 403);

    // Offline, the same report: every valid file passes; each invalid one gets the problem
    // the API answers.
    let (ok, lines) = cli(&valid);
    assert!(ok, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains(": valid {")), "{lines:#?}");
    // A file that is not even JSON is reported as the API reports such a body.
    let broken = tempfile::tempdir().unwrap();
    let broken_file = broken.path().join("broken.json");
    std::fs::write(&broken_file, "{\"documentType\": ").unwrap();
    let mut invalid = invalid;
    invalid.push(broken_file);
    let (ok, lines) = cli(&invalid);
    assert!(!ok, "refused files make the command fail");
    assert_eq!(lines.len(), invalid.len());
    for (file, line) in invalid.iter().zip(&lines) {
        let body = std::fs::read_to_string(file).unwrap();
        let (_, problem) = post(&app, "/v1/validate", "demo-trader", &body).await;
        let printed: Value = serde_json::from_str(line.split_once(": refused ").expect(line).1).unwrap();
        assert_eq!(printed, problem, "{}", file.display());
    }
}

/// A command that cannot do what was asked says so once, on standard error, its cause told once
/// (not a log line and a plain line, nor "No such file (os error 2): No such file (os error 2)").
#[test]
fn a_cli_error_is_told_once() {
    let out = crate::support::cli()
        .args(["validate", "--config", "/nonexistent-region", "x.json"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("ventanilla: cannot read the configuration file /nonexistent-region/ventanilla.toml"), "{stderr}");
    assert_eq!(lines[0].matches("os error 2").count(), 1, "{stderr}");
}

/// Issue 26, item 9: where a built-in type's payload states the consignment's origin or
/// destination, the envelope's must be the same (routing reads the envelope): a declaration
/// saying `destinationCountry: BR` sent with envelope destination `UY` is refused at the
/// payload's pointer, not routed to Uruguay. Types the routes send by a country their payload
/// never states are named at start.
#[test]
fn the_envelopes_countries_must_be_those_the_payload_states() {
    // (type, envelope member, where its payload states it)
    const STATED: [(&str, &str, &str); 9] = [
        ("customsDeclaration", "origin", "/exportCountry"),
        ("customsDeclaration", "destination", "/destinationCountry"),
        ("spsCertificate", "origin", "/exportCountry"),
        ("spsCertificate", "destination", "/importCountry"),
        ("certificateOfOrigin", "origin", "/exportCountry"),
        ("certificateOfOrigin", "destination", "/importCountry"),
        ("commercialInvoice", "origin", "/exportCountry"),
        ("commercialInvoice", "destination", "/destinationCountry"),
        ("ecommerceShipment", "destination", "/consignee/address/country"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for file in examples("valid") {
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (_, member, pointer) in STATED.iter().filter(|(t, _, _)| body["documentType"] == *t) {
            // The region's third country: neither the origin nor the destination.
            let elsewhere = ["AR", "BR", "UY"].into_iter().find(|c| body["origin"] != *c && body["destination"] != *c).unwrap();
            assert_eq!(body[*member], body["payload"].pointer(pointer).unwrap().clone(), "{}: the example agrees", file.display());
            let mut changed = body.clone();
            changed[*member] = json!(elsewhere);
            let path = dir.path().join(format!("{}-{member}.json", file.file_stem().unwrap().to_string_lossy()));
            std::fs::write(&path, changed.to_string()).unwrap();
            cases.push((path, format!("/payload{pointer}")));
        }
    }
    assert!(cases.iter().any(|(p, at)| p.ends_with("export-beef-road-AR-BR-destination.json") && at == "/payload/destinationCountry"));
    assert_eq!(cases.len(), 40, "every valid example of the types that state a country");
    let files: Vec<PathBuf> = cases.iter().map(|(p, _)| p.clone()).collect();
    let out = crate::support::cli()
        .arg("validate").arg("--config").arg(repo().join("config")).args(["--as", "demo-trader"])
        .args(&files)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for ((file, at), line) in cases.iter().zip(stdout.lines()) {
        let problem: Value = serde_json::from_str(line.split_once(": refused ").unwrap_or_else(|| panic!("{} passed: {line}", file.display())).1).unwrap();
        assert_eq!(problem["code"], "invalid-document", "{line}");
        let errors = problem["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{line}");
        assert_eq!((errors[0]["pointer"].as_str(), errors[0]["keyword"].as_str()), (Some(at.as_str()), Some("const")), "{line}");
    }

    // At start: nothing of the shipped types, whose payloads state their countries or which say
    // they state none (`countries_from_envelope`)...
    assert!(!stderr.contains("names no `"), "{stderr}");
    // ...but a type the routes send by its destination, whose payload states none, unsaid, is
    // named with the route.
    let mut region = crate::helpers::shipped_region();
    region.document_types.get_mut("packingList").unwrap().countries_from_envelope = false;
    let registry = ventanilla::schema::SchemaRegistry::of_region(&repo().join("schemas"), &region).unwrap();
    let warnings = registry.warnings().join("\n");
    assert!(warnings.contains("[document_types.packingList] names no `destination` pointer"), "{warnings}");
    assert!(warnings.contains("countries_from_envelope = true if it states none"), "{warnings}");
    // And a type routed by its origin without an origin pointer is named with the route.
    let mut region = crate::helpers::shipped_region();
    region.document_types.get_mut("customsDeclaration").unwrap().origin.clear();
    let registry = ventanilla::schema::SchemaRegistry::of_region(&repo().join("schemas"), &region).unwrap();
    let warnings = registry.warnings().join("\n");
    assert!(
        warnings.contains("[document_types.customsDeclaration] names no `origin` pointer, and route \"declarations also go to the customs of the origin"),
        "{warnings}"
    );
}

/// Issue 29, item 7: what the operator should know of a region's schemas is listed by
/// `ventanilla schemas` (and logged once at each start), not repeated by every
/// `ventanilla validate` in a CI log; `schemas diff` takes `--config` as every command does.
#[test]
fn warnings_are_listed_by_schemas_not_repeated_by_validate_and_diff_takes_config() {
    let region = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    // A table whose submitter states no country: warned about.
    let text = text.replace(
        "submitter = { party = \"seller\", identifier = \"/seller/identifier/value\", scheme = \"/seller/identifier/scheme\", country = \"/seller/address/country\" }",
        "submitter = { party = \"seller\", identifier = \"/seller/identifier/value\", scheme = \"/seller/identifier/scheme\" }",
    );
    assert!(!text.contains("country = \"/seller/address/country\" }"), "the invoice's submitter line was found and changed");
    std::fs::write(region.path().join("ventanilla.toml"), text.replace("schemas_dir = \"../schemas\"", &format!("schemas_dir = {:?}", repo().join("schemas")))).unwrap();
    let run = |args: &[&str]| crate::support::run_cli(args);
    let config = region.path().to_str().unwrap();
    let listed = run(&["schemas", "--config", config]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stderr).contains("names no `country`"), "listed: {}", String::from_utf8_lossy(&listed.stderr));
    let example = repo().join("examples/customsDeclaration/valid/export-beef-road-AR-BR.json");
    let checked = run(&["validate", "--config", config, example.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(!String::from_utf8_lossy(&checked.stderr).contains("warning"), "validate repeats nothing: {}", String::from_utf8_lossy(&checked.stderr));
    let schema = repo().join("schemas/customsDeclaration/1.0.0.json");
    let diff = run(&["schemas", "diff", "--config", config, schema.to_str().unwrap(), schema.to_str().unwrap()]);
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stderr));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("declared compatibility (backward): kept"));
}
