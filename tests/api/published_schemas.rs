//! Schemas as their publishers write them (issue 17): the test schemas under
//! `tests/fixtures/published-schemas/` (our own, in the styles of standards bodies: draft 4,
//! 2019-09 with `$recursiveRef`, 2020-12 with a publisher `$id` and an `$id`-less file beside it)
//! load beside the repository's, keep their `$id` and draft, resolve their relative references,
//! and become document types through a table in the region file only. Schemas that cannot work
//! as written (OpenAPI keywords, a keyword of the wrong type, an unknown `$schema`, a reference
//! to nothing) stop the load with the file and the JSON pointer to fix.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use ventanilla::config::{DocumentTypeConfig, RegionConfig};
use ventanilla::schema::{Rejection, SchemaRegistry};

use crate::helpers::{copy_dir, repo, shipped_region, spawn_app_configured, test_brokers};

/// The region file's tables for the three test types.
const TABLES: &str = r#"
[veterinaryHealthCertificate]
submitter = { party = "exporter", identifier = "/exporter/taxId", scheme = "/exporter/taxScheme", country = "/exporter/country" }
hs_codes = "/consignments/*/hsCode"
mode_of_transport = "/transportModeCode"
modes = { "1" = "sea", "2" = "rail", "3" = "road", "4" = "air" }

[dangerousGoodsManifest]
submitter = { party = "shipper", identifier = "/shipper/taxId", scheme = "/shipper/scheme" }

[weighbridgeTicket]
submitter = { party = "operator", identifier = "/operator/cuit", scheme = "AR-CUIT" }
border_post = "/weighbridge"
"#;

/// The repository's schemas and the published ones, in one directory.
fn schemas_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("schemas"), dir.path());
    copy_dir(&repo().join("tests/fixtures/published-schemas"), dir.path());
    std::fs::remove_file(dir.path().join("README.md")).unwrap();
    dir
}

/// The shipped region with the test types described.
fn region() -> RegionConfig {
    let mut region = shipped_region();
    let tables: BTreeMap<String, DocumentTypeConfig> = toml::from_str(TABLES).unwrap();
    region.document_types.extend(tables);
    region
}

fn envelope(document_type: &str, payload: Value) -> Value {
    json!({"documentType": document_type, "ucr": "5AR30714255831-C0781", "origin": "AR", "destination": "BR", "payload": payload})
}

fn certificate(net_mass: f64) -> Value {
    envelope(
        "veterinaryHealthCertificate",
        json!({
            "certificateId": "VHC-20260001",
            "exporter": {"name": "Frigorífico del Litoral S.A.", "taxId": "30714255831", "taxScheme": "AR-CUIT", "country": "AR"},
            "consignments": [{"hsCode": 20130, "netMassKg": net_mass}],
            "transportModeCode": 3
        }),
    )
}

fn manifest(inner_un_number: Option<&str>) -> Value {
    let mut inner = json!({"packageType": "drum"});
    if let Some(un) = inner_un_number {
        inner["unNumber"] = json!(un);
    }
    envelope(
        "dangerousGoodsManifest",
        json!({
            "unNumber": "UN1203",
            "packageType": "pallet",
            "shipper": {"taxId": "30714255831", "scheme": "AR-CUIT"},
            "inner": [{"unNumber": "UN1203", "packageType": "box", "inner": [inner]}]
        }),
    )
}

fn ticket(tare_kg: f64) -> Value {
    envelope(
        "weighbridgeTicket",
        json!({
            "ticket": "WB-0001",
            "operator": {"cuit": "30714255831"},
            "gross": {"value": 42000, "unit": "KGM"},
            "tare": {"value": tare_kg, "unit": "KGM"},
            "weighbridge": "ARPSL"
        }),
    )
}

fn violations(r: Result<ventanilla::schema::ValidDocument, Rejection>) -> Vec<(String, String)> {
    match r {
        Err(Rejection::Invalid(v)) => v.into_iter().map(|v| (v.pointer, v.keyword)).collect(),
        other => panic!("expected violations, got {other:?}"),
    }
}

/// Every `$ref` in `doc` is local and reaches something in it.
fn assert_refs_resolve(doc: &Value) {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) => out.push(r.clone()),
                _ => walk(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        // `#` alone is the recursion of a tree to its own root, which OpenAPI tools read as such.
        if r == "#" {
            continue;
        }
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not a reference inside the document"));
        assert!(doc.pointer(pointer).is_some(), "{r} reaches nothing");
    }
}

