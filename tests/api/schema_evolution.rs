//! Schema evolution end to end: the registry refuses to start with a new version that breaks
//! its type's declared compatibility, naming the difference; accepts a compatible one, or a
//! breaking one declared `"x-compatibility": "none"`; and `ventanilla schemas diff` says the
//! same on the command line.

use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::{registry_of, repo};

/// A copy of the repository's schemas with a customsDeclaration 1.1.0 made by `change`.
fn schemas_with_new_version(change: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::copy_dir(&repo().join("schemas"), dir.path());
    let old: Value = serde_json::from_str(&std::fs::read_to_string(repo().join("schemas/customsDeclaration/1.0.0.json")).unwrap()).unwrap();
    let mut new = old;
    new["$id"] = json!("https://schemas.ventanilla.example/customsDeclaration/1.1.0.json");
    change(&mut new);
    std::fs::write(dir.path().join("customsDeclaration/1.1.0.json"), new.to_string()).unwrap();
    dir
}

/// `ventanilla schemas diff OLD NEW`: its report, and its exit code.
fn diff(old: &Path, new: &Path) -> (String, Option<i32>) {
    let out = crate::support::cli().args(["schemas", "diff"]).arg(old).arg(new).output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.code())
}

#[test]
fn the_registry_refuses_a_version_that_breaks_its_declared_compatibility() {
    // Tightened: fewer goods items allowed. Not backward compatible, the default mode.
    let breaking = schemas_with_new_version(|s| s["properties"]["goodsItems"]["maxItems"] = json!(500));
    let err = registry_of(breaking.path()).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("customsDeclaration 1.1.0 breaks its declared backward compatibility with 1.0.0"), "{msg}");
    assert!(msg.contains("/properties/goodsItems/maxItems") && msg.contains("from 999 to 500"), "{msg}");

    // Declared as a break on purpose: accepted.
    let declared = schemas_with_new_version(|s| {
        s["properties"]["goodsItems"]["maxItems"] = json!(500);
        s["x-compatibility"] = json!("none");
    });
    assert!(registry_of(declared.path()).is_ok());

    // Relaxed: more goods items allowed. Backward compatible: accepted and served.
    let compatible = schemas_with_new_version(|s| s["properties"]["goodsItems"]["maxItems"] = json!(1500));
    let registry = registry_of(compatible.path()).expect("a backward-compatible version loads");
    let versions = registry.catalogue().into_iter().find(|(t, _)| t == "customsDeclaration").unwrap().1;
    assert_eq!(versions.iter().map(|v| v.to_string()).collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);

    // The command line gives the verdict and the difference by pointer.
    let old = repo().join("schemas/customsDeclaration/1.0.0.json");
    let (out, code) = diff(&old, &breaking.path().join("customsDeclaration/1.1.0.json"));
    assert_eq!(code, Some(1), "a change that breaks the declared (default: backward) compatibility fails a pipeline");
    assert!(out.contains("backward compatible (accepts every document the old one accepts): no"), "{out}");
    assert!(out.contains("forward compatible (the old one accepts every document it accepts): yes"), "{out}");
    assert!(out.contains("/properties/goodsItems/maxItems  bound-tightened: maxItems tightened from 999 to 500"), "{out}");
    let (out, code) = diff(&old, &old);
    assert!(out.contains(": yes\n") && !out.contains(": no"), "a schema is compatible with itself: {out}");
    assert_eq!(code, Some(0));
    // Declared a break on purpose: the pipeline passes; relaxed: it passes too.
    assert_eq!(diff(&old, &declared.path().join("customsDeclaration/1.1.0.json")).1, Some(0));
    let (out, code) = diff(&old, &compatible.path().join("customsDeclaration/1.1.0.json"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("declared compatibility (backward): kept"), "{out}");
    // A file that cannot be read: the tool could not check (2), not a "no" (1).
    assert_eq!(diff(&old, Path::new("/nonexistent/schema.json")).1, Some(2));
}

