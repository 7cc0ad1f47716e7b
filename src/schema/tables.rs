//! The region's type tables checked against the schemas they read (issue 29): every JSON
//! pointer of `[document_types.<type>]` (its submitter, countries, HS codes, transport mode,
//! border post, consignment reference, and its risk facts) must name something the type's
//! schema describes, in at least one of its versions, or the gateway does not start. A typo
//! (`/goodsItems/*/HSCode` for `hsCode`) would otherwise start cleanly and read nothing: beef
//! not routed to its sanitary agency, every submission refused for a party never found.
//!
//! A pointer is followed through `properties`, `patternProperties` (those whose pattern the
//! member matches), `additionalProperties`, `unevaluatedProperties` and `items`, `prefixItems`,
//! `additionalItems`, `unevaluatedItems` given as schemas, `$ref`, `allOf`, `anyOf`, `oneOf`,
//! `if`, `then`, `else` and `dependentSchemas` (draft 7's `dependencies`). A schema reached
//! again (a shared definition, a cycle) is judged once. Where no schema says anything of the content (`{}`, `true`, an
//! object with no members declared) the rest of the pointer cannot be judged and is taken as
//! written; a member that no schema of the place describes, where some declare members, is
//! refused, naming the members they do declare.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::DocumentTypeConfig;
use crate::document_types::{PayloadPointer, Reading};
use super::files::{resolve, Files, SchemaFile};

/// Whether a pointer reaches something a schema describes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    Yes,
    /// Into content described as anything (`true`), or past what could be followed.
    Unknown,
    /// Not described: where it stopped (the pointer so far) and the members named there.
    No { at: String, named: Vec<String> },
    /// The schema says nothing of content here (a constraint such as `required`, `{}`): the
    /// schemas beside it decide.
    Silent,
}

impl Reach {
    /// The better of two: `Yes`, then `Unknown`, then the `No` that went deepest, then `Silent`.
    fn or(self, other: Reach) -> Reach {
        match (self, other) {
            (Reach::Yes, _) | (_, Reach::Yes) => Reach::Yes,
            (Reach::Unknown, _) | (_, Reach::Unknown) => Reach::Unknown,
            (Reach::No { at: a, named: na }, Reach::No { at: b, named: nb }) => {
                if b.len() > a.len() {
                    Reach::No { at: b, named: nb }
                } else {
                    Reach::No { at: a, named: na }
                }
            }
            (no @ Reach::No { .. }, Reach::Silent) | (Reach::Silent, no @ Reach::No { .. }) => no,
            (Reach::Silent, Reach::Silent) => Reach::Silent,
        }
    }
}

/// References followed before a pointer is taken as written (a schema that refers to itself).
const MAX_DEPTH: usize = 64;

/// Results already found, by schema (its address) and how many tokens were left: a schema
/// reached again (a shared definition, a cycle) is judged once.
type Seen = HashMap<(usize, usize), Reach>;

/// Whether `tokens` (after `at`) can be reached in `schema`, written in `file`.
fn reach(files: &Files, file: &SchemaFile, schema: &Value, tokens: &[Option<&str>], at: &str, depth: usize, seen: &mut Seen) -> Reach {
    if tokens.is_empty() || depth > MAX_DEPTH {
        return Reach::Yes;
    }
    let key = (schema as *const Value as usize, tokens.len());
    if let Some(known) = seen.get(&key) {
        return known.clone();
    }
    // Being judged further up (a cycle): it adds nothing of its own here.
    seen.insert(key, Reach::Silent);
    let found = reach_new(files, file, schema, tokens, at, depth, seen);
    seen.insert(key, found.clone());
    found
}

/// A member or an item found for the token: what the rest of the pointer reaches in it. A
/// found member whose schema says nothing of its content is not a typo: taken as written.
fn step(found: Reach) -> Reach {
    match found {
        Reach::Silent => Reach::Unknown,
        other => other,
    }
}

/// Whether `member` matches a `patternProperties` pattern (ECMA-262 patterns as the `regex`
/// crate reads them); a pattern it cannot read may match.
fn matches(pattern: &str, member: &str) -> bool {
    regex::Regex::new(pattern).map_or(true, |r| r.is_match(member))
}

