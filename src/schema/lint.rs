//! The keywords of a publisher's schema checked before it is compiled: OpenAPI's keywords, which
//! JSON Schema validators ignore, are refused with the fix; keywords no draft defines are warned
//! about (a typo, most likely).

use std::path::Path;

use serde_json::{Map, Value};

use super::SchemaError;
use crate::pointer::escape;

/// The `$schema` of each draft the gateway honours (`http` or `https`, with or without `#`).
pub(super) const DRAFTS: [(&str, &str); 5] = [
    ("json-schema.org/draft-04/schema", "draft 4"),
    ("json-schema.org/draft-06/schema", "draft 6"),
    ("json-schema.org/draft-07/schema", "draft 7"),
    ("json-schema.org/draft/2019-09/schema", "draft 2019-09"),
    ("json-schema.org/draft/2020-12/schema", "draft 2020-12"),
];

/// Every keyword of drafts 4 to 2020-12: a keyword outside this list (and not an `x-`
/// extension) is a typo or a dialect the validator ignores, so it is warned about.
const KNOWN_KEYWORDS: &[&str] = &[
    "$schema", "$id", "id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor",
    "$defs", "definitions", "$comment", "$vocabulary", "title", "description", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "items", "additionalItems", "prefixItems", "contains",
    "minContains", "maxContains", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required",
    "properties", "patternProperties", "additionalProperties", "dependencies", "dependentRequired",
    "dependentSchemas", "propertyNames", "unevaluatedItems", "unevaluatedProperties", "allOf", "anyOf", "oneOf",
    "not", "if", "then", "else", "format", "contentEncoding", "contentMediaType", "contentSchema",
];

/// What to write instead of an OpenAPI keyword.
fn openapi_fix(keyword: &str, schema: &Map<String, Value>) -> Option<String> {
    Some(match keyword {
        "nullable" if schema.get("nullable") == Some(&Value::Bool(false)) => "Remove it: null is refused unless \"type\" allows \"null\".".to_owned(),
        "nullable" => match schema.get("type") {
            Some(Value::String(t)) => format!("Write \"type\": [\"{t}\", \"null\"] instead."),
            _ => "Add \"null\" to \"type\" (or {\"type\": \"null\"} to an anyOf) instead.".to_owned(),
        },
        "example" => "Write \"examples\": [ ...the example... ] instead.".to_owned(),
        "discriminator" => {
            let property = schema.get("discriminator").and_then(|d| d.get("propertyName")).and_then(Value::as_str).unwrap_or("the property");
            format!("Select the branch with oneOf, each branch giving {property:?} a \"const\", and remove it.")
        }
        "xml" | "externalDocs" => format!("Remove it, or keep it as the annotation \"x-{keyword}\"."),
        _ => return None,
    })
}

/// Checks the keywords of every schema in `value` (at `at`): OpenAPI's are refused, unknown ones
/// warned about. Only schema positions are read (not `properties`' names, nor `enum` values).
pub(super) fn check_keywords(path: &Path, value: &Value, at: &str, warnings: &mut Vec<String>) -> Result<(), SchemaError> {
    let Value::Object(schema) = value else { return Ok(()) };
    for (keyword, v) in schema {
        let here = format!("{at}/{}", escape(keyword));
        if let Some(fix) = openapi_fix(keyword, schema) {
            return Err(SchemaError::OpenApiKeyword { path: path.into(), pointer: here, keyword: keyword.clone(), fix });
        }
        if !keyword.starts_with("x-") && !KNOWN_KEYWORDS.contains(&keyword.as_str()) {
            warnings.push(format!("schema {}, at {here}: {keyword:?} is a keyword of no JSON Schema draft: the validator ignores it (a typo? an annotation is written \"x-{keyword}\")", path.display()));
        }
        match (keyword.as_str(), v) {
            ("properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" | "dependencies", Value::Object(map)) => {
                for (name, sub) in map {
                    check_keywords(path, sub, &format!("{here}/{}", escape(name)), warnings)?;
                }
            }
            ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(list)) => {
                for (i, sub) in list.iter().enumerate() {
                    check_keywords(path, sub, &format!("{here}/{i}"), warnings)?;
                }
            }
            (
                "items" | "additionalItems" | "additionalProperties" | "not" | "if" | "then" | "else" | "contains" | "propertyNames"
                | "unevaluatedItems" | "unevaluatedProperties" | "contentSchema",
                sub,
            ) => check_keywords(path, sub, &here, warnings)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lint(schema: Value) -> (Result<(), SchemaError>, Vec<String>) {
        let mut warnings = Vec::new();
        (check_keywords(Path::new("t.json"), &schema, "", &mut warnings), warnings)
    }

    #[test]
    fn an_openapi_keyword_is_refused_with_its_fix_at_its_pointer() {
        let (result, _) = lint(json!({"properties": {"a/b": {"type": "string", "nullable": true}}}));
        match result {
            Err(SchemaError::OpenApiKeyword { pointer, keyword, fix, .. }) => {
                assert_eq!((pointer.as_str(), keyword.as_str()), ("/properties/a~1b/nullable", "nullable"));
                assert!(fix.contains(r#""type": ["string", "null"]"#), "{fix}");
            }
            other => panic!("refused as OpenAPI's: {other:?}"),
        }
        let (result, _) = lint(json!({"example": 1}));
        assert!(matches!(result, Err(SchemaError::OpenApiKeyword { ref fix, .. }) if fix.contains("examples")));
    }

    #[test]
    fn an_unknown_keyword_is_warned_of_and_data_and_extensions_are_not_read() {
        let (result, warnings) =
            lint(json!({"items": {"maxLenght": 3}, "enum": [{"nullable": true}], "x-hint": "fine", "properties": {"minimum": {}}}));
        assert!(result.is_ok(), "an enum value and a property's name are not keywords");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("/items/maxLenght") && warnings[0].contains("x-maxLenght"), "{warnings:?}");
    }
}
