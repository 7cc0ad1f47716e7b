//! A standard published in OpenAPI form, imported as the JSON Schema the registry loads
//! (issue 29, item 2): `ventanilla schemas import FILE --component NAME` takes an OpenAPI 3.0 or
//! 3.1 document (YAML or JSON) and writes one draft 2020-12 schema for the component, its
//! components reached through `$ref` as `$defs`, so that no one edits the publisher's file.
//!
//! What changes on the way, and nothing else:
//! - `#/components/schemas/<name>` references become `#/$defs/<name>` (`#` for the component
//!   itself);
//! - `example` (OpenAPI's, one value) becomes `examples` (JSON Schema's, a list);
//! - OpenAPI 3.0's `nullable: true` adds `"null"` to the `type` (an `enum` keeps its values: 3.0.3
//!   says null is allowed there only if listed), and its
//!   boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric bound they qualify;
//! - OpenAPI 3.0 ignores what sits beside a `$ref`: so does the import, but for annotations
//!   (`description`, `title`, `examples`);
//! - `discriminator`, `xml` and `externalDocs`, OpenAPI's own, are dropped (annotations only);
//! - the schema records where it came from (`x-imported-from`: the file's name, its `openapi`
//!   version, the component and the file's SHA-256).
//!
//! A reference outside `#/components/schemas` (another file, a parameter) is refused, naming it:
//! the import would otherwise write a schema that does not resolve.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// Why a document could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is neither JSON nor YAML: {0}")]
    Unreadable(String),
    #[error("not an OpenAPI 3.0 or 3.1 document: its `openapi` field is {0}")]
    NotOpenApi(String),
    #[error("the document has no component schema {wanted:?}; it has: {available}")]
    NoComponent { wanted: String, available: String },
    #[error("{at}: the reference {reference:?} is outside #/components/schemas; import the file or component it names first")]
    ForeignReference { at: String, reference: String },
    #[error("the component has a definition of its own named {0:?}, as another component it refers to is: rename one")]
    NameTaken(String),
}

/// Parses an OpenAPI document from its text: JSON, else YAML.
pub fn parse(text: &str) -> Result<Value, ImportError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_norway::from_str::<Value>(text).map_err(|e| ImportError::Unreadable(e.to_string()))
}

/// The JSON Schema of `component` in the OpenAPI document `openapi`, whose file is named
/// `source` and hashes to `sha256`.
pub fn import(openapi: &Value, component: &str, source: &str, sha256: &str) -> Result<Value, ImportError> {
    let version = openapi.get("openapi").and_then(Value::as_str).unwrap_or_default();
    let three_oh = if version.starts_with("3.0") {
        true
    } else if version.starts_with("3.1") {
        false
    } else {
        return Err(ImportError::NotOpenApi(openapi.get("openapi").map_or("absent".into(), Value::to_string)));
    };
    let schemas = openapi.pointer("/components/schemas").and_then(Value::as_object).cloned().unwrap_or_default();
    if !schemas.contains_key(component) {
        return Err(ImportError::NoComponent {
            wanted: component.to_owned(),
            available: if schemas.is_empty() { "none".into() } else { schemas.keys().cloned().collect::<Vec<_>>().join(", ") },
        });
    }
    // The components reached from the one imported, through references.
    let mut reached: BTreeSet<String> = BTreeSet::from([component.to_owned()]);
    let mut todo = vec![component.to_owned()];
    while let Some(name) = todo.pop() {
        let mut refs = Vec::new();
        references(&schemas[&name], &format!("#/components/schemas/{name}"), three_oh, &mut refs);
        for (at, reference) in refs {
            let Some(target) = reference.strip_prefix("#/components/schemas/") else {
                return Err(ImportError::ForeignReference { at, reference });
            };
            let target = target.split('/').next().unwrap_or(target).replace("~1", "/").replace("~0", "~");
            if !schemas.contains_key(&target) {
                return Err(ImportError::ForeignReference { at, reference });
            }
            if reached.insert(target.clone()) {
                todo.push(target);
            }
        }
    }
    let convert = |v: &Value| schema(v, component, three_oh);
    let mut root = match convert(&schemas[component]) {
        Value::Object(m) => m,
        other => Map::from_iter([("allOf".to_owned(), json!([other]))]),
    };
    let defs: BTreeMap<String, Value> = reached.iter().filter(|n| *n != component).map(|n| (n.clone(), convert(&schemas[n]))).collect();
    let mut out = Map::new();
    out.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    out.insert(
        "x-imported-from".into(),
        json!({"file": source, "openapi": version, "component": component, "sha256": sha256, "by": "ventanilla schemas import"}),
    );
    for (k, v) in std::mem::take(&mut root) {
        out.insert(k, v);
    }
    if !defs.is_empty() {
        // Beside the component's own definitions, if it has any.
        let own = out.entry("$defs").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(own) = own {
            for (name, schema) in defs {
                if own.contains_key(&name) {
                    return Err(ImportError::NameTaken(name));
                }
                own.insert(name, schema);
            }
        }
    }
    Ok(Value::Object(out))
}