fn reach_new(files: &Files, file: &SchemaFile, schema: &Value, tokens: &[Option<&str>], at: &str, depth: usize, seen: &mut Seen) -> Reach {
    let Value::Object(o) = schema else {
        // `true` describes anything; `false` nothing at all.
        return if schema == &Value::Bool(false) { Reach::No { at: at.to_owned(), named: Vec::new() } } else { Reach::Unknown };
    };
    let (token, rest) = (tokens[0], &tokens[1..]);
    let here = format!("{at}/{}", token.unwrap_or("*"));
    let mut best = Reach::Silent;
    // The same place, described elsewhere.
    if let Some(reference) = o.get("$ref").and_then(Value::as_str) {
        let found = match resolve(files, file, reference) {
            Ok((target, pointer)) => match target.value.pointer(&pointer) {
                Some(sub) => reach(files, target, sub, tokens, at, depth + 1, seen),
                None => Reach::Unknown,
            },
            // The load refused references to nothing already; a reference it let through is
            // not judged here.
            Err(_) => Reach::Unknown,
        };
        best = best.or(found);
    }
    if o.contains_key("$dynamicRef") || o.contains_key("$recursiveRef") {
        best = best.or(Reach::Unknown);
    }
    let mut same_place: Vec<&Value> = Vec::new();
    for key in ["allOf", "anyOf", "oneOf"] {
        same_place.extend(o.get(key).and_then(Value::as_array).into_iter().flatten());
    }
    for key in ["if", "then", "else"] {
        same_place.extend(o.get(key));
    }
    for key in ["dependentSchemas", "dependencies"] {
        same_place.extend(o.get(key).and_then(Value::as_object).into_iter().flat_map(|m| m.values()).filter(|v| v.is_object() || v.is_boolean()));
    }
    for sub in same_place {
        best = best.or(reach(files, file, sub, tokens, at, depth + 1, seen));
    }
    // One step down.
    let properties = o.get("properties").and_then(Value::as_object);
    if let Some(member) = token {
        if let Some(sub) = properties.and_then(|p| p.get(member)) {
            best = best.or(step(reach(files, file, sub, rest, &here, depth + 1, seen)));
        }
        for (pattern, sub) in o.get("patternProperties").and_then(Value::as_object).into_iter().flatten() {
            if matches(pattern, member) {
                best = best.or(step(reach(files, file, sub, rest, &here, depth + 1, seen)));
            }
        }
        for key in ["additionalProperties", "unevaluatedProperties"] {
            if let Some(sub @ Value::Object(_)) = o.get(key) {
                best = best.or(step(reach(files, file, sub, rest, &here, depth + 1, seen)));
            }
        }
    }
    if token.is_none_or(|t| t.parse::<usize>().is_ok()) {
        let mut items: Vec<&Value> = Vec::new();
        match o.get("items") {
            Some(Value::Array(tuple)) => items.extend(tuple),
            Some(sub) => items.push(sub),
            None => {}
        }
        items.extend(o.get("prefixItems").and_then(Value::as_array).into_iter().flatten());
        for key in ["additionalItems", "unevaluatedItems"] {
            if let Some(sub @ Value::Object(_)) = o.get(key) {
                items.push(sub);
            }
        }
        for sub in items {
            best = best.or(step(reach(files, file, sub, rest, &here, depth + 1, seen)));
        }
    }
    // Members or items declared here, none of them the pointer's: not described.
    let declares_content =
        ["properties", "patternProperties", "items", "prefixItems"].iter().any(|k| o.contains_key(*k)) || matches!(o.get("additionalProperties"), Some(Value::Object(_)));
    match best {
        Reach::Silent if declares_content => {
            let mut named: Vec<String> = properties.map(|p| p.keys().cloned().collect()).unwrap_or_default();
            named.sort();
            Reach::No { at: at.to_owned(), named }
        }
        r => r,
    }
}

/// Every pointer of a type's table, with the setting it is written in.
fn settings(t: &DocumentTypeConfig) -> Vec<(String, &str)> {
    fn add<'a>(out: &mut Vec<(String, &'a str)>, setting: &str, list: &'a [String]) {
        // Pointers and computed facts alike: what is neither (a scheme's name) reads nothing.
        out.extend(list.iter().map(|p| (setting.to_owned(), p.as_str())));
    }
    let mut out = Vec::new();
    add(&mut out, "submitter.identifier", &t.submitter.identifier);
    add(&mut out, "submitter.scheme", &t.submitter.scheme);
    add(&mut out, "submitter.country", &t.submitter.country);
    add(&mut out, "consignment_reference", &t.consignment_reference);
    add(&mut out, "origin", &t.origin);
    add(&mut out, "destination", &t.destination);
    add(&mut out, "hs_codes", &t.hs_codes);
    add(&mut out, "mode_of_transport", &t.mode_of_transport);
    add(&mut out, "border_post", &t.border_post);
    for (role, p) in &t.risk.parties {
        add(&mut out, &format!("risk.parties.{role}.identifier"), &p.identifier);
        add(&mut out, &format!("risk.parties.{role}.scheme"), &p.scheme);
    }
    add(&mut out, "risk.value", &t.risk.value);
    add(&mut out, "risk.currency", &t.risk.currency);
    add(&mut out, "risk.gross_mass", &t.risk.gross_mass);
    add(&mut out, "risk.quantity", &t.risk.quantity);
    add(&mut out, "risk.origin_of_goods", &t.risk.origin_of_goods);
    add(&mut out, "risk.platform", &t.risk.platform);
    out
}

