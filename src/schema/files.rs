//! Finding the files under `schemas/` and resolving the references between them, offline: by
//! `$id`, by place, or relative to the referring file's `$id` towards a file without one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::SchemaError;
use crate::domain::SchemaVersion;
use crate::pointer::escape;

/// Where a file without `$id` is known: its place under `schemas/`, under this base.
pub const LOCATION_BASE: &str = "https://schemas.ventanilla.example/";

/// One file under `schemas/`.
pub(crate) struct SchemaFile {
    /// Its path under `schemas/`, with `/` (`customsDeclaration/1.0.0.json`).
    pub(crate) place: String,
    pub(super) path: PathBuf,
    /// The version, for `<folder>/<version>.json`.
    pub(crate) version: Option<SchemaVersion>,
    /// Its `$id` (draft 4: `id`) when absolute, else its place under [`LOCATION_BASE`].
    pub(super) base: String,
    /// Its place under [`LOCATION_BASE`].
    pub(super) location: String,
    /// Its name among `/openapi.json`'s components.
    pub(super) component: String,
    pub(crate) value: Value,
}

impl SchemaFile {
    pub(crate) fn folder(&self) -> &str {
        self.place.split('/').next().unwrap_or_default()
    }
}

/// Every file, found by URI: its `$id` or its place; and, for a reference a publisher wrote
/// relative to a file's `$id` towards a file that has no `$id`, by the same relative path from
/// the referring file's place (`parties.json` beside it, `../shared/codes.json`).
pub(crate) struct Files(pub(crate) Vec<SchemaFile>);

/// `uri` split into its origin (`https://host`) and the segments of its path.
pub(super) fn origin_and_path(uri: &str) -> Option<(&str, Vec<&str>)> {
    let (scheme, rest) = uri.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((&uri[..scheme.len() + 3 + host.len()], path.split('/').collect()))
}

/// `place_dir` joined with `relative` segments (`..` going up), or `None` above the root.
pub(super) fn join_place(place_dir: &[&str], relative: &[&str]) -> Option<String> {
    let mut out: Vec<&str> = place_dir.to_vec();
    for seg in relative {
        match *seg {
            ".." => {
                out.pop()?;
            }
            "." | "" => {}
            s => out.push(s),
        }
    }
    Some(out.join("/"))
}

impl Files {
    pub(super) fn find(&self, uri: &str) -> Result<&SchemaFile, String> {
        let uri = uri.split('#').next().unwrap_or_default();
        if let Some(f) = self.0.iter().find(|f| f.base == uri || f.location == uri) {
            return Ok(f);
        }
        // Which file could have referred to `uri` relatively: one whose `$id` shares its origin.
        // The same relative path from that file's place is the file meant, if it has no `$id`.
        let mut found: Vec<&SchemaFile> = Vec::new();
        if let Some((origin, target)) = origin_and_path(uri) {
            for referrer in &self.0 {
                let Some((o, base)) = origin_and_path(&referrer.base) else { continue };
                if o != origin || referrer.base == referrer.location {
                    continue;
                }
                let base_dir = &base[..base.len().saturating_sub(1)];
                let common = base_dir.iter().zip(&target).take_while(|(a, b)| a == b).count();
                let mut relative: Vec<&str> = std::iter::repeat_n("..", base_dir.len() - common).collect();
                relative.extend_from_slice(&target[common..]);
                let place: Vec<&str> = referrer.place.split('/').collect();
                let Some(meant) = join_place(&place[..place.len() - 1], &relative) else { continue };
                if let Some(f) = self.0.iter().find(|f| f.place == meant && f.base == f.location) {
                    if !found.iter().any(|g| g.place == f.place) {
                        found.push(f);
                    }
                }
            }
        }
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "no file under the schemas directory is {uri}: add it with that $id, or without an $id at the same place \
                 relative to the file that refers to it"
            )),
            many => Err(format!(
                "{uri} could be any of {}: give the files their $id",
                many.iter().map(|f| f.place.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
}

/// Hands the validator the files a reference reaches by file name only.
pub(super) struct LocalFiles(pub(super) Arc<Files>);

impl jsonschema::Retrieve for LocalFiles {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.find(uri.as_str())?.value.clone())
    }
}

