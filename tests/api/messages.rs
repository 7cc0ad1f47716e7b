//! Errors a trader can act on (issue 18): the mistakes people make with the shipped schemas are
//! told in their words, from the schemas' `x-hint`s (every pattern, enum and format has one),
//! bounds as people say them, one error per mistake; and party identifiers are checked as their
//! country defines them, online and offline alike.

use serde_json::{json, Value};
use ventanilla::pointer::Violation;
use ventanilla::schema::{Rejection, SchemaRegistry};

use crate::helpers::{example, registry_of, repo};

fn registry() -> SchemaRegistry {
    registry_of(&repo().join("schemas")).expect("the shipped schemas load")
}

/// Nodes with a pattern, enum or format, outside the conditions of `if` (never reported).
fn checked_nodes(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            if ["pattern", "enum", "format"].iter().any(|k| map.contains_key(*k)) {
                out.push((at.clone(), v.clone()));
            }
            for (k, sub) in map {
                if !["if", "enum", "const", "examples", "default"].contains(&k.as_str()) {
                    checked_nodes(sub, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, sub)| checked_nodes(sub, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// Every `.json` file under `dir`, at any depth (the registry loads them all).
fn schema_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            schema_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// Whether `text` names `word` as a word of its own (`EXW` in "EXW, FCA", not `CA` in "FCA").
fn names(text: &str, word: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(word).any(|(i, _)| edge(text[..i].chars().next_back()) && edge(text[i + word.len()..].chars().next()))
}

#[test]
fn every_pattern_enum_and_format_of_the_shipped_schemas_carries_a_hint() {
    let mut files = Vec::new();
    schema_files(&repo().join("schemas"), &mut files);
    let mut checked = 0;
    for path in files {
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut nodes = Vec::new();
        checked_nodes(&schema, String::new(), &mut nodes);
        for (at, node) in nodes {
            let place = format!("{}#{at}", path.display());
            let hint = node.get("x-hint").and_then(Value::as_str).unwrap_or_else(|| panic!("{place} has no x-hint"));
            match node.get("enum").and_then(Value::as_array) {
                // A short list is told whole; a long one by an example.
                Some(values) if values.len() <= 12 => {
                    for v in values {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        assert!(names(hint, &v), "{place}: the hint {hint:?} does not name {v:?}");
                    }
                }
                _ => assert!(hint.contains("for example "), "{place}: the hint {hint:?} gives no example"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked} hinted nodes");
    assert!(names("EXW, FCA or FOB", "FCA") && !names("EXW, FCA or FOB", "CA"), "a value is named as a word");
}

/// The declaration of the walkthrough with `change` made, as the registry judges it.
fn judged(registry: &SchemaRegistry, change: impl FnOnce(&mut Value)) -> Vec<Violation> {
    let mut body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    change(&mut body);
    match registry.validate_submission(&body) {
        Err(Rejection::Invalid(v)) => v,
        other => panic!("expected violations, got {other:?}"),
    }
}

fn one(violations: Vec<Violation>, pointer: &str) -> String {
    assert_eq!(violations.len(), 1, "one mistake, one error: {violations:#?}");
    assert_eq!(violations[0].pointer, pointer, "{violations:#?}");
    violations[0].message.clone()
}

#[test]
fn the_mistakes_people_make_are_told_in_their_words() {
    let r = registry();
    let m = one(judged(&r, |b| b["payload"]["goodsItems"][0]["hsCode"] = json!("O2013000")), "/payload/goodsItems/0/hsCode");
    assert!(m.contains("HS code: 6, 8 or 10 digits") && m.contains("for example 020130") && m.contains("\"O2013000\""), "{m}");

    let m = one(judged(&r, |b| b["destination"] = json!("br")), "/destination");
    assert!(m.contains("ISO 3166-1 alpha-2 code in capitals, for example BR") && !m.contains("249"), "{m}");
    let m = one(judged(&r, |b| b["payload"]["consignee"]["address"]["country"] = json!("Brasil")), "/payload/consignee/address/country");
    assert!(m.contains("for example BR") && m.contains("\"Brasil\""), "{m}");
    let m = one(judged(&r, |b| b["payload"]["invoiceAmount"]["currency"] = json!("usd")), "/payload/invoiceAmount/currency");
    assert!(m.contains("ISO 4217 code in capitals, for example USD"), "{m}");

    let m = one(judged(&r, |b| b["payload"]["goodsItems"][0]["netMass"] = json!(0)), "/payload/goodsItems/0/netMass");
    assert!(m.starts_with("must be greater than 0"), "{m}");
    let m = one(judged(&r, |b| b["payload"]["goodsItems"][0]["netMass"] = json!("14300")), "/payload/goodsItems/0/netMass");
    assert_eq!(m, "must be a number, not the text \"14300\"");

    // A value far too long is quoted by its start, never whole.
    let long = "O".repeat(100_000);
    let m = one(judged(&r, |b| b["payload"]["goodsItems"][0]["hsCode"] = json!(long)), "/payload/goodsItems/0/hsCode");
    assert!(m.contains("HS code: 6, 8 or 10 digits") && m.len() <= 310, "{} bytes: {m:.80}", m.len());
    let m = one(judged(&r, |b| b["payload"]["goodsItems"][0]["netMass"] = json!(long)), "/payload/goodsItems/0/netMass");
    assert_eq!(m, "must be a number, not a text");

    // A date in the local way: one error (not the pattern and the format), with the way wanted.
    let m = one(judged(&r, |b| b["payload"]["declarationDateTime"] = json!("10/03/2025 14:22")), "/payload/declarationDateTime");
    assert!(m.contains("for example 2025-03-10T14:22:00-03:00"), "{m}");
}

#[test]
fn tax_ids_are_checked_as_their_country_defines_them() {
    let r = registry();
    let at = "/payload/declarant/identifier/value";
    let m = one(judged(&r, |b| b["payload"]["declarant"]["identifier"]["value"] = json!("30-71425583-1")), at);
    assert!(m.contains("AR-CUIT") && m.contains("11 digits, without dashes") && m.contains("30714255831"), "{m}");
    let m = one(judged(&r, |b| b["payload"]["declarant"]["identifier"]["value"] = json!("30714255832")), at);
    assert!(m.contains("check digit"), "{m}");
    // A value that breaks the field's own pattern too is one mistake: the field's hint tells it.
    let m = one(judged(&r, |b| b["payload"]["declarant"]["identifier"]["value"] = json!("30714255831,")), at);
    assert!(m.starts_with("Identifier: as issued"), "{m}");
    let m = one(judged(&r, |b| b["payload"]["consignee"]["identifier"]["value"] = json!("59104422000151")), "/payload/consignee/identifier/value");
    assert!(m.contains("BR-CNPJ") && m.contains("check digit"), "every party, not only the submitting one: {m}");
    // A scheme the region has no check for is taken as written.
    let mut body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    body["payload"]["consignee"]["identifier"] = json!({"scheme": "EORI", "value": "DE123456789012345"});
    r.validate_submission(&body).expect("no check for EORI");

    // Offline, as in a pipeline: the same refusal, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let mut body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    body["payload"]["declarant"]["identifier"]["value"] = json!("30-71425583-1");
    let file = dir.path().join("dashes.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let out = crate::support::cli().arg("validate").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(at) && stdout.contains("without dashes"), "{stdout}");
}

/// `examples/README.md`'s table of invalid examples is what the gateway answers: for each file,
/// one violation, at the pointer and with the keyword the table gives.
#[test]
fn the_examples_table_matches_the_answers() {
    let r = registry();
    let readme = std::fs::read_to_string(repo().join("examples/README.md")).unwrap();
    let mut wrong = Vec::new();
    let mut rows = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `") && l.contains("/invalid/")) {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        let (file, pointer, keyword) = (cells[1], cells[3], cells[4]);
        let pointer = if pointer == "(root)" { "" } else { pointer };
        let body = example(file);
        let got: Vec<(String, String)> = if file.starts_with("acknowledgment/") {
            r.validate_acknowledgment(&body).expect_err(file).into_iter().map(|v| (v.pointer, v.keyword)).collect()
        } else {
            match r.validate_submission(&body) {
                Err(Rejection::Invalid(v)) => v.into_iter().map(|v| (v.pointer, v.keyword)).collect(),
                other => panic!("{file}: {other:?}"),
            }
        };
        if got != [(pointer.to_owned(), keyword.to_owned())] {
            wrong.push(format!("{file}: the table says {keyword} at {pointer:?}, the gateway {got:?}"));
        }
        rows += 1;
    }
    assert!(rows >= 50, "{rows} rows");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
