//! The schema files as `/openapi.json`'s components: each file one component named by its
//! place, its `$id` dropped, and every reference pointed at the component it reaches.

use serde_json::{Map, Value};

use super::files::{resolve, Files, SchemaFile};
use super::SchemaRegistry;

/// `reference`, written in `this`, as a reference inside `/openapi.json`: the component of the
/// file it reaches and the pointer in it. A reference to nothing known is left as written (the
/// load refused those already).
pub(super) fn component_ref(files: &Files, this: &SchemaFile, reference: &str) -> String {
    match resolve(files, this, reference) {
        Ok((found, pointer)) => {
            let pointer: String = pointer.split('/').map(|t| t.replace('%', "%25")).collect::<Vec<_>>().join("/");
            format!("#/components/schemas/{}{pointer}", found.component)
        }
        Err(_) => reference.to_owned(),
    }
}

/// `/openapi.json`'s name of a file: its place without `.json`, `/` made `-`.
pub fn component_name(place: &str) -> String {
    place
        .trim_end_matches(".json")
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' => c,
            _ => '_',
        })
        .collect()
}

impl SchemaRegistry {
    /// Every file as an `/openapi.json` component (2020-12 being the document's dialect, a file
    /// of another draft keeps its `$schema`): `$id` dropped, and every reference, whether by
    /// `$id`, by place or relative to its file, pointed at the component it reaches.
    pub fn components(&self) -> Map<String, Value> {
        /// A schema object: its keywords rewritten, not its values (`enum`, `const`...).
        fn schema(files: &Files, this: &SchemaFile, v: &Value) -> Value {
            let Value::Object(map) = v else { return v.clone() };
            let mut out = Map::new();
            for (k, v) in map {
                let value = match (k.as_str(), v) {
                    ("$id" | "id", Value::String(_)) => continue,
                    ("$schema", Value::String(s)) if s.contains("2020-12") => continue,
                    ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) => Value::String(component_ref(files, this, r)),
                    ("enum" | "const" | "examples" | "default", _) => v.clone(),
                    ("properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" | "dependencies", Value::Object(m)) => {
                        Value::Object(m.iter().map(|(name, sub)| (name.clone(), schema(files, this, sub))).collect())
                    }
                    (_, Value::Array(items)) => Value::Array(items.iter().map(|i| schema(files, this, i)).collect()),
                    (_, Value::Object(_)) => schema(files, this, v),
                    _ => v.clone(),
                };
                out.insert(k.clone(), value);
            }
            Value::Object(out)
        }
        self.files.0.iter().map(|f| (f.component.clone(), schema(&self.files, f, &f.value))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::files::tests::file;
    use serde_json::json;

    #[test]
    fn a_file_is_named_by_its_place_and_a_reference_points_at_its_component() {
        assert_eq!(component_name("customsDeclaration/1.0.0.json"), "customsDeclaration-1.0.0");
        assert_eq!(component_name("odd name/ü.json"), "odd_name-_");
        let files = Files(vec![
            file("a/1.0.0.json", Some("https://x.org/a.json"), json!({"$ref": "b.json#/$defs/p%25"})),
            file("a/b.json", None, json!({"$defs": {"p%": {}}})),
        ]);
        assert_eq!(component_ref(&files, &files.0[0], "b.json#/$defs/p%25"), "#/components/schemas/a-b/$defs/p%25");
        assert_eq!(component_ref(&files, &files.0[0], "nowhere.json"), "nowhere.json", "left as written");
    }
}
