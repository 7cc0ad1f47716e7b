//! The schema registry: every file under `schemas/`, as its publisher wrote it. A document
//! type is `schemas/<type>/<version>.json` (the type and version come from the file's place)
//! plus its table in the region file (`crate::document_types`); every other file is a shared
//! definition, there to be referred to. Each file keeps its `$id` and its `$schema` (drafts 4,
//! 6, 7, 2019-09 and 2020-12); a file without `$id` is known by its place,
//! `https://schemas.ventanilla.example/<path>`. References between files resolve offline, by
//! `$id` or relative to the referring file, and `/openapi.json` gets them rewritten to its
//! components. Keywords OpenAPI has and JSON Schema lacks are refused, with the fix; keywords no
//! draft defines are warned about. Each validator is compiled once at start, and validation
//! reports every violation at once, each with a JSON pointer into the request body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::Validator;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::document_types::{DocumentTypes, EnvelopeFacts, PayloadFacts, SubmittingParty};
use crate::domain::{CountryCode, DocumentType, SchemaVersion, Ucr};
use crate::identifiers::IdentifierSchemes;

/// Where a file without `$id` is known: its place under `schemas/`, under this base.
pub const LOCATION_BASE: &str = "https://schemas.ventanilla.example/";

/// Folders under `schemas/` with a role of their own: not document types.
const ENVELOPE: &str = "envelope";
/// The acknowledgment schema checks agencies' answers; it is not submitted as a document.
pub const ACKNOWLEDGMENT: &str = "acknowledgment";

/// The `$schema` of each draft the gateway honours (`http` or `https`, with or without `#`).
const DRAFTS: [(&str, &str); 5] = [
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

/// Why the registry cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    #[error("schema {path} is not JSON: {source}")]
    Json { path: PathBuf, #[source] source: serde_json::Error },
    #[error("schema {path}: {message}")]
    Layout { path: PathBuf, message: String },
    #[error("schema {path} does not compile, at {pointer}: {message}")]
    Compile { path: PathBuf, pointer: String, message: String },
    #[error("schema {path}, at {pointer}: \"{keyword}\" is OpenAPI's, not JSON Schema's, and the validator would ignore it. {fix}")]
    OpenApiKeyword { path: PathBuf, pointer: String, keyword: String, fix: String },
    #[error("the region file: {0}")]
    Region(String),
    #[error(
        "{document_type} {to} breaks its declared {mode} compatibility with {from}: {}. Fix the schema, or publish it \
         as a new major version (with \"x-compatibility\": \"none\" in its file, unless the region declares the \
         type's compatibility: that holds within a major version). For a publisher's files, declare it in the region \
         file ([document_types.{document_type}] compatibility; \"backward-open\" for an open content model, where an \
         added member is not breaking)", differences.join("; ")
    )]
    Incompatible { document_type: String, from: SchemaVersion, to: SchemaVersion, mode: &'static str, differences: Vec<String> },
}

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

/// A compiled schema and its source text.
pub struct CompiledSchema {
    pub version: SchemaVersion,
    /// Its `$id` as published, or its place when it has none.
    pub id: String,
    /// The schema as loaded, served by `GET /v1/schemas/{type}/{version}`.
    pub source: Arc<Value>,
    validator: Validator,
}

/// What the submitter got wrong before any payload check could run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// The body breaks the envelope or payload schema.
    Invalid(Vec<Violation>),
    /// No schema of this document type.
    UnknownType { document_type: String, known: Vec<String> },
    /// The type exists, not this version.
    UnknownVersion { document_type: String, version: String, known: Vec<String> },
}

/// A body that passed both the envelope and its payload schema, and what its type's table read
/// in it.
#[derive(Debug, Clone)]
pub struct ValidDocument {
    pub document_type: DocumentType,
    pub version: SchemaVersion,
    pub schema_id: String,
    pub ucr: Ucr,
    pub origin: CountryCode,
    pub destination: CountryCode,
    /// The party that submits it, as the payload names it.
    pub party: SubmittingParty,
    /// HS codes, transport mode and border post, as the payload states them.
    pub facts: PayloadFacts,
}

impl ValidDocument {
    /// What routing looks at.
    pub fn routing_facts(&self) -> crate::routing::RoutingFacts {
        crate::routing::RoutingFacts {
            document_type: self.document_type.clone(),
            origin: self.origin.clone(),
            destination: self.destination.clone(),
            hs_chapters: self.facts.hs_chapters.clone(),
            mode_of_transport: self.facts.mode_of_transport.clone(),
            border_post: self.facts.border_post.clone(),
        }
    }
}

