//! The shape client generators take as it is: `/openapi.json` and `/asyncapi.json` mean the same
//! schemas as the registry's files, written the way openapi-python-client, openapi-typescript
//! and @hey-api/openapi-ts read them (the test command generates a client with each):
//!
//! - every `$defs` (or `definitions`) entry of a schema file is a component of its own, named
//!   `<file's component>.<entry>` (`common-1.0.0.party`), and so is anything else a reference
//!   points inside a component at; every reference points at a component, and no `$defs` is
//!   left (generators made it a required member, or crashed on a reference into it);
//! - no boolean schema (`true` is `{}`, `false` is `{"not": {}}`), but `additionalProperties`
//!   and `unevaluatedProperties`, which every generator reads as booleans;
//! - no `title` at a component's root: generators name a model by its title rather than its
//!   key, so two files titled alike (two versions of one type) made two models of one name;
//! - an object that says nothing of its members takes any (`additionalProperties: true`):
//!   openapi-typescript makes a bare `{"type": "object"}` an object with no members.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Where component references start.
const COMPONENTS: &str = "#/components/schemas/";

/// Reshapes the document whose schemas are at `/components/schemas`, and the schemas inline in
/// it (every `schema` member, as in OpenAPI's contents and parameters).
pub fn reshape(document: &mut Value) {
    let Some(Value::Object(schemas)) = document.pointer_mut("/components/schemas") else { return };
    let named = hoist(schemas);
    for (_, schema) in schemas.iter_mut() {
        if let Value::Object(root) = schema {
            root.remove("title");
        }
        tidy(schema);
    }
    // References outside the components too (a request body's, a message's payload).
    references(document, &mut |r| point_at_component(r, &named));
    inline_schemas(document);
}

/// The component a reference names, and the JSON pointer tokens inside it (decoded).
fn target(reference: &str) -> Option<(String, Vec<String>)> {
    let rest = reference.strip_prefix(COMPONENTS)?;
    let (component, pointer) = rest.split_once('/')?;
    let tokens = percent_decode(pointer).split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    Some((component.to_owned(), tokens))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value at `tokens` inside `value`.
fn at<'a>(value: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(value, |v, t| match v {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A component key OpenAPI allows (`^[a-zA-Z0-9._-]+$`), for what is at `tokens` in `component`.
fn component_key(component: &str, tokens: &[String]) -> String {
    let path: Vec<&str> = tokens.iter().map(String::as_str).filter(|t| !matches!(*t, "$defs" | "definitions")).collect();
    let name = format!("{component}.{}", path.join("."));
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

/// Every reference string in `value` (`$ref`, `$recursiveRef`, `$dynamicRef`), for `visit`:
/// not inside a value (`enum`, `const`, `default`, `examples`), but in a member of that name
/// (`"properties": {"default": {...}}` is a schema).
fn references(value: &mut Value, visit: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match (k.as_str(), v) {
                    ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) => visit(r),
                    ("properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas", Value::Object(members)) => {
                        members.values_mut().for_each(|m| references(m, visit));
                    }
                    ("enum" | "const" | "examples" | "default" | "example", _) => {}
                    (_, v) => references(v, visit),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| references(i, visit)),
        _ => {}
    }
}

/// Makes each `$defs` entry, and whatever else a reference points inside a component at, a
/// component of its own; points every reference at it; drops the `$defs`.
/// Each place inside a component that is now a component of its own, and its key (empty: a
/// place that is nowhere, left as written).
type Hoisted = BTreeMap<(String, Vec<String>), String>;

/// `reference`, pointed at the component its place became.
fn point_at_component(reference: &mut String, named: &Hoisted) {
    if let Some(key) = target(reference).and_then(|t| named.get(&t)).filter(|k| !k.is_empty()) {
        *reference = format!("{COMPONENTS}{key}");
    }
}

