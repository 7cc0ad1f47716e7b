//! What a region adds to a publisher's schema without editing its file (issue 29, item 1):
//! `[[document_types.<type>.overlays]]` in the region file, each a JSON pointer into the
//! publisher's file and what to add there, applied as the schemas are loaded (and by `schemas
//! diff`, which compares the schemas as the registry uses them).
//!
//! An addition only narrows what the schema accepts: a required member joins `required`; a
//! pattern, an enumeration or a bound beside the publisher's own goes into an `allOf`, so both
//! hold. A hint (`x-hint`) tells, in the region's
//! words, every violation of a pattern, enumeration, format or bound there, the publisher's own
//! keywords included. A bound where the publisher has its own goes into the `allOf` too. Beside a `$ref` (which drafts 4 to 7 let nothing stand beside) the
//! reference moves into the `allOf`, so the additions apply in every draft.

use serde_json::{json, Map, Value};

use crate::config::OverlayConfig;

/// Whether the overlay goes to the schema file at `place` (`<folder>/<file>.json`) of type
/// `document_type`: the file it names, or every version of its type.
pub fn applies_to(o: &OverlayConfig, document_type: &str, place: &str, is_version: bool) -> bool {
    match &o.file {
        Some(file) => file == place,
        None => is_version && place.split_once('/').is_some_and(|(folder, _)| folder == document_type),
    }
}

/// Applies `o` to `schema` (a file's JSON); why not, when its pointer names no schema object.
pub fn apply(schema: &mut Value, o: &OverlayConfig) -> Result<(), String> {
    let at = if o.at == "/" { "" } else { o.at.as_str() };
    let Some(target) = schema.pointer_mut(at) else {
        return Err(format!("at {:?}: the file has nothing there", o.at));
    };
    let Value::Object(t) = target else {
        return Err(format!("at {:?}: that is not a schema object (it is {target})", o.at));
    };
    let constrains = !o.required.is_empty()
        || o.pattern.is_some()
        || o.allowed.is_some()
        || [o.minimum, o.maximum].iter().any(Option::is_some)
        || [o.min_length, o.max_length, o.min_items, o.max_items].iter().any(Option::is_some);
    if constrains {
        if let Some(reference) = t.remove("$ref") {
            all_of(t, json!({"$ref": reference}));
        }
    }
    if !o.required.is_empty() {
        let required = t.entry("required").or_insert_with(|| json!([]));
        let Value::Array(list) = required else {
            return Err(format!("at {:?}: its `required` is not a list", o.at));
        };
        for member in &o.required {
            if !list.iter().any(|m| m == member) {
                list.push(json!(member));
            }
        }
    }
    if let Some(pattern) = &o.pattern {
        match t.get("pattern") {
            None => {
                t.insert("pattern".into(), json!(pattern));
            }
            Some(p) if p == pattern => {}
            Some(_) => all_of(t, json!({"pattern": pattern})),
        }
    }
    if let Some(allowed) = &o.allowed {
        match t.get("enum") {
            None => {
                t.insert("enum".into(), Value::Array(allowed.clone()));
            }
            Some(Value::Array(own)) if own == allowed => {}
            Some(_) => all_of(t, json!({"enum": allowed})),
        }
    }
    // A bound where the publisher has one of its own goes beside it, in the `allOf`: both hold,
    // whatever the numbers' forms (an integer, 10.0, a large one a float would round).
    let bounds: [(&str, Option<Value>); 6] = [
        ("minimum", o.minimum.map(|b| json!(b))),
        ("maximum", o.maximum.map(|b| json!(b))),
        ("minLength", o.min_length.map(|b| json!(b))),
        ("maxLength", o.max_length.map(|b| json!(b))),
        ("minItems", o.min_items.map(|b| json!(b))),
        ("maxItems", o.max_items.map(|b| json!(b))),
    ];
    for (keyword, bound) in bounds {
        let Some(bound) = bound else { continue };
        match t.get(keyword) {
            None => {
                t.insert(keyword.into(), bound);
            }
            Some(own) if *own == bound => {}
            Some(_) => all_of(t, Value::Object(Map::from_iter([(keyword.to_owned(), bound)]))),
        }
    }
    if let Some(hint) = &o.hint {
        t.insert("x-hint".into(), json!(hint));
    }
    Ok(())
}