/// Every schema, compiled once; shared read-only by all requests.
pub struct SchemaRegistry {
    envelope: CompiledSchema,
    acknowledgment: CompiledSchema,
    /// Document type -> versions (ascending) -> schema.
    documents: BTreeMap<String, BTreeMap<SchemaVersion, CompiledSchema>>,
    /// Versioned files of folders that are not document types (`common/1.0.0.json`), served.
    definitions: BTreeMap<String, BTreeMap<SchemaVersion, Arc<Value>>>,
    /// Every file, for `/openapi.json`'s components and its references.
    files: Arc<Files>,
    /// How to read each document type.
    types: DocumentTypes,
    /// How to check party identifiers, by scheme.
    schemes: Arc<IdentifierSchemes>,
    /// What the operator should know of the schemas and the region's tables, one line each (logged at start).
    warnings: Vec<String>,
}

/// One file under `schemas/`.
pub(crate) struct SchemaFile {
    /// Its path under `schemas/`, with `/` (`customsDeclaration/1.0.0.json`).
    pub(crate) place: String,
    path: PathBuf,
    /// The version, for `<folder>/<version>.json`.
    pub(crate) version: Option<SchemaVersion>,
    /// Its `$id` (draft 4: `id`) when absolute, else its place under [`LOCATION_BASE`].
    base: String,
    /// Its place under [`LOCATION_BASE`].
    location: String,
    /// Its name among `/openapi.json`'s components.
    component: String,
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
fn origin_and_path(uri: &str) -> Option<(&str, Vec<&str>)> {
    let (scheme, rest) = uri.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    Some((&uri[..scheme.len() + 3 + host.len()], path.split('/').collect()))
}

/// `place_dir` joined with `relative` segments (`..` going up), or `None` above the root.
fn join_place(place_dir: &[&str], relative: &[&str]) -> Option<String> {
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
    fn find(&self, uri: &str) -> Result<&SchemaFile, String> {
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
struct LocalFiles(Arc<Files>);

impl jsonschema::Retrieve for LocalFiles {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.find(uri.as_str())?.value.clone())
    }
}

/// Each version of a type against the one before it, in the mode the region declares for the
/// type (`[document_types.<type>] compatibility`, within a major version), else the one the
/// newer file declares (`x-compatibility`, default `backward`): a breaking difference refuses
/// the registry.
fn check_evolution(files: &[SchemaFile], types: &DocumentTypes) -> Result<(), SchemaError> {
    let mut by_folder: BTreeMap<&str, Vec<(&SchemaVersion, &SchemaFile)>> = BTreeMap::new();
    for f in files {
        if let Some(v) = &f.version {
            by_folder.entry(f.folder()).or_default().push((v, f));
        }
    }
    for (name, mut versions) in by_folder {
        versions.sort_by_key(|v| *v.0);
        for pair in versions.windows(2) {
            let ((from, old), (to, new)) = (pair[0], pair[1]);
            let mode = match types.compatibility(name) {
                // The region's word for a publisher's type holds within a major version; a new
                // major version may break, as semantic versioning says.
                Some(_) if to.major > from.major => crate::schema_diff::Mode::None,
                Some(declared) => declared,
                None => crate::schema_diff::Mode::of(&new.value).map_err(|message| SchemaError::Layout { path: new.path.clone(), message })?,
            };
            // Compared as `schemas diff` compares them: their references to themselves and to
            // files beside them followed, those files as loaded (overlays applied).
            let effective = |f: &SchemaFile| {
                let folder = f.folder();
                let beside = |name: &str| files.iter().find(|b| b.place == format!("{folder}/{name}")).map(|b| b.value.clone());
                crate::schema_diff::followed(&f.value, &beside)
            };
            let comparison = crate::schema_diff::compare(&effective(old), &effective(new));
            let breaking = mode.breaking(&comparison);
            if !breaking.is_empty() {
                return Err(SchemaError::Incompatible {
                    document_type: name.to_owned(),
                    from: *from,
                    to: *to,
                    mode: mode.as_str(),
                    differences: breaking.iter().map(|d| format!("{} at {}: {}", d.kind, d.pointer, d.explanation)).collect(),
                });
            }
        }
    }
    Ok(())
}

/// Every `*.json` file under `dir`, with its place (`a/b.json`), sorted.
fn json_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, SchemaError> {
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

/// A member name as a JSON pointer token (RFC 6901: `~` is `~0`, `/` is `~1`).
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

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
fn check_keywords(path: &Path, value: &Value, at: &str, warnings: &mut Vec<String>) -> Result<(), SchemaError> {
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

/// Every `$ref`, `$recursiveRef` and `$dynamicRef` in `value`, with the pointer of each.
fn references(value: &Value, at: String, out: &mut Vec<(String, String)>) {
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
fn each_schema(value: &Value, at: &str, visit: &mut dyn FnMut(&Map<String, Value>, &str)) {
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
fn unresolved(files: &Files, message: &str) -> SchemaError {
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
fn percent_decoded(s: &str) -> String {
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

/// `reference`, written in `this`, as a reference inside `/openapi.json`: the component of the
/// file it reaches and the pointer in it. A reference to nothing known is left as written (the
/// load refused those already).
fn component_ref(files: &Files, this: &SchemaFile, reference: &str) -> String {
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
    /// Loads and compiles every schema under `dir`, the region's `types` being the document
    /// types; refuses a version that breaks its type's declared compatibility with the version
    /// before it. Keywords no draft defines are in [`SchemaRegistry::warnings`].
    pub fn load(dir: &Path, types: DocumentTypes, schemes: IdentifierSchemes) -> Result<Self, SchemaError> {
        let layout = |path: &Path, message: String| SchemaError::Layout { path: path.to_owned(), message };
        let mut files = Vec::new();
        let mut warnings = Vec::new();
        let overlays: Vec<(&str, &crate::config::OverlayConfig)> = types.overlays().collect();
        let mut overlaid = vec![false; overlays.len()];
        for (place, path) in json_files(dir)? {
            let text = std::fs::read(&path).map_err(|source| SchemaError::Read { path: path.clone(), source })?;
            let mut value: Value = serde_json::from_slice(&text).map_err(|source| SchemaError::Json { path: path.clone(), source })?;
            let file = place.split_once('/').map_or(place.as_str(), |(_, f)| f);
            let stem = file.trim_end_matches(".json");
            // What the region adds to the publisher's file, before anything reads it.
            let is_version = place.matches('/').count() == 1 && SchemaVersion::parse(stem).is_ok();
            for (k, (document_type, o)) in overlays.iter().enumerate() {
                if crate::overlays::applies_to(o, document_type, &place, is_version) {
                    crate::overlays::apply(&mut value, o)
                        .map_err(|e| SchemaError::Region(format!("[document_types.{document_type}] overlay of {place} {e}")))?;
                    overlaid[k] = true;
                }
            }
            // `<folder>/<version>.json` is a version; a name of digits and dots that is not one
            // (`1.0.json`) is a version written wrong; any other file is a definition.
            let in_folder = place.matches('/').count() == 1;
            let version = match SchemaVersion::parse(stem) {
                Ok(v) if in_folder => Some(v),
                Err(e) if in_folder && stem.contains('.') && stem.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
                    return Err(layout(&path, format!("a version's file is named <major>.<minor>.<patch>.json: {e}")));
                }
                _ => None,
            };
            if let Some(declared) = value.get("$schema") {
                let known = declared.as_str().and_then(|d| {
                    let d = d.trim_end_matches('#');
                    let d = d.strip_prefix("https://").or_else(|| d.strip_prefix("http://"))?;
                    DRAFTS.iter().find(|(uri, _)| *uri == d)
                });
                if known.is_none() {
                    return Err(layout(&path, format!(
                        "its $schema {declared} is none of the drafts the gateway knows: {}",
                        DRAFTS.iter().map(|(uri, name)| format!("{name} (https://{uri})")).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            // Each file against its draft's meta-schema, so an error names the file it is in
            // (compiling a type would blame the file that refers to it) and a definition that
            // nothing refers to yet is checked too.
            if let Err(e) = jsonschema::meta::validate(&value) {
                let pointer = e.instance_path().as_str();
                let pointer = if pointer.is_empty() { "/".to_owned() } else { pointer.to_owned() };
                return Err(SchemaError::Compile { path: path.clone(), pointer, message: e.to_string() });
            }
            if value.is_object() {
                check_keywords(&path, &value, "", &mut warnings)?;
            }
            let location = format!("{LOCATION_BASE}{place}");
            let declared_id = value.get("$id").or_else(|| value.get("id")).and_then(Value::as_str).map(|i| i.trim_end_matches('#'));
            let base = match declared_id {
                Some(id) if id.contains("://") || id.starts_with("urn:") => id.to_owned(),
                Some(id) => jsonschema::uri::from_str(&location)
                    .and_then(|l| jsonschema::uri::resolve_against(&l.borrow(), id))
                    .map(|u| u.as_str().to_owned())
                    .map_err(|e| layout(&path, format!("its $id {id:?} is not a URI reference: {e}")))?,
                None => location.clone(),
            };
            if let Some(other) = files.iter().find(|f: &&SchemaFile| f.base == base) {
                return Err(layout(&path, format!("its $id {base} is also {}'s: each file needs its own", other.place)));
            }
            // Two places can make one name (`a-b/c.json`, `a/b-c.json`): the later one is numbered.
            let mut component = component_name(&place);
            let taken = |c: &str| files.iter().any(|f: &SchemaFile| f.component == c);
            if taken(&component) {
                let stem = component.clone();
                component = (2..).map(|n| format!("{stem}-{n}")).find(|c| !taken(c)).unwrap_or(stem);
            }
            files.push(SchemaFile { place, path, version, base, location, component, value });
        }
        if let Some((document_type, o)) = overlays.iter().zip(&overlaid).find(|(_, done)| !**done).map(|(o, _)| o) {
            return Err(SchemaError::Region(format!(
                "[document_types.{document_type}] overlay at {:?}: no schema file {} (a place under {}, such as {document_type}/1.0.0.json)",
                o.at,
                o.file.as_deref().map_or_else(|| format!("of the type {document_type}"), |f| format!("{f:?}")),
                dir.display()
            )));
        }
        for name in types.names() {
            if [ENVELOPE, ACKNOWLEDGMENT].contains(&name) {
                return Err(SchemaError::Region(format!("[document_types.{name}]: {name} is the gateway's own schema, not a document type")));
            }
            DocumentType::parse(name).map_err(|e| SchemaError::Region(format!("[document_types.{name}]: {e}")))?;
            if !files.iter().any(|f| f.folder() == name && f.version.is_some()) {
                return Err(SchemaError::Region(format!(
                    "[document_types.{name}] describes a document type with no schema: add {}/{name}/<version>.json, or remove the table",
                    dir.display()
                )));
            }
        }
        check_evolution(&files, &types)?;
        let files = Arc::new(Files(files));
        // A folder of versions the region does not describe, that no schema refers to, is most
        // likely a document type whose table was forgotten.
        let mut referred: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
        for f in &files.0 {
            let mut refs = Vec::new();
            references(&f.value, String::new(), &mut refs);
            referred.extend(refs.iter().filter_map(|(_, r)| resolve(&files, f, r).ok()).map(|(t, _)| t.folder()).filter(|t| *t != f.folder()));
        }
        let mut unused: Vec<&str> = files
            .0
            .iter()
            .filter(|f| f.version.is_some() && ![ENVELOPE, ACKNOWLEDGMENT].contains(&f.folder()) && !types.describes(f.folder()))
            .map(SchemaFile::folder)
            .filter(|folder| !referred.contains(folder))
            .collect();
        unused.dedup();
        for folder in unused {
            warnings.push(format!(
                "schemas {}/{folder}/: versions of a folder the region file does not describe, and no schema refers to it: \
                 add [document_types.{folder}] to make it a document type",
                dir.display()
            ));
        }
        let mut registry = jsonschema::Registry::new().retriever(LocalFiles(files.clone()));
        for f in &files.0 {
            registry = registry
                .add(&f.location, f.value.clone())
                .map_err(|e| SchemaError::Compile { path: f.path.clone(), pointer: "/$id".into(), message: e.to_string() })?;
        }
        let registry = registry.prepare().map_err(|e| unresolved(&files, &e.to_string()))?;
        let schemes = Arc::new(schemes);
        let compile = |f: &SchemaFile, version: SchemaVersion| -> Result<CompiledSchema, SchemaError> {
            let schemes = schemes.clone();
            let validator = jsonschema::options()
                .with_keyword("x-identifier", move |_, value, _| {
                    schemes
                        .keyword(value)
                        .map(|k| Box::new(k) as Box<dyn for<'i> jsonschema::Keyword<'i>>)
                        .map_err(jsonschema::ValidationError::schema)
                })
                .should_validate_formats(true)
                .with_base_uri(f.base.clone())
                .with_registry(&registry)
                .build(&f.value)
                .map_err(|e| match e.kind() {
                    jsonschema::error::ValidationErrorKind::Referencing(r) => unresolved(&files, &r.to_string()),
                    _ => {
                        let pointer = e.instance_path().as_str();
                        let pointer = if pointer.is_empty() { "/".to_owned() } else { pointer.to_owned() };
                        SchemaError::Compile { path: f.path.clone(), pointer, message: e.to_string() }
                    }
                })?;
            Ok(CompiledSchema { version, id: f.base.clone(), source: Arc::new(f.value.clone()), validator })
        };
        let (mut envelope, mut acknowledgment, mut documents, mut definitions) = (None, None, BTreeMap::new(), BTreeMap::new());
        for f in &files.0 {
            let Some(version) = f.version else { continue };
            match f.folder() {
                ENVELOPE => envelope = Some(compile(f, version)?),
                // The latest version answers are checked against (each accepts what the one
                // before accepted).
                ACKNOWLEDGMENT if acknowledgment.as_ref().is_none_or(|a: &CompiledSchema| a.version < version) => {
                    acknowledgment = Some(compile(f, version)?)
                }
                ACKNOWLEDGMENT => {}
                name if types.describes(name) => {
                    documents.entry(name.to_owned()).or_insert_with(BTreeMap::new).insert(version, compile(f, version)?);
                }
                name => {
                    definitions.entry(name.to_owned()).or_insert_with(BTreeMap::new).insert(version, Arc::new(f.value.clone()));
                }
            }
        }
        let missing = |what: &str| layout(dir, format!("no {what} schema (expected {what}/<version>.json)"));
        Ok(SchemaRegistry {
            envelope: envelope.ok_or_else(|| missing(ENVELOPE))?,
            acknowledgment: acknowledgment.ok_or_else(|| missing(ACKNOWLEDGMENT))?,
            documents,
            definitions,
            files,
            types,
            schemes,
            warnings,
        })
    }

    /// Loads the schemas of a region: `gateway.schemas_dir`, its types described by
    /// `[document_types]`, identifiers checked by `[identifier_schemes]`.
    pub fn of_region(dir: &Path, region: &crate::config::RegionConfig) -> Result<Self, SchemaError> {
        let types = DocumentTypes::new(&region.document_types).map_err(SchemaError::Region)?;
        let schemes = IdentifierSchemes::new(&region.identifier_schemes).map_err(SchemaError::Region)?;
        if let Some(s) = &region.indicators.simulation {
            for (setting, t) in [("declaration", &s.declaration), ("border_notice", &s.border_notice)] {
                if !types.describes(t.as_str()) {
                    return Err(SchemaError::Region(format!("[indicators.simulation] {setting} = {t:?}: not one of the region's [document_types]")));
                }
            }
        }
        // A type routed by a country its payload never states is routed by the envelope's word
        // alone: a document saying another destination would reach the wrong agencies.
        let mut unchecked = Vec::new();
        let knowingly = |name: &str| region.document_types.get(name).is_some_and(|t| t.countries_from_envelope);
        for name in types.names().filter(|name| !knowingly(name)) {
            let (by_origin, by_destination) = crate::routing::routed_by_country(&region.routes, name);
            let (origin, destination) = types.repeats_countries(name);
            for (setting, route, read) in [("origin", by_origin, origin), ("destination", by_destination, destination)] {
                if let (Some(route), false) = (route, read) {
                    unchecked.push(format!(
                        "[document_types.{name}] names no `{setting}` pointer, and route {route:?} sends it by its {setting}: \
                         the envelope's {setting} is taken as given, never checked against the document. Add \
                         {setting} = \"<JSON pointer>\" where the payload states that country, or \
                         countries_from_envelope = true if it states none"
                    ));
                }
            }
        }
        // A type whose submitting party has no country pointer: an NSW submits it only when the
        // party's identifier is of its country's scheme.
        for (name, table) in &region.document_types {
            // A national scheme fixed for the type names the party's country itself.
            let national = matches!(table.submitter.scheme.as_slice(), [one] if crate::identifiers::scheme_country(one).is_some());
            if table.submitter.country.is_empty() && !national {
                unchecked.push(format!(
                    "[document_types.{name}] submitter names no `country` pointer: a national single window may submit it only \
                     when the party's identifier is of a scheme of its country (AR-CUIT); add country = \"<JSON pointer>\" \
                     where the payload states the party's country"
                ));
            }
        }
        let mut registry = Self::load(dir, types, schemes)?;
        // Every pointer of the tables names something its type's schema describes.
        for (name, table) in &region.document_types {
            crate::schema_tables::check(&registry.files, name, table).map_err(SchemaError::Region)?;
        }
        registry.warnings.extend(unchecked);
        Ok(registry)
    }

    /// What the operator should know of the schemas and the region's tables (keywords no draft
    /// defines, folders nothing describes, countries routed on the envelope's word), one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How the region reads each document type.
    pub fn types(&self) -> &DocumentTypes {
        &self.types
    }

    /// How the region checks party identifiers, by scheme.
    pub fn schemes(&self) -> &IdentifierSchemes {
        &self.schemes
    }

    /// Document types and their versions, ascending, then the acknowledgment, the envelope and
    /// the versioned definitions.
    pub fn catalogue(&self) -> Vec<(String, Vec<SchemaVersion>)> {
        let mut out = self.document_types();
        out.push((ACKNOWLEDGMENT.into(), vec![self.acknowledgment.version]));
        out.push((ENVELOPE.into(), vec![self.envelope.version]));
        for (name, versions) in &self.definitions {
            out.push((name.clone(), versions.keys().copied().collect()));
        }
        out
    }

    /// The document types (not the envelope, acknowledgment or definitions) and their
    /// versions, ascending.
    pub fn document_types(&self) -> Vec<(String, Vec<SchemaVersion>)> {
        self.documents.iter().map(|(t, v)| (t.clone(), v.keys().copied().collect())).collect()
    }

    /// The schema source of `name` at `version`, for serving.
    pub fn source(&self, name: &str, version: &str) -> Option<Arc<Value>> {
        let version = SchemaVersion::parse(version).ok()?;
        match name {
            ENVELOPE => (self.envelope.version == version).then(|| self.envelope.source.clone()),
            ACKNOWLEDGMENT => (self.acknowledgment.version == version).then(|| self.acknowledgment.source.clone()),
            _ => match self.documents.get(name) {
                Some(versions) => versions.get(&version).map(|s| s.source.clone()),
                None => self.definitions.get(name)?.get(&version).cloned(),
            },
        }
    }

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

    /// Whether `document_type` is a described type with a schema (bounds what labels metrics
    /// can take).
    pub fn knows(&self, document_type: &str) -> bool {
        self.documents.contains_key(document_type)
    }

    fn known_types(&self) -> Vec<String> {
        self.documents.keys().cloned().collect()
    }
    /// Checks a submission body: the envelope, then the payload against its type's schema.
    pub fn validate_submission(&self, body: &Value) -> Result<ValidDocument, Rejection> {
        let mut violations = violations_of(&self.files, &self.envelope, body, "");
        let doc_type = body.get("documentType").and_then(Value::as_str);
        let versions = doc_type.and_then(|t| self.documents.get(t));
        if let (Some(t), None) = (doc_type, versions) {
            if DocumentType::parse(t).is_ok() {
                return Err(Rejection::UnknownType { document_type: t.to_owned(), known: self.known_types() });
            }
        }
        let requested = body.get("schemaVersion").and_then(Value::as_str);
        let schema = match (versions, requested) {
            (Some(v), Some(req)) => match SchemaVersion::parse(req).ok().and_then(|r| v.get(&r)) {
                Some(s) => Some(s),
                // A version the envelope's pattern lets through but no schema has (too many
                // digits to parse, say) is unknown too, not an unknown type.
                None if violations.is_empty() || SchemaVersion::parse(req).is_ok() => {
                    return Err(Rejection::UnknownVersion {
                        document_type: doc_type.unwrap_or_default().to_owned(),
                        version: req.to_owned(),
                        known: v.keys().map(|k| k.to_string()).collect(),
                    })
                }
                None => None,
            },
            (Some(v), None) => v.values().next_back(),
            _ => None,
        };
        if let (Some(schema), Some(payload)) = (schema, body.get("payload").filter(|p| p.is_object())) {
            violations.extend(violations_of(&self.files, schema, payload, "/payload"));
        }
        if !violations.is_empty() {
            return Err(Rejection::Invalid(violations));
        }
        // The envelope schema passed, so these fields exist and have the right shape; a
        // mismatch between schema and types is still reported, never unwrapped.
        let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
        let parse_err = |pointer: &str, e: crate::domain::ParseError| {
            Rejection::Invalid(vec![Violation {
                pointer: pointer.into(),
                keyword: "pattern".into(),
                message: e.to_string(),
                schema_path: format!("{}#/properties{pointer}", self.envelope.id),
            }])
        };
        let schema = schema.ok_or_else(|| Rejection::UnknownType {
            document_type: field("documentType").to_owned(),
            known: self.known_types(),
        })?;
        let payload = body.get("payload").unwrap_or(&Value::Null);
        let envelope = EnvelopeFacts { ucr: field("ucr"), origin: field("origin"), destination: field("destination") };
        let facts = self.types.read(field("documentType"), &envelope, payload).map_err(Rejection::Invalid)?;
        let party = self.types.submitting_party(field("documentType"), payload);
        // The submitting party's identifier, checked by its scheme even where the type's schema
        // does not ask for it (`x-identifier`): a schema as its publisher wrote it.
        if let Some(id) = &party.identifier {
            if let Err(why) = self.schemes.check(&id.scheme, &id.value) {
                return Err(Rejection::Invalid(vec![Violation::new(&format!("/payload{}", id.at), "x-identifier", truncate(why))]));
            }
        }
        Ok(ValidDocument {
            document_type: DocumentType::parse(field("documentType")).map_err(|e| parse_err("/documentType", e))?,
            version: schema.version,
            schema_id: schema.id.clone(),
            ucr: Ucr::parse(field("ucr")).map_err(|e| parse_err("/ucr", e))?,
            origin: CountryCode::parse(field("origin")).map_err(|e| parse_err("/origin", e))?,
            destination: CountryCode::parse(field("destination")).map_err(|e| parse_err("/destination", e))?,
            party,
            facts,
        })
    }

    /// Checks an agency's acknowledgment body.
    pub fn validate_acknowledgment(&self, body: &Value) -> Result<(), Vec<Violation>> {
        let v = violations_of(&self.files, &self.acknowledgment, body, "");
        if v.is_empty() { Ok(()) } else { Err(v) }
    }
}

/// Longest message text reported; a violation never echoes a huge input back.
const MAX_MESSAGE: usize = 300;
/// Most violations reported per schema: a 100,000-item array of wrong items must not cost
/// 100,000 errors of work and answer. The first ones are the ones to fix first anyway.
pub const MAX_VIOLATIONS: usize = 100;

/// A limit as people write it: `0`, `10.5`, `1000000` (not `1e6` or `1000000.0`).
fn limit(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        _ => v.to_string(),
    }
}

/// What a JSON value is, in words, with the value itself when it is short.
fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(t) if t.len() <= 40 => format!("the text {v}"),
        Value::String(_) => "a text".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `n` and the noun, in the singular for one.
fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// The violations of `instance` against `schema`, each once, in a trader's words: a pattern,
/// enum or format that fails is told by the field's `x-hint` (what is wanted, with an example)
/// when its schema gives one; bounds are told as people say them; and a value that breaks
/// several keywords of one field (a format and the pattern behind it) is one violation.
fn violations_of(files: &Files, schema: &CompiledSchema, instance: &Value, prefix: &str) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as K;
    // The common case, a valid document, answered by the fast check that builds no errors.
    if schema.validator.is_valid(instance) {
        return Vec::new();
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for e in schema.validator.iter_errors(instance) {
        if out.len() == MAX_VIOLATIONS {
            break;
        }
        let mut pointer = format!("{prefix}{}", e.instance_path().as_str());
        let keyword = e.kind().keyword().to_owned();
        // The schema of the field (the keyword's parent), where its hint is.
        let location = e.absolute_keyword_location().map(|u| u.as_str().to_owned()).unwrap_or_default();
        let field = location.rsplit_once('/').map_or(location.as_str(), |(parent, _)| parent).to_owned();
        // The location's fragment is percent-encoded (a member named `país` is `pa%C3%ADs`).
        let node = field.split_once('#').and_then(|(file, fragment)| files.find(file).ok()?.value.pointer(&percent_decoded(fragment)));
        // A keyword in an `allOf` entry (a region's overlay beside the publisher's) is told by
        // the hint of the field that holds the `allOf`.
        let hint = node.and_then(|n| n.get("x-hint")).or_else(|| {
            let (holder, index) = field.rsplit_once('/')?;
            let holder = holder.strip_suffix("/allOf").filter(|_| index.parse::<usize>().is_ok())?;
            let (file, fragment) = holder.split_once('#')?;
            files.find(file).ok()?.value.pointer(&percent_decoded(fragment))?.get("x-hint")
        });
        let hint = hint.and_then(Value::as_str);
        // The value, as the message quotes it: written out only by the arms that quote it, and
        // never more than a message holds.
        let found = || short(e.instance());
        let told = |wording: String| match hint {
            Some(h) => format!("{wording} ({h})"),
            None => wording,
        };
        let message = match e.kind() {
            K::AdditionalProperties { unexpected } => {
                if let [one] = unexpected.as_slice() {
                    pointer = format!("{pointer}/{}", escape(one));
                }
                format!("unexpected field(s): {}; this document type does not define them (check the spelling)", unexpected.join(", "))
            }
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                pointer = format!("{pointer}/{}", escape(name));
                format!("the required field {name:?} is missing")
            }
            K::Custom { message, .. } if keyword == "x-identifier" => {
                let member = node.and_then(|n| n.get("x-identifier")).and_then(|x| x.get("value")).and_then(Value::as_str).unwrap_or("value");
                pointer = format!("{pointer}/{}", escape(member));
                message.clone()
            }
            K::Pattern { .. } | K::Enum { .. } | K::Format { .. } | K::Constant { .. } if hint.is_some() => {
                format!("{} ({} is not)", hint.unwrap_or_default(), found())
            }
            K::Enum { options } if options.as_array().is_some_and(|o| o.len() > 12) => {
                format!("{} is not one of the {} allowed values", found(), options.as_array().map_or(0, Vec::len))
            }
            K::Minimum { limit: l } => told(format!("must be at least {} (it is {})", limit(l), found())),
            K::ExclusiveMinimum { limit: l } => told(format!("must be greater than {} (it is {})", limit(l), found())),
            K::Maximum { limit: l } => told(format!("must be at most {} (it is {})", limit(l), found())),
            K::ExclusiveMaximum { limit: l } => told(format!("must be less than {} (it is {})", limit(l), found())),
            K::MinLength { limit: l } => told(format!("must have at least {}", count(*l, "character"))),
            K::MaxLength { limit: l } => told(format!("must have at most {}", count(*l, "character"))),
            K::MinItems { limit: l } => told(format!("must have at least {}", count(*l, "item"))),
            K::MaxItems { limit: l } => told(format!("must have at most {}", count(*l, "item"))),
            K::UniqueItems => told("must not list the same item twice".to_owned()),
            K::MinProperties { limit: l } => told(format!("must have at least {}", count(*l, "field"))),
            K::MaxProperties { limit: l } => told(format!("must have at most {}", count(*l, "field"))),
            K::Type { kind: jsonschema::error::TypeKind::Single(t) } => {
                let wanted = t.to_string();
                let article = if wanted.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                told(format!("must be {article} {wanted}, not {}", kind_of(e.instance())))
            }
            _ => e.to_string(),
        };
        // One mistake, one error: a second keyword of the same field failing on the same value.
        // A keyword in an `allOf` entry (a region's overlay) is of the field that holds it: one
        // violation when both the publisher's and the region's say no.
        let of_field = match field.rsplit_once('/') {
            Some((holder, index)) if index.parse::<usize>().is_ok() => holder.strip_suffix("/allOf").unwrap_or(&field).to_owned(),
            _ => field.clone(),
        };
        let key = (pointer.clone(), of_field);
        if !field.is_empty() && seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let schema_path = if location.is_empty() { format!("{}#{}", schema.id, e.schema_path().as_str()) } else { location };
        out.push(Violation { pointer, keyword, message: truncate(message), schema_path });
    }
    // An identifier whose value already broke its own field's rules (a pattern, a length) is
    // one mistake: the field's error says it; the scheme's check adds nothing.
    let broken: Vec<String> = out.iter().filter(|v| v.keyword != "x-identifier").map(|v| v.pointer.clone()).collect();
    out.retain(|v| v.keyword != "x-identifier" || !broken.contains(&v.pointer));
    out
}

/// A value written as JSON for a message, at most [`MAX_MESSAGE`] bytes of it: a 1 MiB object
/// that fails a keyword is not written out whole to be cut.
fn short(v: &Value) -> String {
    /// Takes bytes until it is full, then refuses the rest.
    struct Bounded(Vec<u8>);
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = (MAX_MESSAGE + 4).saturating_sub(self.0.len());
            if room == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let n = room.min(buf.len());
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Bounded(Vec::new());
    let _ = serde_json::to_writer(&mut out, v);
    truncate(String::from_utf8_lossy(&out.0).into_owned())
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}


impl Violation {
    /// A violation found by the gateway's own checks rather than a schema keyword.
    pub fn new(pointer: &str, keyword: &str, message: String) -> Self {
        Violation { pointer: pointer.into(), keyword: keyword.into(), message, schema_path: String::new() }
    }
}