fn hoist(schemas: &mut Map<String, Value>) -> Hoisted {
    let original = schemas.clone();
    let mut named = Hoisted::new();
    // Every entry, referenced or not, first.
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for (component, schema) in &original {
        for keyword in ["$defs", "definitions"] {
            if let Some(Value::Object(entries)) = schema.get(keyword) {
                wanted.extend(entries.keys().map(|e| (component.clone(), vec![keyword.to_owned(), e.clone()])));
            }
        }
    }
    loop {
        // What references point inside a component at, among the schemas so far (a hoisted
        // schema's own references included).
        for schema in schemas.values_mut() {
            references(schema, &mut |r| wanted.extend(target(r)));
        }
        wanted.retain(|t| !named.contains_key(t));
        if wanted.is_empty() {
            break;
        }
        for (component, tokens) in std::mem::take(&mut wanted) {
            if named.contains_key(&(component.clone(), tokens.clone())) {
                continue;
            }
            let Some(found) = original.get(&component).and_then(|c| at(c, &tokens)) else {
                // Points at nothing (the registry refused such files at load): left as written.
                named.insert((component, tokens), String::new());
                continue;
            };
            let mut key = component_key(&component, &tokens);
            let mut n = 2;
            while schemas.contains_key(&key) {
                key = format!("{}-{n}", component_key(&component, &tokens));
                n += 1;
            }
            let mut hoisted = found.clone();
            // A file of an earlier draft keeps its `$schema` (`super::openapi`): so does what is
            // taken out of it, or its keywords would read as 2020-12's.
            if let (Value::Object(h), Some(dialect)) = (&mut hoisted, original.get(&component).and_then(|c| c.get("$schema"))) {
                h.entry("$schema").or_insert_with(|| dialect.clone());
            }
            schemas.insert(key.clone(), hoisted);
            named.insert((component, tokens), key);
        }
    }
    for schema in schemas.values_mut() {
        references(schema, &mut |r| point_at_component(r, &named));
        drop_defs(schema);
    }
    named
}

/// Removes `$defs` and `definitions` from a schema and the schemas inside it.
fn drop_defs(schema: &mut Value) {
    each_subschema(schema, &mut |s| {
        if let Value::Object(map) = s {
            map.remove("$defs");
            map.remove("definitions");
        }
    });
}

/// Calls `f` on `schema`, then on every schema inside it (not inside `enum`, `const`...).
fn each_subschema(schema: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    f(schema);
    let Value::Object(map) = schema else { return };
    for (k, v) in map.iter_mut() {
        match (k.as_str(), v) {
            ("properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas", Value::Object(m)) => {
                m.values_mut().for_each(|s| each_subschema(s, f));
            }
            ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(a)) => a.iter_mut().for_each(|s| each_subschema(s, f)),
            (
                "items" | "additionalItems" | "contains" | "not" | "if" | "then" | "else" | "propertyNames" | "unevaluatedItems"
                | "additionalProperties" | "unevaluatedProperties" | "contentSchema",
                v,
            ) => each_subschema(v, f),
            _ => {}
        }
    }
}

/// A boolean schema as the object that means the same: `true` is `{}`, `false` `{"not": {}}`.
fn unbool(schema: &mut Value) {
    if let Value::Bool(b) = schema {
        *schema = if *b { Value::Object(Map::new()) } else { serde_json::json!({ "not": {} }) };
    }
}

/// No boolean schema where generators want an object, and no object silent about its members.
fn tidy(schema: &mut Value) {
    unbool(schema);
    each_subschema(schema, &mut |s| {
        let Value::Object(map) = s else { return };
        for (k, v) in map.iter_mut() {
            match (k.as_str(), v) {
                // Booleans every generator reads as such.
                ("additionalProperties" | "unevaluatedProperties", _) => {}
                ("properties" | "patternProperties" | "dependentSchemas", Value::Object(m)) => m.values_mut().for_each(unbool),
                ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(a)) => a.iter_mut().for_each(unbool),
                (
                    "items" | "additionalItems" | "contains" | "not" | "if" | "then" | "else" | "propertyNames" | "unevaluatedItems"
                    | "contentSchema",
                    v,
                ) => unbool(v),
                _ => {}
            }
        }
        let says_nothing = ["properties", "additionalProperties", "patternProperties", "unevaluatedProperties", "$ref", "allOf", "anyOf", "oneOf"]
            .iter()
            .all(|k| !map.contains_key(*k));
        if map.get("type") == Some(&Value::String("object".into())) && says_nothing {
            map.insert("additionalProperties".into(), Value::Bool(true));
        }
    });
}

