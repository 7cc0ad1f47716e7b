//! The region's type tables checked against the schemas they read (issue 29): every JSON
//! pointer of `[document_types.<type>]` (its submitter, countries, HS codes, transport mode,
//! border post, consignment reference, and its risk facts) must name something the type's
//! schema describes, in at least one of its versions, or the gateway does not start. A typo
//! (`/goodsItems/*/HSCode` for `hsCode`) would otherwise start cleanly and read nothing: beef
//! not routed to its sanitary agency, every submission refused for a party never found.
//!
//! A pointer is followed through `properties` (and `patternProperties`, any of them),
//! `additionalProperties` and `items`/`prefixItems` given as schemas, `$ref`, `allOf`, `anyOf`,
//! `oneOf`, `then` and `else`. Where no schema says anything of the content (`{}`, `true`, an
//! object with no members declared) the rest of the pointer cannot be judged and is taken as
//! written; a member that no schema of the place describes, where some declare members, is
//! refused, naming the members they do declare.

use serde_json::Value;

use crate::config::DocumentTypeConfig;
use crate::document_types::PayloadPointer;
use crate::schema::{resolve, Files, SchemaFile};

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

/// Whether `tokens` (after `at`) can be reached in `schema`, written in `file`.
fn reach(files: &Files, file: &SchemaFile, schema: &Value, tokens: &[Option<&str>], at: &str, depth: usize) -> Reach {
    if tokens.is_empty() || depth > MAX_DEPTH {
        return Reach::Yes;
    }
    let Value::Object(o) = schema else {
        // `true` describes anything; `false` nothing at all.
        return if schema == &Value::Bool(false) { Reach::No { at: at.to_owned(), named: Vec::new() } } else { Reach::Unknown };
    };
    let (token, rest) = (tokens[0], &tokens[1..]);
    let here = format!("{at}/{}", token.unwrap_or("*"));
    let mut best = Reach::Silent;
    let mut consider = |r: Reach| best = std::mem::replace(&mut best, Reach::Silent).or(r);
    // The same place, described elsewhere.
    if let Some(reference) = o.get("$ref").and_then(Value::as_str) {
        match resolve(files, file, reference) {
            Ok((target, pointer)) => match target.value.pointer(&pointer) {
                Some(sub) => consider(reach(files, target, sub, tokens, at, depth + 1)),
                None => consider(Reach::Unknown),
            },
            // The load refused references to nothing already; a reference it let through is
            // not judged here.
            Err(_) => consider(Reach::Unknown),
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in o.get(key).and_then(Value::as_array).into_iter().flatten() {
            consider(reach(files, file, sub, tokens, at, depth + 1));
        }
    }
    for key in ["then", "else"] {
        if let Some(sub) = o.get(key) {
            consider(reach(files, file, sub, tokens, at, depth + 1));
        }
    }
    // One step down.
    let properties = o.get("properties").and_then(Value::as_object);
    if let Some(member) = token {
        if let Some(sub) = properties.and_then(|p| p.get(member)) {
            consider(reach(files, file, sub, rest, &here, depth + 1));
        }
        for sub in o.get("patternProperties").and_then(Value::as_object).into_iter().flat_map(|p| p.values()) {
            consider(reach(files, file, sub, rest, &here, depth + 1));
        }
        if let Some(sub @ Value::Object(_)) = o.get("additionalProperties") {
            consider(reach(files, file, sub, rest, &here, depth + 1));
        }
    }
    if token.is_none_or(|t| t.parse::<usize>().is_ok()) {
        match o.get("items") {
            Some(Value::Array(tuple)) => tuple.iter().for_each(|sub| consider(reach(files, file, sub, rest, &here, depth + 1))),
            Some(sub) => consider(reach(files, file, sub, rest, &here, depth + 1)),
            None => {}
        }
        for sub in o.get("prefixItems").and_then(Value::as_array).into_iter().flatten() {
            consider(reach(files, file, sub, rest, &here, depth + 1));
        }
        if let Some(sub @ Value::Object(_)) = o.get("additionalItems") {
            consider(reach(files, file, sub, rest, &here, depth + 1));
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
        out.extend(list.iter().filter(|p| p.starts_with('/')).map(|p| (setting.to_owned(), p.as_str())));
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
        let Ok(pointer) = PayloadPointer::parse(text) else { continue };
        let tokens: Vec<Option<&str>> = pointer.tokens().collect();
        let found = versions.iter().map(|f| reach(files, f, &f.value, &tokens, "", 0)).reduce(Reach::or);
        if let Some(Reach::No { at, named }) = found {
            let places: Vec<&str> = versions.iter().map(|f| f.place.as_str()).collect();
            let there = if at.is_empty() { "at the payload's root".to_owned() } else { format!("at {at}") };
            let names = if named.is_empty() { "no member".to_owned() } else { named.join(", ") };
            return Err(format!(
                "[document_types.{name}] {setting} = {text:?}: the schema ({}) describes nothing there; {there} it names {names}. \
                 Check the member's name and case against the schema",
                places.join(", ")
            ));
        }
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