/// Every `$ref` in a schema, with where it is. Data (`example`, `enum`...) is not searched; the
/// members of `properties` and the like are, whatever their names.
fn references(v: &Value, at: &str, three_oh: bool, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{}", crate::pointer::escape(k));
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push((at.to_owned(), r.to_owned()));
                    }
                } else if three_oh && m.contains_key("$ref") && !ANNOTATIONS.contains(&k.as_str()) {
                    // Dropped by the import (3.0 ignores what sits beside a reference).
                } else if SCHEMA_MAP.contains(&k.as_str()) {
                    for (name, member) in child.as_object().into_iter().flatten() {
                        references(member, &format!("{here}/{}", crate::pointer::escape(name)), three_oh, out);
                    }
                } else if !DATA.contains(&k.as_str()) {
                    references(child, &here, three_oh, out);
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, item)| references(item, &format!("{at}/{i}"), three_oh, out)),
        _ => {}
    }
}

/// Keywords whose values are data, not schemas: never rewritten.
const DATA: &[&str] = &["example", "examples", "default", "enum", "const"];
/// OpenAPI's own keywords, annotations only: dropped.
const OPENAPI_ONLY: &[&str] = &["discriminator", "xml", "externalDocs"];
/// What is kept beside a `$ref` of OpenAPI 3.0 (which ignores the rest).
const ANNOTATIONS: &[&str] = &["description", "title", "examples", "example", "deprecated"];
/// Keywords whose value is a schema.
const ONE_SCHEMA: &[&str] = &[
    "items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "additionalItems", "not", "if", "then", "else",
    "contains", "propertyNames",
];
/// Keywords whose value is a list of schemas.
const SCHEMA_LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAP: &[&str] = &["properties", "patternProperties", "dependentSchemas", "$defs", "definitions"];

