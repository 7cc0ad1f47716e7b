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

/// Where a file without `$id` is known: its place under `schemas/`, under this base.
pub const LOCATION_BASE: &str = "https://schemas.ventanilla.example/";

/// The gateway's own name of `schemas/<name>/<version>.json`.
pub fn schema_id(name: &str, version: &SchemaVersion) -> String {
    format!("{LOCATION_BASE}{name}/{version}.json")
}

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
         as a new major version with \"x-compatibility\": \"none\"", differences.join("; ")
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
    /// Where in the schema the rule is (`$id#/pointer`).
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
    /// Keywords no draft defines, one line each (logged at start).
    warnings: Vec<String>,
}

/// One file under `schemas/`.
struct SchemaFile {
    /// Its path under `schemas/`, with `/` (`customsDeclaration/1.0.0.json`).
    place: String,
    path: PathBuf,
    /// The version, for `<folder>/<version>.json`.
    version: Option<SchemaVersion>,
    /// Its `$id` (draft 4: `id`) when absolute, else its place under [`LOCATION_BASE`].
    base: String,
    /// Its place under [`LOCATION_BASE`].
    location: String,
    /// Its name among `/openapi.json`'s components.
    component: String,
    value: Value,
}

impl SchemaFile {
    fn folder(&self) -> &str {
        self.place.split('/').next().unwrap_or_default()
    }
}

/// Every file, found by URI: its `$id`, its place, or (for a relative reference a publisher
/// wrote between files that carry no `$id`) its file name.
struct Files(Vec<SchemaFile>);