/// Adds `schema` to the object's `allOf` (making one).
fn all_of(t: &mut Map<String, Value>, schema: Value) {
    match t.entry("allOf").or_insert_with(|| json!([])) {
        Value::Array(list) => list.push(schema),
        other => *other = json!([other.clone(), schema]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(toml_text: &str) -> OverlayConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn additions_only_narrow_what_the_publisher_accepts() {
        let mut schema = json!({
            "properties": {
                "date": {"type": "string", "format": "date"},
                "code": {"type": "string", "pattern": "^[A-Z]+$", "maxLength": 10},
                "party": {"$ref": "#/$defs/party"},
                "count": {"type": "integer", "minimum": 5}
            },
            "$defs": {"party": {"type": "object"}}
        });
        apply(&mut schema, &overlay("at = '/properties/date'\nhint = 'a date as 2026-12-01'")).unwrap();
        apply(&mut schema, &overlay("at = '/properties/code'\npattern = '^[A-Z]{3}$'\nmax_length = 20\nmin_length = 3")).unwrap();
        apply(&mut schema, &overlay("at = '/properties/party'\nrequired = ['taxId']")).unwrap();
        apply(&mut schema, &overlay("at = '/properties/count'\nminimum = 1.0\nmaximum = 9.0")).unwrap();
        apply(&mut schema, &overlay("at = '/'\nrequired = ['date', 'code']")).unwrap();
        apply(&mut schema, &overlay("at = '/'\nrequired = ['code']")).unwrap();
        assert_eq!(schema["properties"]["date"]["x-hint"], "a date as 2026-12-01");
        assert_eq!(schema["properties"]["code"]["pattern"], "^[A-Z]+$", "the publisher's pattern stays");
        assert_eq!(schema["properties"]["code"]["allOf"][0], json!({"pattern": "^[A-Z]{3}$"}), "and the region's holds too");
        assert_eq!((schema["properties"]["code"]["maxLength"].clone(), schema["properties"]["code"]["minLength"].clone()), (json!(10), json!(3)), "the publisher's bound stays, the region's added where it had none");
        assert_eq!(schema["properties"]["code"]["allOf"][1], json!({"maxLength": 20}), "and the region's beside it: both hold");
        assert_eq!(schema["properties"]["party"], json!({"allOf": [{"$ref": "#/$defs/party"}], "required": ["taxId"]}));
        assert_eq!(schema["properties"]["count"]["minimum"], json!(5), "the publisher's integer kept as written");
        assert_eq!(schema["properties"]["count"]["allOf"], json!([{"minimum": 1.0}]));
        assert_eq!(schema["properties"]["count"]["maximum"], json!(9.0));
        assert_eq!(schema["required"], json!(["date", "code"]), "each member once");
        let err = apply(&mut schema, &overlay("at = '/properties/nothing'\nrequired = ['x']")).unwrap_err();
        assert!(err.contains("\"/properties/nothing\"") && err.contains("nothing there"), "{err}");
        let err = apply(&mut schema, &overlay("at = '/properties/code/pattern'\nhint = 'h'")).unwrap_err();
        assert!(err.contains("not a schema object"), "{err}");
    }

    #[test]
    fn an_overlay_goes_to_the_file_it_names_or_every_version_of_its_type() {
        let every = overlay("at = '/'");
        assert!(applies_to(&every, "bl", "bl/1.0.0.json", true));
        assert!(!applies_to(&every, "bl", "bl/defs.json", false), "a definition file only when named");
        assert!(!applies_to(&every, "bl", "other/1.0.0.json", true));
        let named = overlay("at = '/'\nfile = 'bl/defs.json'");
        assert!(applies_to(&named, "bl", "bl/defs.json", false));
        assert!(!applies_to(&named, "bl", "bl/1.0.0.json", true));
    }
}
