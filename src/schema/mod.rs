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
//!
//! The parts, by job: `files` finds a file and resolves a reference; `lint` refuses OpenAPI's
//! keywords and warns of unknown ones; `messages` tells a violation in a trader's words;
//! `tables` checks the region's tables against the schemas; `openapi` rewrites the files as
//! `/openapi.json`'s components.

mod files;
mod lint;
mod messages;
mod openapi;
pub(crate) mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonschema::Validator;
use serde_json::Value;

use crate::document_types::{DocumentTypes, EnvelopeFacts, PayloadFacts, SubmittingParty};
use crate::domain::{CountryCode, DocumentType, SchemaVersion, Ucr};
use crate::identifiers::IdentifierSchemes;
use crate::pointer::Violation;

pub use files::LOCATION_BASE;
pub use openapi::component_name;
pub(crate) use files::{resolve, Files, SchemaFile};
use files::{json_files, references, unresolved, LocalFiles};
use lint::{check_keywords, DRAFTS};
use messages::{truncate, violations_of};

/// Folders under `schemas/` with a role of their own: not document types.
const ENVELOPE: &str = "envelope";
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

/// A compiled schema and its source text.
pub struct CompiledSchema {
    pub version: SchemaVersion,
    /// Its `$id` as published, or its place when it has none.
    pub id: String,
    /// The schema as loaded, served by `GET /v1/schemas/{type}/{version}`.
    pub source: Arc<Value>,
    pub(super) validator: Validator,
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
            tables::check(&registry.files, name, table).map_err(SchemaError::Region)?;
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