impl Files {
    fn find(&self, uri: &str) -> Result<&SchemaFile, String> {
        let uri = uri.split('#').next().unwrap_or_default();
        if let Some(f) = self.0.iter().find(|f| f.base == uri || f.location == uri) {
            return Ok(f);
        }
        let path = uri.split_once("://").map_or(uri, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
        let name = path.rsplit('/').next().unwrap_or_default();
        let candidates: Vec<&SchemaFile> = self.0.iter().filter(|f| f.place.rsplit('/').next() == Some(name)).collect();
        // The longest common ending of the paths decides between files of one name.
        let ending = |f: &SchemaFile| f.place.rsplit('/').zip(path.rsplit('/')).take_while(|(a, b)| a == b).count();
        let best = candidates.iter().map(|f| ending(f)).max().unwrap_or(0);
        let best: Vec<&&SchemaFile> = candidates.iter().filter(|f| ending(f) == best).collect();
        match best.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("no file under the schemas directory is {uri}: add it (beside the file that refers to it, or with that $id)")),
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

/// Each version of a type against the one before it, in the mode the newer one declares
/// (`x-compatibility`, default `backward`): a breaking difference refuses the registry.
fn check_evolution(files: &[SchemaFile]) -> Result<(), SchemaError> {
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
            let mode = crate::schema_diff::Mode::of(&new.value).map_err(|message| SchemaError::Layout { path: new.path.clone(), message })?;
            let comparison = crate::schema_diff::compare(&old.value, &new.value);
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
            } else if name.ends_with(".json") && !prefix.is_empty() {
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

/// A JSON pointer token.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// What to write instead of an OpenAPI keyword.
fn openapi_fix(keyword: &str, schema: &Map<String, Value>) -> Option<String> {
    Some(match keyword {
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
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{at}/{}", escape(k));
                match (k.as_str(), v) {
                    ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) => out.push((here, r.clone())),
                    ("enum" | "const" | "examples" | "default", _) => {}
                    _ => references(v, here, out),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| references(v, format!("{at}/{i}"), out)),
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
            let target = jsonschema::uri::from_str(&f.base)
                .and_then(|b| jsonschema::uri::resolve_against(&b.borrow(), &reference))
                .map(|u| u.as_str().to_owned())
                .unwrap_or_else(|_| reference.clone());
            let file_part = target.split('#').next().unwrap_or_default();
            if !file_part.is_empty() && message.contains(file_part) && files.find(file_part).is_err() {
                let why = files.find(file_part).err().unwrap_or_default();
                return SchemaError::Compile { path: f.path.clone(), pointer, message: format!("{reference:?} cannot be resolved: {why}") };
            }
        }
    }
    SchemaError::Compile { path: PathBuf::from("schemas"), pointer: "/".into(), message: message.to_owned() }
}

/// `reference`, written in `this`, as a reference inside `/openapi.json`: the component of the
/// file it reaches and the fragment in it. A reference to nothing known is left as written.
fn component_ref(files: &Files, this: &SchemaFile, reference: &str) -> String {
    let target = match jsonschema::uri::from_str(&this.base).and_then(|b| jsonschema::uri::resolve_against(&b.borrow(), reference)) {
        Ok(u) => u.as_str().to_owned(),
        Err(_) => return reference.to_owned(),
    };
    let (file, fragment) = target.split_once('#').unwrap_or((&target, ""));
    let Ok(found) = files.find(file) else { return reference.to_owned() };
    // A pointer fragment stays a pointer inside the component; an anchor (`#name`) has no
    // place in the document's own pointers, so it keeps its file's component.
    let fragment = if fragment.starts_with('/') { fragment } else { "" };
    format!("#/components/schemas/{}{fragment}", found.component)
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
    pub fn load(dir: &Path, types: DocumentTypes) -> Result<Self, SchemaError> {
        let layout = |path: &Path, message: String| SchemaError::Layout { path: path.to_owned(), message };
        let mut files = Vec::new();
        let mut warnings = Vec::new();
        for (place, path) in json_files(dir)? {
            let text = std::fs::read(&path).map_err(|source| SchemaError::Read { path: path.clone(), source })?;
            let value: Value = serde_json::from_slice(&text).map_err(|source| SchemaError::Json { path: path.clone(), source })?;
            let file = place.split_once('/').map_or(place.as_str(), |(_, f)| f);
            let stem = file.trim_end_matches(".json");
            // `<folder>/<version>.json` is a version; a name not starting with a digit is a
            // definition beside them; anything else is a version written wrong.
            let version = if stem.starts_with(|c: char| c.is_ascii_digit()) && !file.contains('/') {
                Some(SchemaVersion::parse(stem).map_err(|e| layout(&path, format!("a version's file is named <major>.<minor>.<patch>.json: {e}")))?)
            } else {
                None
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
            let component = component_name(&place);
            files.push(SchemaFile { place, path, version, base, location, component, value });
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
        check_evolution(&files)?;
        let files = Arc::new(Files(files));
        let mut registry = jsonschema::Registry::new().retriever(LocalFiles(files.clone()));
        for f in &files.0 {
            registry = registry
                .add(&f.location, f.value.clone())
                .map_err(|e| SchemaError::Compile { path: f.path.clone(), pointer: "/$id".into(), message: e.to_string() })?;
        }
        let registry = registry.prepare().map_err(|e| unresolved(&files, &e.to_string()))?;
        let compile = |f: &SchemaFile, version: SchemaVersion| -> Result<CompiledSchema, SchemaError> {
            let validator = jsonschema::options()
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
                ACKNOWLEDGMENT => acknowledgment = Some(compile(f, version)?),
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
            warnings,
        })
    }

    /// Loads the schemas of a region: `gateway.schemas_dir`, its types described by
    /// `[document_types]`.
    pub fn of_region(dir: &Path, region: &crate::config::RegionConfig) -> Result<Self, SchemaError> {
        let types = DocumentTypes::new(&region.document_types).map_err(SchemaError::Region)?;
        if let Some(s) = &region.indicators.simulation {
            for (setting, t) in [("declaration", &s.declaration), ("border_notice", &s.border_notice)] {
                if !types.describes(t.as_str()) {
                    return Err(SchemaError::Region(format!("[indicators.simulation] {setting} = {t:?}: not one of the region's [document_types]")));
                }
            }
        }
        Self::load(dir, types)
    }

    /// Keywords no draft defines, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How the region reads each document type.
    pub fn types(&self) -> &DocumentTypes {
        &self.types
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
        fn rewrite(files: &Files, this: &SchemaFile, v: &Value) -> Value {
            match v {
                Value::Object(map) => {
                    let mut out = Map::new();
                    for (k, v) in map {
                        match (k.as_str(), v) {
                            ("$id" | "id", Value::String(_)) => {}
                            ("$schema", Value::String(s)) if s.contains("2020-12") => {}
                            ("$ref" | "$recursiveRef" | "$dynamicRef", Value::String(r)) => {
                                out.insert(k.clone(), Value::String(component_ref(files, this, r)));
                            }
                            ("enum" | "const" | "examples" | "default", _) => {
                                out.insert(k.clone(), v.clone());
                            }
                            _ => {
                                out.insert(k.clone(), rewrite(files, this, v));
                            }
                        }
                    }
                    Value::Object(out)
                }
                Value::Array(items) => Value::Array(items.iter().map(|i| rewrite(files, this, i)).collect()),
                other => other.clone(),
            }
        }
        self.files.0.iter().map(|f| (f.component.clone(), rewrite(&self.files, f, &f.value))).collect()
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
        let mut violations = violations_of(&self.envelope, body, "");
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
            violations.extend(violations_of(schema, payload, "/payload"));
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
        Ok(ValidDocument {
            document_type: DocumentType::parse(field("documentType")).map_err(|e| parse_err("/documentType", e))?,
            version: schema.version,
            schema_id: schema.id.clone(),
            ucr: Ucr::parse(field("ucr")).map_err(|e| parse_err("/ucr", e))?,
            origin: CountryCode::parse(field("origin")).map_err(|e| parse_err("/origin", e))?,
            destination: CountryCode::parse(field("destination")).map_err(|e| parse_err("/destination", e))?,
            party: self.types.submitting_party(field("documentType"), payload),
            facts,
        })
    }

    /// Checks an agency's acknowledgment body.
    pub fn validate_acknowledgment(&self, body: &Value) -> Result<(), Vec<Violation>> {
        let v = violations_of(&self.acknowledgment, body, "");
        if v.is_empty() { Ok(()) } else { Err(v) }
    }
}

/// Longest message text reported; a violation never echoes a huge input back.
const MAX_MESSAGE: usize = 300;
/// Most violations reported per schema: a 100,000-item array of wrong items must not cost
/// 100,000 errors of work and answer. The first ones are the ones to fix first anyway.
pub const MAX_VIOLATIONS: usize = 100;

fn violations_of(schema: &CompiledSchema, instance: &Value, prefix: &str) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as K;
    // The common case, a valid document, answered by the fast check that builds no errors.
    if schema.validator.is_valid(instance) {
        return Vec::new();
    }
    schema
        .validator
        .iter_errors(instance)
        .take(MAX_VIOLATIONS)
        .map(|e| {
            let mut pointer = format!("{prefix}{}", e.instance_path().as_str());
            let keyword = e.kind().keyword().to_owned();
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
                K::Enum { options } if options.as_array().is_some_and(|o| o.len() > 12) => {
                    format!("{} is not one of the {} allowed values", short(e.instance()), options.as_array().map_or(0, Vec::len))
                }
                _ => e.to_string(),
            };
            Violation {
                pointer,
                keyword,
                message: truncate(message),
                schema_path: format!("{}#{}", schema.id, e.schema_path().as_str()),
            }
        })
        .collect()
}

fn short(v: &Value) -> String {
    truncate(v.to_string())
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