/// Every `*.json` file under `dir`, with its place (`a/b.json`), sorted.
pub(super) fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, SchemaError> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), SchemaError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::Read { path: dir.into(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| SchemaError::Read { path: dir.into(), source })?;
            let (path, name) = (entry.path(), entry.file_name().to_string_lossy().into_owned());
            if name.starts_with('.') {
                continue;
            }
            let place = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            if path.is_dir() {
                walk(&path, &place, out)?;
            } else if name.ends_with(".json") {
                out.push((place, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    out.sort();
    Ok(out)
}

/// Every `$ref`, `$recursiveRef` and `$dynamicRef` in `value`, with the pointer of each.
pub(super) fn references(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    each_schema(value, &at, &mut |schema, here| {
        for (k, v) in schema {
            if let ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) = (k.as_str(), v) {
                out.push((format!("{here}/{}", escape(k)), r.clone()));
            }
        }
    });
}

/// Calls `visit` with every object of a schema that may be a schema, and its pointer: the
/// values of keywords that hold data (`enum`, `const`, `examples`, `default`) are not gone
/// into, the members of `properties`, `$defs` and the like are (a property named `$ref` is
/// not a reference), and so is anything else (a keyword of no draft may hold a schema).
pub(super) fn each_schema(value: &Value, at: &str, visit: &mut dyn FnMut(&Map<String, Value>, &str)) {
    match value {
        Value::Object(map) => {
            visit(map, at);
            for (k, v) in map {
                let here = format!("{at}/{}", escape(k));
                match (k.as_str(), v) {
                    ("enum" | "const" | "examples" | "default", _) => {}
                    ("properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" | "dependencies", Value::Object(m)) => {
                        for (name, sub) in m {
                            each_schema(sub, &format!("{here}/{}", escape(name)), visit);
                        }
                    }
                    _ => each_schema(v, &here, visit),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| each_schema(v, &format!("{at}/{i}"), visit)),
        _ => {}
    }
}

/// A reference the validator could not resolve, told with the file and pointer that make it:
/// the referencing crate's message names the URI only.
pub(super) fn unresolved(files: &Files, message: &str) -> SchemaError {
    for f in &files.0 {
        let mut refs = Vec::new();
        references(&f.value, String::new(), &mut refs);
        for (pointer, reference) in refs {
            let why = match resolve(files, f, &reference) {
                Err(why) => why,
                Ok(_) => continue,
            };
            return SchemaError::Compile { path: f.path.clone(), pointer, message: format!("{reference:?} cannot be resolved: {why}") };
        }
    }
    SchemaError::Compile { path: PathBuf::from("the schemas directory"), pointer: "/".into(), message: message.to_owned() }
}

/// `%XX` escapes of a URI fragment decoded.
pub(super) fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `reference`, written in `this`, leads: the file and the JSON pointer inside it (an
/// anchor, `#name`, found where `$anchor` or a draft's `$id`/`id` of `#name` declares it).
pub(crate) fn resolve<'f>(files: &'f Files, this: &SchemaFile, reference: &str) -> Result<(&'f SchemaFile, String), String> {
    let target = jsonschema::uri::from_str(&this.base)
        .and_then(|b| jsonschema::uri::resolve_against(&b.borrow(), reference))
        .map(|u| u.as_str().to_owned())
        .map_err(|e| e.to_string())?;
    let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
    let found = files.find(file)?;
    let fragment = percent_decoded(fragment);
    if fragment.is_empty() || fragment.starts_with('/') {
        return match found.value.pointer(&fragment) {
            Some(_) => Ok((found, fragment)),
            None => Err(format!("{} has nothing at {fragment}", found.place)),
        };
    }
    let mut at = None;
    each_schema(&found.value, "", &mut |schema, here| {
        let declared = |k: &str| schema.get(k).and_then(Value::as_str);
        if at.is_none() && (declared("$anchor") == Some(&fragment) || declared("$id").or(declared("id")).is_some_and(|i| i.strip_prefix('#') == Some(&fragment))) {
            at = Some(here.to_owned());
        }
    });
    at.map(|at| (found, at)).ok_or_else(|| format!("{} declares no anchor {fragment:?}", found.place))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A file at `place`, with `$id` `id` when given, as the registry's load makes it.
    pub(in crate::schema) fn file(place: &str, id: Option<&str>, value: Value) -> SchemaFile {
        let location = format!("{LOCATION_BASE}{place}");
        SchemaFile {
            place: place.into(),
            path: PathBuf::from(place),
            version: None,
            base: id.map_or_else(|| location.clone(), str::to_owned),
            location,
            component: super::super::component_name(place),
            value,
        }
    }

    #[test]
    fn a_reference_resolves_by_id_by_place_and_relative_to_an_id_towards_a_file_without_one() {
        let files = Files(vec![
            file("bl/1.0.0.json", Some("https://dcsa.org/bl/1.0.0.json"), json!({"$ref": "parties.json#/$defs/party"})),
            file("bl/parties.json", None, json!({"$defs": {"party": {"type": "object"}, "a b": {"$anchor": "named"}}})),
            file("common/codes.json", Some("https://example.org/codes.json"), json!({"$defs": {"x": {}}})),
        ]);
        let bl = &files.0[0];
        // Relative to bl's $id, towards a file without one: the same path from bl's place.
        let (found, at) = resolve(&files, bl, "parties.json#/$defs/party").unwrap();
        assert_eq!((found.place.as_str(), at.as_str()), ("bl/parties.json", "/$defs/party"));
        // By $id, and by place under the base.
        assert_eq!(resolve(&files, bl, "https://example.org/codes.json#/$defs/x").unwrap().0.place, "common/codes.json");
        assert_eq!(resolve(&files, bl, &format!("{LOCATION_BASE}common/codes.json")).unwrap().0.place, "common/codes.json");
        // A percent-encoded pointer and an anchor.
        assert_eq!(resolve(&files, bl, "parties.json#/$defs/a%20b").unwrap().1, "/$defs/a b");
        assert_eq!(resolve(&files, bl, "parties.json#named").unwrap().1, "/$defs/a b");
        // What is not there is said.
        let refused = |reference: &str| match resolve(&files, bl, reference) {
            Err(why) => why,
            Ok((found, at)) => panic!("{reference} resolved to {}#{at}", found.place),
        };
        assert!(refused("parties.json#/$defs/nobody").contains("has nothing at /$defs/nobody"));
        assert!(refused("missing.json").contains("no file under the schemas directory"));
        assert!(refused("parties.json#nameless").contains("declares no anchor"));
    }

    #[test]
    fn places_join_and_fragments_decode() {
        assert_eq!(join_place(&["a", "b"], &["..", "c.json"]).as_deref(), Some("a/c.json"));
        assert_eq!(join_place(&["a"], &[".", "b", "c.json"]).as_deref(), Some("a/b/c.json"));
        assert_eq!(join_place(&[], &["..", "x.json"]), None, "nothing above the root");
        assert_eq!(percent_decoded("/a%20b/%7e%zz"), "/a b/~%zz");
        assert_eq!(origin_and_path("https://h.org/x/y.json"), Some(("https://h.org", vec!["x", "y.json"])));
    }

    #[test]
    fn references_are_found_in_schemas_and_not_in_data() {
        let mut refs = Vec::new();
        let schema = json!({"properties": {"$ref": {"$ref": "#/a"}}, "enum": [{"$ref": "data"}], "allOf": [{"$dynamicRef": "#d"}]});
        references(&schema, String::new(), &mut refs);
        refs.sort();
        assert_eq!(refs, vec![("/allOf/0/$dynamicRef".to_owned(), "#d".to_owned()), ("/properties/$ref/$ref".to_owned(), "#/a".to_owned())]);
    }
}