/// Checks every pointer of the type `name`'s table against the versions of its schema in
/// `files`; the first that none describes, as the start's error.
pub(crate) fn check(files: &Files, name: &str, table: &DocumentTypeConfig) -> Result<(), String> {
    let versions: Vec<&SchemaFile> = files.0.iter().filter(|f| f.folder() == name && f.version.is_some()).collect();
    if versions.is_empty() {
        return Ok(());
    }
    for (setting, text) in settings(table) {
        // A reading that does not parse was refused before; a constant reads nothing.
        let Ok(reading) = Reading::parse(text) else { continue };
        for pointer in reading.pointers() {
            check_pointer(files, &versions, name, setting.as_str(), text, pointer)?;
        }
    }
    Ok(())
}

/// One pointer of the setting `setting` (written `text`) against the versions of the type.
fn check_pointer(files: &Files, versions: &[&SchemaFile], name: &str, setting: &str, text: &str, pointer: &PayloadPointer) -> Result<(), String> {
    let tokens: Vec<Option<&str>> = pointer.tokens().collect();
    let found = versions.iter().map(|f| reach(files, f, &f.value, &tokens, "", 0, &mut Seen::new())).reduce(Reach::or);
    if let Some(Reach::No { at, named }) = found {
        let places: Vec<&str> = versions.iter().map(|f| f.place.as_str()).collect();
        let there = if at.is_empty() { "at the payload's root".to_owned() } else { format!("at {at}") };
        let names = if named.is_empty() { "no member".to_owned() } else { named.join(", ") };
        // A computed fact names the pointer of it that fails.
        let which = if pointer.as_str() == text { String::new() } else { format!(" (its field {:?})", pointer.as_str()) };
        return Err(format!(
            "[document_types.{name}] {setting} = {text:?}{which}: the schema ({}) describes nothing there; {there} it names {names}. \
             Check the member's name and case against the schema",
            places.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::RegionConfig;
    use crate::schema::{SchemaError, SchemaRegistry};

    fn shipped() -> (RegionConfig, std::path::PathBuf) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("config/ventanilla.toml")).unwrap();
        (toml::from_str(&text).unwrap(), root.join("schemas"))
    }

    fn refused(region: &RegionConfig, schemas: &Path) -> String {
        match SchemaRegistry::of_region(schemas, region) {
            Err(SchemaError::Region(message)) => message,
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("started"),
        }
    }

    #[test]
    fn every_pointer_of_the_shipped_tables_names_what_its_schema_describes() {
        let (region, schemas) = shipped();
        SchemaRegistry::of_region(&schemas, &region).expect("the shipped tables agree with the shipped schemas");
    }

    /// A computed fact's fields are checked as any pointer; a constant reads nothing.
    #[test]
    fn the_fields_of_a_computed_fact_are_checked_and_a_constant_is_not() {
        let (mut region, schemas) = shipped();
        let declaration = region.document_types.get_mut("customsDeclaration").unwrap();
        declaration.mode_of_transport = vec!["=road".into()];
        declaration.origin = vec!["locode:/noSuchMember/code".into()];
        let message = refused(&region, &schemas);
        assert!(message.contains("origin = \"locode:/noSuchMember/code\" (its field \"/noSuchMember/code\")"), "{message}");
        region.document_types.get_mut("customsDeclaration").unwrap().origin = vec!["country-name:/declarant/nowhere".into()];
        let message = refused(&region, &schemas);
        assert!(message.contains("(its field \"/declarant/nowhere\")") && message.contains("at /declarant"), "{message}");
    }

    #[test]
    fn a_type_whose_submitter_has_no_country_is_warned_about() {
        let (mut region, schemas) = shipped();
        let registry = SchemaRegistry::of_region(&schemas, &region).unwrap();
        assert!(!registry.warnings().iter().any(|w| w.contains("names no `country`")), "{:?}", registry.warnings());
        region.document_types.get_mut("commercialInvoice").unwrap().submitter.country.clear();
        let registry = SchemaRegistry::of_region(&schemas, &region).unwrap();
        let warned: Vec<&String> = registry.warnings().iter().filter(|w| w.contains("names no `country`")).collect();
        assert_eq!(warned.len(), 1, "{:?}", registry.warnings());
        assert!(warned[0].contains("[document_types.commercialInvoice]"), "{warned:?}");
    }

    /// The shipped schemas and region, with a type `probe` of this schema whose submitter is
    /// read at `identifier`: whether the start takes it, or why not.
    fn probe(schema: serde_json::Value, identifier: &str) -> Result<(), String> {
        let (mut region, schemas) = shipped();
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&schemas).unwrap() {
            let from = entry.unwrap().path();
            let to = dir.path().join(from.file_name().unwrap());
            std::fs::create_dir(&to).unwrap();
            for f in std::fs::read_dir(&from).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("probe")).unwrap();
        std::fs::write(dir.path().join("probe/1.0.0.json"), schema.to_string()).unwrap();
        let table = format!("submitter = {{ party = \"p\", identifier = \"{identifier}\", scheme = \"AR-CUIT\" }}");
        region.document_types.insert("probe".into(), toml::from_str(&table).unwrap());
        SchemaRegistry::of_region(dir.path(), &region).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn free_form_members_shared_definitions_and_patterns_are_judged_as_the_schema_says() {
        use serde_json::json;
        let draft = "https://json-schema.org/draft/2020-12/schema";
        // A declared member whose content the schema leaves open: taken as written.
        let open = json!({"$schema": draft, "type": "object", "properties": {"attributes": {"type": "object"}, "id": {"type": "string"}}});
        assert_eq!(probe(open.clone(), "/attributes/taxId"), Ok(()));
        assert!(probe(open, "/atributes/taxId").unwrap_err().contains("it names attributes, id"));
        // A pattern the member does not match describes nothing of it.
        let patterned = json!({"$schema": draft, "type": "object", "properties": {"id": {"type": "string"}}, "patternProperties": {"^x-": {"type": "string"}}});
        assert_eq!(probe(patterned.clone(), "/x-party"), Ok(()));
        assert!(probe(patterned, "/Id").is_err(), "no pattern matches Id");
        // A definition that refers to itself, reached by many ways: judged once, and at once.
        let tree = json!({"$schema": draft, "$defs": {"node": {"type": "object", "properties": {
            "id": {"type": "string"},
            "left": {"anyOf": [{"$ref": "#/$defs/node"}, {"$ref": "#/$defs/node"}]},
            "right": {"allOf": [{"$ref": "#/$defs/node"}, {"$ref": "#/$defs/node"}]}}}},
            "$ref": "#/$defs/node"});
        let started = std::time::Instant::now();
        assert_eq!(probe(tree.clone(), "/left/right/left/right/id"), Ok(()));
        assert!(probe(tree, "/left/right/left/right/ID").is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no blow-up on a self-referring schema");
        // Members described only by a dependent schema, or by if/then.
        let dependent = json!({"$schema": draft, "type": "object", "properties": {"kind": {"type": "string"}},
            "dependentSchemas": {"kind": {"properties": {"holder": {"type": "object", "properties": {"id": {"type": "string"}}}}}}});
        assert_eq!(probe(dependent, "/holder/id"), Ok(()));
    }

    #[test]
    fn a_pointer_the_schema_does_not_describe_stops_the_start_naming_the_type_setting_and_pointer() {
        let (mut region, schemas) = shipped();
        let declaration = region.document_types.get_mut("customsDeclaration").unwrap();
        declaration.hs_codes = vec!["/goodsItems/*/HSCode".into()];
        let message = refused(&region, &schemas);
        assert!(message.contains("[document_types.customsDeclaration] hs_codes = \"/goodsItems/*/HSCode\""), "{message}");
        assert!(message.contains("at /goodsItems/* it names") && message.contains("hsCode"), "what is there instead: {message}");

        let (mut region, _) = shipped();
        let declaration = region.document_types.get_mut("customsDeclaration").unwrap();
        declaration.submitter.identifier = vec!["/declarant/identifer/value".into()];
        let message = refused(&region, &schemas);
        assert!(message.contains("submitter.identifier = \"/declarant/identifer/value\"") && message.contains("identifier"), "{message}");

        // Risk facts too; a pointer into an array by index, or by `*`, is followed into its items.
        let (mut region, _) = shipped();
        let parcel = region.document_types.get_mut("ecommerceShipment").unwrap();
        parcel.risk.gross_mass = vec!["/grossWeight".into()];
        assert!(refused(&region, &schemas).contains("risk.gross_mass = \"/grossWeight\""));
        let (mut region, _) = shipped();
        region.document_types.get_mut("ecommerceShipment").unwrap().risk.quantity = vec!["/items/0/quantity/value".into()];
        SchemaRegistry::of_region(&schemas, &region).expect("an index reaches the items");
    }
}