/// The schemas inline in the document (each `schema` member outside the components), tidied.
fn inline_schemas(document: &mut Value) {
    match document {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match k.as_str() {
                    "components" => {
                        if let Value::Object(c) = v {
                            for (name, part) in c.iter_mut() {
                                if name != "schemas" {
                                    inline_schemas(part);
                                }
                            }
                        }
                    }
                    "schema" => tidy(v),
                    "example" | "examples" => {}
                    _ => inline_schemas(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(inline_schemas),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defs_become_components_and_every_reference_points_at_one() {
        let mut doc = json!({ "components": { "schemas": {
            "common-1.0.0": { "title": "Common", "$defs": {
                "party": { "type": "object", "properties": { "id": { "$ref": "#/components/schemas/common-1.0.0/$defs/id" } } },
                "id": { "type": "string" },
                "unused": { "type": "integer" },
                "odd/name": { "type": "string" },
            } },
            "old-1.0.0": { "$schema": "http://json-schema.org/draft-07/schema#", "definitions": {
                "n": { "type": "number", "exclusiveMinimum": 0 },
            }, "type": "array", "items": [true, { "$ref": "#/components/schemas/old-1.0.0/definitions/n" }] },
            "doc-1.0.0": { "title": "A document", "type": "object", "properties": {
                "default": { "$ref": "#/components/schemas/common-1.0.0/$defs/party" },
                "seller": { "$ref": "#/components/schemas/common-1.0.0/$defs/party" },
                "sellerId": { "$ref": "#/components/schemas/common-1.0.0/$defs/party/properties/id" },
                "odd": { "$ref": "#/components/schemas/common-1.0.0/$defs/odd~1name" },
                "any": true,
                "list": { "type": "array", "items": true },
                "bag": { "type": "object" },
                "closed": { "type": "object", "additionalProperties": false },
            } },
        } } });
        reshape(&mut doc);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["common-1.0.0.party"]["properties"]["id"]["$ref"], "#/components/schemas/common-1.0.0.id");
        assert_eq!(schemas["common-1.0.0.unused"], json!({ "type": "integer" }), "every entry, referenced or not");
        let properties = &schemas["doc-1.0.0"]["properties"];
        assert_eq!(properties["seller"]["$ref"], "#/components/schemas/common-1.0.0.party");
        assert_eq!(properties["sellerId"]["$ref"], "#/components/schemas/common-1.0.0.party.properties.id");
        assert_eq!(schemas["common-1.0.0.party.properties.id"]["$ref"], "#/components/schemas/common-1.0.0.id");
        assert_eq!(properties["odd"]["$ref"], "#/components/schemas/common-1.0.0.odd_name");
        assert_eq!((&properties["any"], &properties["list"]["items"]), (&json!({}), &json!({})));
        assert_eq!(properties["bag"]["additionalProperties"], true);
        assert_eq!(properties["closed"]["additionalProperties"], false);
        assert!(schemas["common-1.0.0"].get("$defs").is_none() && schemas["common-1.0.0"].get("title").is_none());
        assert!(schemas["doc-1.0.0"].get("title").is_none());
        // A member named like a keyword is a schema like any other.
        assert_eq!(properties["default"]["$ref"], "#/components/schemas/common-1.0.0.party");
        // What is taken out of an earlier draft's file keeps its dialect; a tuple's `true` goes.
        assert_eq!(schemas["old-1.0.0.n"]["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schemas["old-1.0.0"]["items"], json!([{}, { "$ref": "#/components/schemas/old-1.0.0.n" }]));
        // Every reference resolves.
        let mut all = doc.clone();
        references(&mut all, &mut |r| {
            let key = r.strip_prefix(COMPONENTS).unwrap_or_else(|| panic!("{r} is a component reference"));
            assert!(schemas.get(key).is_some(), "{r} resolves");
        });
        let text = doc.to_string();
        assert!(!text.contains("$defs") && !text.contains("\"any\":true") && !text.contains("\"items\":true"), "{text}");
    }
}