/// One schema, converted (see the module's header).
fn schema(v: &Value, component: &str, three_oh: bool) -> Value {
    let Value::Object(m) = v else { return v.clone() };
    let mut out = Map::new();
    let has_ref = m.contains_key("$ref");
    for (k, child) in m {
        let k = k.as_str();
        if OPENAPI_ONLY.contains(&k) || (three_oh && has_ref && k != "$ref" && !ANNOTATIONS.contains(&k)) {
            continue;
        }
        let converted = match k {
            "$ref" => {
                let r = child.as_str().unwrap_or_default();
                let target = r.strip_prefix("#/components/schemas/").unwrap_or(r);
                let (name, rest) = target.split_once('/').map_or((target, ""), |(n, rest)| (n, rest));
                let name = name.replace("~1", "/").replace("~0", "~");
                let base = if name == component { "#".to_owned() } else { format!("#/$defs/{}", crate::pointer::escape(&name)) };
                json!(if rest.is_empty() { base } else { format!("{base}/{rest}") })
            }
            "example" => {
                out.insert("examples".into(), json!([child]));
                continue;
            }
            "nullable" if three_oh => continue,
            "exclusiveMinimum" | "exclusiveMaximum" if three_oh && child.is_boolean() => continue,
            k if ONE_SCHEMA.contains(&k) => schema(child, component, three_oh),
            k if SCHEMA_LIST.contains(&k) => match child {
                Value::Array(items) => Value::Array(items.iter().map(|i| schema(i, component, three_oh)).collect()),
                other => other.clone(),
            },
            k if SCHEMA_MAP.contains(&k) => match child {
                Value::Object(members) => Value::Object(members.iter().map(|(n, s)| (n.clone(), schema(s, component, three_oh))).collect()),
                other => other.clone(),
            },
            _ => child.clone(),
        };
        out.insert(k.to_owned(), converted);
    }
    if three_oh {
        // A boolean bound qualifies the numeric one beside it.
        for (flag, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            if m.get(flag) == Some(&Value::Bool(true)) {
                if let Some(b) = out.remove(bound) {
                    out.insert(flag.into(), b);
                }
            }
        }
        if m.get("nullable") == Some(&Value::Bool(true)) {
            match out.get_mut("type") {
                Some(Value::String(t)) => {
                    let t = t.clone();
                    out.insert("type".into(), json!([t, "null"]));
                }
                Some(Value::Array(types)) if !types.contains(&json!("null")) => types.push(json!("null")),
                _ => {}
            }
            // An `enum` stays as written: OpenAPI 3.0.3 says `nullable` does not add null to the
            // values an enumeration lists.
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r##"
openapi: 3.0.3
info: { title: Carrier API, version: 1.0.0 }
paths: {}
components:
  schemas:
    Shipment:
      type: object
      required: [reference, parties]
      discriminator: { propertyName: kind }
      properties:
        reference: { type: string, example: ABC123 }
        weight: { type: number, minimum: 0, exclusiveMinimum: true }
        remarks: { type: string, nullable: true }
        parties:
          type: array
          items: { $ref: '#/components/schemas/Party' }
        next: { $ref: '#/components/schemas/Shipment', description: itself, type: string }
    Party:
      type: object
      properties:
        code: { type: string, enum: [SHP, CNE], nullable: true }
        example: { type: string, description: a member named example is a member }
    Unused: { type: string }
"##;

    #[test]
    fn an_openapi_30_component_becomes_a_2020_12_schema_with_its_definitions() {
        let doc = parse(DOCUMENT).unwrap();
        let out = import(&doc, "Shipment", "carrier.yaml", "abc").unwrap();
        assert_eq!(out["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(out["x-imported-from"]["component"], "Shipment");
        assert_eq!(out["x-imported-from"]["openapi"], "3.0.3");
        assert!(out.get("discriminator").is_none());
        assert_eq!(out["properties"]["reference"]["examples"], json!(["ABC123"]));
        assert!(out["properties"]["reference"].get("example").is_none());
        assert_eq!(out["properties"]["weight"]["exclusiveMinimum"], json!(0));
        assert!(out["properties"]["weight"].get("minimum").is_none());
        assert_eq!(out["properties"]["remarks"]["type"], json!(["string", "null"]));
        assert_eq!(out["properties"]["parties"]["items"]["$ref"], "#/$defs/Party");
        // Beside a $ref, 3.0 keeps annotations only; a reference to the component is the root.
        assert_eq!(out["properties"]["next"], json!({"$ref": "#", "description": "itself"}));
        assert_eq!(out["$defs"]["Party"]["properties"]["code"]["enum"], json!(["SHP", "CNE"]), "null only if the enumeration lists it");
        assert_eq!(out["$defs"]["Party"]["properties"]["example"]["type"], "string", "a member called example stays a member");
        assert!(out["$defs"].get("Unused").is_none(), "only what the component reaches");
        // It is a schema the validator compiles, and it means what the publisher wrote.
        let validator = jsonschema::validator_for(&out).unwrap();
        assert!(validator.is_valid(&json!({"reference": "R", "parties": [{"code": "CNE"}], "remarks": null, "weight": 1})));
        assert!(!validator.is_valid(&json!({"reference": "R", "parties": [{"code": null}]})), "an enumeration without null");
        assert!(!validator.is_valid(&json!({"reference": "R", "parties": [], "weight": 0})), "the bound is exclusive");
        assert!(!validator.is_valid(&json!({"reference": "R", "parties": [{"code": "XXX"}]})));
    }

    #[test]
    fn what_cannot_be_imported_is_refused_naming_it() {
        let doc = parse(DOCUMENT).unwrap();
        let err = import(&doc, "Consignment", "carrier.yaml", "abc").unwrap_err().to_string();
        assert!(err.contains("Shipment") && err.contains("Party"), "{err}");
        let foreign = parse("openapi: 3.1.0\ncomponents:\n  schemas:\n    A: { $ref: 'other.yaml#/components/schemas/B' }\n").unwrap();
        let err = import(&foreign, "A", "x.yaml", "abc").unwrap_err().to_string();
        assert!(err.contains("other.yaml#/components/schemas/B") && err.contains("#/components/schemas/A"), "{err}");
        let swagger = parse("swagger: '2.0'\n").unwrap();
        assert!(matches!(import(&swagger, "A", "x", "abc"), Err(ImportError::NotOpenApi(_))));
        assert!(matches!(parse("a: [unclosed"), Err(ImportError::Unreadable(_))));
    }
}