#[test]
fn published_schemas_load_with_their_ids_drafts_and_relative_references() {
    let dir = schemas_dir();
    let registry = SchemaRegistry::of_region(dir.path(), &region()).expect("the published schemas load");

    // A keyword of no draft is told, with the file and pointer, and does not stop the load.
    let warnings = registry.warnings().join("\n");
    assert!(
        warnings.contains("weighbridgeTicket/1.0.0.json, at /properties/ticket/maxLenght") && warnings.contains("\"maxLenght\""),
        "{warnings}"
    );
    let types: Vec<String> = registry.document_types().into_iter().map(|(t, _)| t).collect();
    for t in ["veterinaryHealthCertificate", "dangerousGoodsManifest", "weighbridgeTicket", "customsDeclaration"] {
        assert!(types.contains(&t.to_owned()), "{t} in {types:?}");
    }
    assert!(!types.iter().any(|t| t == "trees" || t == "common"), "definition folders are not document types: {types:?}");

    // Draft 4: a boolean exclusiveMinimum, honoured as draft 4 means it.
    assert_eq!(violations(registry.validate_submission(&certificate(0.0))), [("/payload/consignments/0/netMassKg".to_owned(), "exclusiveMinimum".to_owned())]);
    let valid = registry.validate_submission(&certificate(0.5)).expect("a positive mass is valid");
    assert_eq!(valid.schema_id, "https://vet.example.net/schemas/vhc/1.0.0", "the publisher's id is kept");
    assert_eq!(valid.party.identifier.as_ref().map(|i| i.qualified()).as_deref(), Some("AR-CUIT:30714255831"));
    assert_eq!(valid.facts.hs_chapters, [2], "an HS code written as a number, its leading zero lost");
    assert_eq!(valid.facts.mode_of_transport.as_deref(), Some("road"), "transport mode code 3, in the region's words");

    // 2019-09: $recursiveRef in the shared tree follows the manifest's $recursiveAnchor, so a
    // package two levels down must name its UN number too.
    let deep = violations(registry.validate_submission(&manifest(None)));
    assert_eq!(deep, [("/payload/inner/0/inner/0/unNumber".to_owned(), "required".to_owned())]);
    registry.validate_submission(&manifest(Some("UN1203"))).expect("every package names its UN number");

    // 2020-12 with a publisher $id, its definitions in an $id-less file beside it.
    assert_eq!(violations(registry.validate_submission(&ticket(0.0))), [("/payload/tare/value".to_owned(), "exclusiveMinimum".to_owned())]);
    let valid = registry.validate_submission(&ticket(14000.0)).expect("valid");
    assert_eq!(valid.party.identifier.as_ref().map(|i| i.qualified()).as_deref(), Some("AR-CUIT:30714255831"), "a scheme fixed for the type");
    assert_eq!(valid.facts.border_post.as_deref(), Some("ARPSL"));
    // A member named in Spanish (percent-encoded in the keyword's location) has its hint found.
    let mut scale = ticket(14000.0);
    scale["payload"]["báscula"] = json!("7");
    match registry.validate_submission(&scale) {
        Err(Rejection::Invalid(v)) => {
            assert_eq!((v.len(), v[0].pointer.as_str()), (1, "/payload/báscula"), "{v:#?}");
            assert!(v[0].message.starts_with("Báscula: B and 2 digits, for example B07"), "{v:#?}");
        }
        other => panic!("expected a violation, got {other:?}"),
    }

    // In /openapi.json every reference, by $id, relative or to an $id-less file, is rewritten to
    // a component that exists.
    let components = registry.components();
    for c in ["veterinaryHealthCertificate-1.0.0", "dangerousGoodsManifest-1.0.0", "trees-package-tree", "weighbridgeTicket-measurement"] {
        assert!(components.contains_key(c), "{c} in {:?}", components.keys().collect::<Vec<_>>());
    }
    let doc = json!({"components": {"schemas": components}});
    assert_eq!(doc.pointer("/components/schemas/weighbridgeTicket-1.0.0/properties/gross/$ref"), Some(&json!("#/components/schemas/weighbridgeTicket-measurement/$defs/mass")));
    assert_eq!(doc.pointer("/components/schemas/weighbridgeTicket-1.0.0/properties/gross/$ref"), doc.pointer("/components/schemas/weighbridgeTicket-1.0.0/properties/tare/$ref"), "an $anchor is found");
    assert_eq!(doc.pointer("/components/schemas/dangerousGoodsManifest-1.0.0/$ref"), Some(&json!("#/components/schemas/trees-package-tree")));
    assert_refs_resolve(&doc);
}

