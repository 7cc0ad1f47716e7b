//! The schema registry: loads `schemas/<name>/<version>.json`, registers every file by its
//! `$id` so `$ref`s across files resolve offline, and compiles each validator once at start.
//! Validation reports every violation at once, each with a JSON pointer into the request body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::{Draft, Validator};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{CountryCode, DocumentType, SchemaVersion, Ucr};

/// The `$id` every schema file must carry, from its name and version.
pub fn schema_id(name: &str, version: &SchemaVersion) -> String {
    format!("https://schemas.ventanilla.example/{name}/{version}.json")
}

/// Names under `schemas/` that are not document types.
const ENVELOPE: &str = "envelope";
const COMMON: &str = "common";
/// The acknowledgment schema checks agencies' answers; it is not submitted as a document.
pub const ACKNOWLEDGMENT: &str = "acknowledgment";

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
    #[error("schema {path} does not compile: {message}")]
    Compile { path: PathBuf, message: String },
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

/// A body that passed both the envelope and its payload schema.
#[derive(Debug, Clone)]
pub struct ValidDocument {
    pub document_type: DocumentType,
    pub version: SchemaVersion,
    pub schema_id: String,
    pub ucr: Ucr,
    pub origin: CountryCode,
    pub destination: CountryCode,
}

/// Every schema, compiled once; shared read-only by all requests.
pub struct SchemaRegistry {
    envelope: CompiledSchema,
    acknowledgment: CompiledSchema,
    /// Document type -> versions (ascending) -> schema.
    documents: BTreeMap<String, BTreeMap<SchemaVersion, CompiledSchema>>,
    common: Vec<CompiledSource>,
}

/// A schema that is only referenced (common definitions), kept for serving.
pub struct CompiledSource {
    pub version: SchemaVersion,
    pub source: Arc<Value>,
}

