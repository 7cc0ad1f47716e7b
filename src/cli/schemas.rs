//! `ventanilla schemas`: the registry's document types and versions; `schemas diff OLD NEW`
//! compares two versions of a schema as the registry would judge them; `schemas import` takes a
//! component of a publisher's OpenAPI document as a JSON Schema.

use std::path::PathBuf;

use clap::Subcommand;

use ventanilla::config::RegionConfig;
use ventanilla::schema::SchemaRegistry;

use super::{Failure, Verdict};

#[derive(Subcommand)]
pub enum SchemasCommand {
    /// Whether NEW is backward compatible (accepts every document OLD accepts) and forward
    /// compatible (OLD accepts every document NEW accepts), with each difference by JSON pointer,
    /// each schema as the registry uses it (the region's overlays for its type applied, its
    /// references to itself and to files beside it followed);
    /// exit 1 when NEW breaks the compatibility declared for it (the region's
    /// `[document_types.<type>] compatibility` for the type whose folder holds NEW, else its own
    /// `x-compatibility`: backward by default, backward-open, forward, full or none), as the
    /// registry would refuse it.
    Diff { old: PathBuf, new: PathBuf },
    /// Writes the JSON Schema of one component of an OpenAPI 3.0 or 3.1 document (YAML or
    /// JSON), as a publisher ships it: draft 2020-12, the components it references as `$defs`,
    /// OpenAPI's `example`, `nullable` and boolean bounds translated, and where it came from
    /// recorded (`x-imported-from`). Then place it as `<type>/<version>.json` in the schemas
    /// directory; the publisher's file is never edited.
    Import {
        /// The OpenAPI document.
        file: PathBuf,
        /// The component schema to import (a name under `components.schemas`).
        #[arg(long)]
        component: String,
        /// Where to write it (standard output by default).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(config: PathBuf, action: Option<SchemasCommand>) -> Result<(), Failure> {
    match action {
        None => list(&config),
        Some(SchemasCommand::Diff { old, new }) => diff(&config, old, new),
        Some(SchemasCommand::Import { file, component, out }) => import(file, component, out),
    }
}

/// The registry's document types and versions, after what the operator should know of them.
fn list(config: &std::path::Path) -> Result<(), Failure> {
    let region = RegionConfig::load(config)?;
    let registry = SchemaRegistry::of_region(&region.schemas_dir(config), &region)?;
    for warning in registry.warnings() {
        eprintln!("warning: {warning}");
    }
    for (name, versions) in registry.catalogue() {
        let v: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        println!("{name}\t{}", v.join(", "));
    }
    Ok(())
}

/// Whether `new` keeps the compatibility declared for it with `old`.
fn diff(config: &std::path::Path, old: PathBuf, new: PathBuf) -> Result<(), Failure> {
    let new_path = new.clone();
    let region = match RegionConfig::load(config)
        .map_err(|e| e.to_string())
        .and_then(|region| ventanilla::document_types::DocumentTypes::new(&region.document_types))
    {
        Ok(types) => Some(types),
        Err(e) => {
            eprintln!("warning: the region file in {} does not load ({e}): the schemas are compared without its overlays and compatibility", config.display());
            None
        }
    };
    // Each schema as the registry uses it: the region's overlays for the type whose
    // folder holds it applied, and its references followed.
    // A schema file with the region's overlays for its place applied.
    let overlaid = |path: &std::path::Path| -> Result<serde_json::Value, Failure> {
        let mut schema = super::read_json(path)?;
        let folder = path.parent().and_then(|p| p.file_name()).and_then(|f| f.to_str()).unwrap_or_default();
        let name = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let place = format!("{folder}/{name}");
        let is_version = ventanilla::domain::SchemaVersion::parse(name.trim_end_matches(".json")).is_ok();
        for (document_type, o) in region.iter().flat_map(|t| t.overlays()) {
            if ventanilla::overlays::applies_to(o, document_type, &place, is_version) {
                ventanilla::overlays::apply(&mut schema, o).map_err(|e| format!("[document_types.{document_type}] overlay of {place} {e}"))?;
            }
        }
        Ok(schema)
    };
    let effective = |path: &PathBuf| -> Result<serde_json::Value, Failure> {
        let dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        // Files beside it, overlaid as the registry loads them.
        let beside = |name: &str| overlaid(&dir.join(name)).ok();
        Ok(ventanilla::schema_diff::followed(&overlaid(path)?, &beside))
    };
    let (old, new) = (effective(&old)?, effective(&new)?);
    let c = ventanilla::schema_diff::compare(&old, &new);
    // The mode the registry would judge by: the region's for the type whose folder holds
    // NEW, when it declares one, else the one NEW's file declares.
    let declared = region.as_ref().and_then(|types| {
        let folder = new_path.parent()?.file_name()?.to_str()?.to_owned();
        types.compatibility(&folder)
    });
    let mode = match declared {
        Some(mode) => mode,
        None => ventanilla::schema_diff::Mode::of(&new).map_err(|m| format!("the new schema's x-compatibility: {m}"))?,
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("backward compatible (accepts every document the old one accepts): {}", yes(c.backward));
    println!("forward compatible (the old one accepts every document it accepts): {}", yes(c.forward));
    for d in &c.differences {
        println!(
            "{}  {}: {}  [backward {}, forward {}]",
            d.pointer, d.kind, d.explanation, yes(d.backward), yes(d.forward)
        );
    }
    let breaking = mode.breaking(&c);
    if !breaking.is_empty() {
        return Err(Verdict(format!(
            "the new schema breaks the {} compatibility it declares ({} difference(s)); the registry would refuse it",
            mode.as_str(),
            breaking.len()
        ))
        .into());
    }
    println!("declared compatibility ({}): kept", mode.as_str());
    Ok(())
}

/// One component of an OpenAPI document, as a JSON Schema.
fn import(file: PathBuf, component: String, out: Option<PathBuf>) -> Result<(), Failure> {
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let text = String::from_utf8(bytes.clone()).map_err(|e| format!("{} is not UTF-8 text: {e}", file.display()))?;
    let document = ventanilla::openapi_import::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let schema = ventanilla::openapi_import::import(&document, &component, &name, &ventanilla::digest::sha256_hex(&bytes))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let text = serde_json::to_string_pretty(&schema)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {} (component {component} of {name})", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