/// Loads `dir` after `change` wrote into it, and returns the error.
fn refused(change: impl FnOnce(&Path)) -> String {
    let dir = schemas_dir();
    change(dir.path());
    match SchemaRegistry::of_region(dir.path(), &region()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

fn edit(dir: &Path, file: &str, change: impl FnOnce(&mut Value)) {
    let path = dir.join(file);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn schemas_that_cannot_work_as_written_are_refused_naming_the_file_and_the_pointer() {
    let file = "veterinaryHealthCertificate/1.0.0.json";
    let err = refused(|d| edit(d, file, |s| s["properties"]["certificateId"]["nullable"] = json!(true)));
    assert!(err.contains(file) && err.contains("at /properties/certificateId/nullable") && err.contains("OpenAPI"), "{err}");
    assert!(err.contains(r#"Write "type": ["string", "null"] instead"#), "the fix: {err}");

    let err = refused(|d| edit(d, file, |s| s["definitions"]["party"]["properties"]["name"]["example"] = json!("ACME")));
    assert!(err.contains("at /definitions/party/properties/name/example") && err.contains(r#""examples": ["#), "{err}");

    let err = refused(|d| edit(d, file, |s| s["properties"]["consignments"]["discriminator"] = json!({"propertyName": "kind"})));
    assert!(err.contains("discriminator") && err.contains("oneOf") && err.contains("\"kind\""), "{err}");

    // A keyword of the wrong type: the compile error names the file and where.
    let err = refused(|d| edit(d, file, |s| s["definitions"]["party"]["properties"]["name"]["minLength"] = json!("one")));
    assert!(err.contains(file) && err.contains("at /definitions/party/properties/name/minLength"), "{err}");

    let err = refused(|d| edit(d, file, |s| s["$schema"] = json!("https://json-schema.org/draft-05/schema")));
    assert!(err.contains(file) && err.contains("draft-05") && err.contains("draft 2019-09"), "{err}");

    // A relative reference to a file nobody provided: the referring file, the pointer, the URI.
    let err = refused(|d| std::fs::remove_file(d.join("weighbridgeTicket/measurement.json")).unwrap());
    assert!(err.contains("weighbridgeTicket/1.0.0.json") && err.contains("/properties/gross/$ref"), "{err}");
    assert!(err.contains("https://ports.example.com/wb/measurement.json"), "{err}");
    // Another standard's file of the same name elsewhere does not confuse the one beside it.
    let dir = schemas_dir();
    std::fs::create_dir(dir.path().join("otherStandard")).unwrap();
    std::fs::write(dir.path().join("otherStandard/measurement.json"), r#"{"$defs": {"mass": {"type": "string"}}}"#).unwrap();
    std::fs::create_dir(dir.path().join("iso")).unwrap();
    std::fs::write(dir.path().join("iso/3166.json"), r#"{"$defs": {"alpha2": {"type": "string"}}}"#).unwrap();
    std::fs::create_dir(dir.path().join("billOfLading")).unwrap();
    std::fs::copy(dir.path().join("trees/package-tree.json"), dir.path().join("billOfLading/1.0.0.json")).unwrap();
    edit(dir.path(), "billOfLading/1.0.0.json", |s| s["$id"] = json!("https://bl.example.org/1.0.0.json"));
    // A property named as a keyword holds a schema like any other; two places, one name.
    edit(dir.path(), "weighbridgeTicket/1.0.0.json", |s| s["properties"]["default"] = json!({"$ref": "measurement.json#/$defs/mass"}));
    for (folder, file) in [("a-b", "c.json"), ("a", "b-c.json")] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join(file), r#"{"type": "string"}"#).unwrap();
    }
    let registry = SchemaRegistry::of_region(dir.path(), &region()).expect("loads");
    assert_eq!(violations(registry.validate_submission(&ticket(0.0))), [("/payload/tare/value".to_owned(), "exclusiveMinimum".to_owned())]);
    let components = registry.components();
    assert!(components.contains_key("a-b-c") && components.contains_key("a-b-c-2"), "{:?}", components.keys().collect::<Vec<_>>());
    let doc = json!({"components": {"schemas": components}});
    assert_eq!(doc.pointer("/components/schemas/weighbridgeTicket-1.0.0/properties/default/$ref"), Some(&json!("#/components/schemas/weighbridgeTicket-measurement/$defs/mass")));
    assert_refs_resolve(&doc);
    let warnings = registry.warnings().join("\n");
    assert!(warnings.contains("billOfLading/") && warnings.contains("add [document_types.billOfLading]"), "a forgotten table is told: {warnings}");
    assert!(!warnings.contains("iso/") && !warnings.contains("common/"), "definitions are not types: {warnings}");

    // A reference to a missing place in a file that exists; an error inside a referenced file,
    // told in that file; a nullable: false.
    let err = refused(|d| edit(d, file, |s| s["properties"]["exporter"]["$ref"] = json!("#/definitions/exporter")));
    assert!(err.contains(file) && err.contains("at /properties/exporter/$ref") && err.contains("nothing at /definitions/exporter"), "{err}");
    let err = refused(|d| edit(d, "weighbridgeTicket/measurement.json", |s| s["$defs"]["mass"]["properties"]["value"]["exclusiveMinimum"] = json!("0")));
    assert!(err.contains("weighbridgeTicket/measurement.json") && err.contains("at /$defs/mass/properties/value/exclusiveMinimum"), "{err}");
    let err = refused(|d| edit(d, file, |s| s["properties"]["certificateId"]["nullable"] = json!(false)));
    assert!(err.contains("Remove it"), "{err}");
    // A file named like a version, wrongly.
    let err = refused(|d| {
        std::fs::copy(d.join(file), d.join("veterinaryHealthCertificate/1.1.json")).unwrap();
    });
    assert!(err.contains("1.1.json") && err.contains("<major>.<minor>.<patch>.json"), "{err}");
    // A reference elsewhere on the web is not bound to a local file of the same name.
    let err = refused(|d| edit(d, "weighbridgeTicket/1.0.0.json", |s| s["properties"]["gross"]["$ref"] = json!("https://elsewhere.example.org/zzz/measurement.json#/$defs/mass")));
    assert!(err.contains("/properties/gross/$ref") && err.contains("elsewhere.example.org"), "{err}");

    // A table describing a type with no schema, and two files with one $id.
    let err = refused(|d| std::fs::remove_dir_all(d.join("dangerousGoodsManifest")).unwrap());
    assert!(err.contains("[document_types.dangerousGoodsManifest]") && err.contains("no schema"), "{err}");
    let err = refused(|d| {
        std::fs::copy(d.join(file), d.join("veterinaryHealthCertificate/1.1.0.json")).unwrap();
    });
    assert!(err.contains("1.1.0.json") && err.contains("also"), "{err}");
}

/// A gateway given only schema files and tables takes the new types: a trader submits one and it
/// is routed by what the table reads (HS chapter 02 brings the sanitary agency), and
/// `/openapi.json` and `/asyncapi.json` hold no reference that leads nowhere.
#[tokio::test]
async fn a_type_described_in_the_region_file_is_submitted_routed_and_published() {
    let dir = schemas_dir();
    let schemas = dir.path().to_owned();
    let app = spawn_app_configured(Some(test_brokers()), move |s| {
        s.region.document_types = region().document_types;
        s.region.gateway.schemas_dir = schemas;
    })
    .await;
    let r = app.submit(&certificate(1200.0)).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let receipt: Value = r.json().await.unwrap();
    let agencies: Vec<&str> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap()).collect();
    assert_eq!(agencies, ["br-customs", "br-sanitary"], "{receipt:#}");

    // Another trader's exporter: refused, naming the party the table points at.
    let mut other = certificate(1.0);
    other["payload"]["exporter"]["taxId"] = json!("20111111112");
    let problem = crate::helpers::assert_problem(app.submit(&other).await, 403, "forbidden").await;
    assert!(problem["detail"].as_str().unwrap().contains("exporter is AR-CUIT:20111111112"), "{problem:#}");
    // The table's party identifier is checked by its scheme, though this schema does not ask.
    other["payload"]["exporter"]["taxId"] = json!("30-71425583-1");
    let problem = crate::helpers::assert_problem(app.submit(&other).await, 422, "invalid-document").await;
    assert_eq!(problem["errors"][0]["pointer"], "/payload/exporter/taxId", "{problem:#}");

    let openapi: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_refs_resolve(&openapi);
    let asyncapi: Value = app.get("/asyncapi.json", None).await.json().await.unwrap();
    assert_refs_resolve(&asyncapi);
    let served: Value = app.get("/v1/schemas/veterinaryHealthCertificate/1.0.0", Some("demo-trader")).await.json().await.unwrap();
    assert_eq!(served["id"], "https://vet.example.net/schemas/vhc/1.0.0#", "served as published");
    app.stop().await;
}