/// Each version of a type against the one before it, in the mode the newer one declares
/// (`x-compatibility`, default `backward`): a breaking difference refuses the registry.
fn check_evolution(files: &[(String, SchemaVersion, PathBuf, Value)]) -> Result<(), SchemaError> {
    let mut by_type: BTreeMap<&str, Vec<(&SchemaVersion, &PathBuf, &Value)>> = BTreeMap::new();
    for (name, version, path, value) in files {
        by_type.entry(name.as_str()).or_default().push((version, path, value));
    }
    for (name, mut versions) in by_type {
        versions.sort_by_key(|v| *v.0);
        for pair in versions.windows(2) {
            let ((from, _, old), (to, path, new)) = (pair[0], pair[1]);
            let mode = crate::schema_diff::Mode::of(new).map_err(|message| SchemaError::Layout { path: path.to_path_buf(), message })?;
            let comparison = crate::schema_diff::compare(old, new);
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

impl SchemaRegistry {
    /// Loads and compiles every schema under `dir`; refuses a version that breaks its type's
    /// declared compatibility with the version before it.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let mut files: Vec<(String, SchemaVersion, PathBuf, Value)> = Vec::new();
        let layout = |path: &Path, message: String| SchemaError::Layout { path: path.to_owned(), message };
        let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::Read { path: dir.into(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| SchemaError::Read { path: dir.into(), source })?;
            let type_dir = entry.path();
            if !type_dir.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let versions = std::fs::read_dir(&type_dir)
                .map_err(|source| SchemaError::Read { path: type_dir.clone(), source })?;
            for file in versions {
                let file = file.map_err(|source| SchemaError::Read { path: type_dir.clone(), source })?;
                let path = file.path();
                let Some(stem) = path.file_name().and_then(|f| f.to_str()).and_then(|f| f.strip_suffix(".json")) else {
                    continue;
                };
                let version = SchemaVersion::parse(stem)
                    .map_err(|e| layout(&path, format!("the file name must be <version>.json: {e}")))?;
                let text = std::fs::read(&path).map_err(|source| SchemaError::Read { path: path.clone(), source })?;
                let value: Value = serde_json::from_slice(&text)
                    .map_err(|source| SchemaError::Json { path: path.clone(), source })?;
                let want = schema_id(&name, &version);
                if value.get("$id").and_then(Value::as_str) != Some(want.as_str()) {
                    return Err(layout(&path, format!("its $id must be {want:?}")));
                }
                files.push((name.clone(), version, path, value));
            }
        }
        check_evolution(&files)?;
        let mut registry = jsonschema::Registry::new().draft(Draft::Draft202012);
        for (name, version, path, value) in &files {
            registry = registry
                .add(schema_id(name, version), value.clone())
                .map_err(|e| SchemaError::Compile { path: path.clone(), message: e.to_string() })?;
        }
        let registry = registry
            .prepare()
            .map_err(|e| SchemaError::Compile { path: dir.into(), message: e.to_string() })?;
        let compile = |version: SchemaVersion, path: &Path, value: &Value| -> Result<CompiledSchema, SchemaError> {
            let validator = jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .with_registry(&registry)
                .build(value)
                .map_err(|e| SchemaError::Compile { path: path.to_owned(), message: e.to_string() })?;
            let id = value.get("$id").and_then(Value::as_str).unwrap_or_default().to_owned();
            Ok(CompiledSchema { version, id, source: Arc::new(value.clone()), validator })
        };
        let (mut envelope, mut acknowledgment, mut documents, mut common) = (None, None, BTreeMap::new(), Vec::new());
        for (name, version, path, value) in &files {
            match name.as_str() {
                COMMON => common.push(CompiledSource { version: *version, source: Arc::new(value.clone()) }),
                ENVELOPE => envelope = Some(compile(*version, path, value)?),
                ACKNOWLEDGMENT => acknowledgment = Some(compile(*version, path, value)?),
                _ => {
                    DocumentType::parse(name).map_err(|e| layout(path, e.to_string()))?;
                    documents
                        .entry(name.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(*version, compile(*version, path, value)?);
                }
            }
        }
        let missing = |what: &str| layout(dir, format!("no {what} schema (expected {what}/<version>.json)"));
        Ok(SchemaRegistry {
            envelope: envelope.ok_or_else(|| missing(ENVELOPE))?,
            acknowledgment: acknowledgment.ok_or_else(|| missing(ACKNOWLEDGMENT))?,
            documents,
            common,
        })
    }

    /// Document types and their versions, ascending.
    pub fn catalogue(&self) -> Vec<(String, Vec<SchemaVersion>)> {
        let mut out = self.document_types();
        out.push((ACKNOWLEDGMENT.into(), vec![self.acknowledgment.version]));
        out.push((ENVELOPE.into(), vec![self.envelope.version]));
        out.push((COMMON.into(), self.common.iter().map(|c| c.version).collect()));
        out
    }

    /// The document types (not the envelope, acknowledgment or common definitions) and their
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
            COMMON => self.common.iter().find(|c| c.version == version).map(|c| c.source.clone()),
            _ => self.documents.get(name)?.get(&version).map(|s| s.source.clone()),
        }
    }

    /// Whether `document_type` has a schema (bounds what labels metrics can take).
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
        Ok(ValidDocument {
            document_type: DocumentType::parse(field("documentType")).map_err(|e| parse_err("/documentType", e))?,
            version: schema.version,
            schema_id: schema.id.clone(),
            ucr: Ucr::parse(field("ucr")).map_err(|e| parse_err("/ucr", e))?,
            origin: CountryCode::parse(field("origin")).map_err(|e| parse_err("/origin", e))?,
            destination: CountryCode::parse(field("destination")).map_err(|e| parse_err("/destination", e))?,
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

/// Escapes a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Violation {
    /// A violation found by the gateway's own checks rather than a schema keyword.
    pub fn new(pointer: &str, keyword: &str, message: String) -> Self {
        Violation { pointer: pointer.into(), keyword: keyword.into(), message, schema_path: String::new() }
    }
}