/// Issue 29, item 5: the region declares a third-party type's compatibility without editing
/// the publisher's files, over their `x-compatibility`; `backward-open` is for an open content
/// model, where a member the new version adds is not breaking.
#[test]
fn the_region_declares_a_published_types_compatibility_over_its_files() {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::copy_dir(&repo().join("schemas"), dir.path());
    let folder = dir.path().join("openManifest");
    std::fs::create_dir(&folder).unwrap();
    let v1 = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://publisher.example.org/open-manifest/1.0.0",
        "type": "object",
        "required": ["shipper"],
        "properties": {
            "shipper": {"type": "object", "properties": {"id": {"type": "string"}, "country": {"type": "string"}}},
            "reference": {"type": "string"}
        }
    });
    let mut v2 = v1.clone();
    v2["$id"] = json!("https://publisher.example.org/open-manifest/1.1.0");
    v2["properties"]["seal"] = json!({"type": "string"});
    v2["x-compatibility"] = json!("full");
    std::fs::write(folder.join("1.0.0.json"), v1.to_string()).unwrap();
    std::fs::write(folder.join("1.1.0.json"), v2.to_string()).unwrap();
    let region = |compatibility: Option<&str>| {
        let mut region = crate::helpers::shipped_region();
        let mut table =
            "submitter = { party = \"shipper\", identifier = \"/shipper/id\", scheme = \"AR-CUIT\", country = \"/shipper/country\" }\n".to_owned();
        if let Some(c) = compatibility {
            table.push_str(&format!("compatibility = \"{c}\"\n"));
        }
        region.document_types.insert("openManifest".into(), toml::from_str(&table).unwrap());
        region
    };
    let load = |c: Option<&str>| ventanilla::schema::SchemaRegistry::of_region(dir.path(), &region(c)).map(|_| ()).map_err(|e| e.to_string());
    // As published: the file says full, and an added member of an open model constrains what
    // the older version let through: refused, and told how to declare it.
    let err = load(None).unwrap_err();
    assert!(err.contains("openManifest 1.1.0 breaks its declared full compatibility") && err.contains("[document_types.openManifest] compatibility"), "{err}");
    // Declared in the region file, over the file's own word.
    load(Some("backward-open")).expect("an added member of an open model is not breaking");
    load(Some("none")).expect("declared a break");
    assert!(load(Some("backward")).unwrap_err().contains("breaks its declared backward compatibility"), "the region's word wins");
    // `schemas diff` judges by the same word: the region's for the type whose folder holds NEW.
    let config = tempfile::tempdir().unwrap();
    let region_file = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap().replace(
        "schemas_dir = \"../schemas\"",
        &format!("schemas_dir = {:?}", dir.path()),
    ) + "\n[document_types.openManifest]\nsubmitter = { party = \"shipper\", identifier = \"/shipper/id\", scheme = \"AR-CUIT\", country = \"/shipper/country\" }\ncompatibility = \"backward-open\"\n";
    std::fs::write(config.path().join("ventanilla.toml"), region_file).unwrap();
    let (old, new) = (folder.join("1.0.0.json"), folder.join("1.1.0.json"));
    let out = crate::support::cli()
        .args(["schemas", "diff", "--config"])
        .arg(config.path())
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("declared compatibility (backward-open): kept"));
    assert_eq!(diff(&old, &new).1, Some(1), "without the region, the file's own word (full) is broken");

    // A new major version may break what the region declares: semantic versioning.
    let mut v3 = v1.clone();
    v3["$id"] = json!("https://publisher.example.org/open-manifest/2.0.0");
    v3["required"] = json!(["shipper", "reference"]);
    std::fs::write(folder.join("2.0.0.json"), v3.to_string()).unwrap();
    load(Some("backward-open")).expect("2.0.0 may require more than 1.1.0");
    std::fs::remove_file(folder.join("2.0.0.json")).unwrap();
    // A member the old version described by a pattern is retyped, not added: breaking still.
    let mut patterned = v1.clone();
    patterned["patternProperties"] = json!({"^s": {"type": "integer"}});
    std::fs::write(folder.join("1.0.0.json"), patterned.to_string()).unwrap();
    let mut retyped = patterned.clone();
    retyped["$id"] = json!("https://publisher.example.org/open-manifest/1.1.0");
    retyped["properties"]["seal"] = json!({"type": "string"});
    std::fs::write(folder.join("1.1.0.json"), retyped.to_string()).unwrap();
    assert!(load(Some("backward-open")).unwrap_err().contains("breaks its declared backward-open compatibility"));
    let bad = load(Some("sideways")).unwrap_err();
    assert!(bad.contains("[document_types.openManifest] compatibility") && bad.contains("backward-open"), "{bad}");
}
