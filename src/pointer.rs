//! What a refused document is told, and where: a violation at a JSON pointer (RFC 6901) into the
//! request body. A leaf that the schemas, the document types' tables and the schema comparison
//! all use, so that none of them imports another for it.

use serde::Serialize;

/// One violation of a schema, as reported to the submitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct Violation {
    /// JSON pointer (RFC 6901) into the request body.
    pub pointer: String,
    /// The JSON Schema keyword that failed (`required`, `pattern`, ...).
    pub keyword: String,
    /// What is wrong, in words.
    pub message: String,
    /// Where in the schema the rule is (the file's `$id#/pointer`), or empty for a rule of the
    /// gateway's own (a request's members, the region's checks of a payload).
    #[serde(rename = "schemaPath")]
    pub schema_path: String,
}

impl Violation {
    /// A violation found by the gateway's own checks rather than a schema keyword.
    pub fn new(pointer: &str, keyword: &str, message: String) -> Self {
        Violation { pointer: pointer.into(), keyword: keyword.into(), message, schema_path: String::new() }
    }
}

/// A member name as a JSON pointer token (RFC 6901: `~` is `~0`, `/` is `~1`).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Most violations reported per schema: a 100,000-item array of wrong items must not cost
/// 100,000 errors of work and answer. The first ones are the ones to fix first anyway.
pub const MAX_VIOLATIONS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_name_is_escaped_as_a_pointer_token() {
        assert_eq!(escape("a/b~c"), "a~1b~0c");
        assert_eq!(escape("plain"), "plain");
        // `~` first: `/` escaped to `~1` must not have its `~` escaped again.
        assert_eq!(escape("~1"), "~01");
    }

    #[test]
    fn a_violation_of_the_gateways_own_rules_names_no_schema() {
        let v = Violation::new("/payload/x", "x-identifier", "wrong".into());
        assert_eq!((v.pointer.as_str(), v.keyword.as_str(), v.schema_path.as_str()), ("/payload/x", "x-identifier", ""));
        assert_eq!(serde_json::to_value(&v).unwrap()["schemaPath"], "");
    }
}
