//! The house's one rule, checked from the code itself: no module of `src/` imports one that
//! imports it back, however far round (docs/code.md draws the floors). Imports are read as text:
//! every `crate::a::b` path, `use crate::{a, b::c}` group and `super::` path, outside comments,
//! tests included; each names the file of the deepest module it reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module file under `src/`, by its path (`http::api`), with its text without comments.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.starts_with(root.join("cli")) {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut name = relative.to_string_lossy().replace('/', "::");
            if let Some(parent) = name.strip_suffix("::mod") {
                name = parent.to_owned();
            }
            if name == "main" || name == "lib" {
                continue;
            }
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(name, text);
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn module_of<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len()).rev().find_map(|n| modules.get_key_value(&parts[..n].join("::")).map(|(k, _)| k.as_str()))
}

/// The paths a module's text names with `crate::` and `super::`.
fn paths(module: &str, text: &str) -> Vec<String> {
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::{c, d}}`: each item's head.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => out.push(std::mem::take(&mut item)),
                    c if depth == 0 && !c.is_whitespace() => item.push(c),
                    _ => {}
                }
            }
            out.push(item);
        } else {
            out.push(rest.chars().take_while(|c| ident(*c)).collect());
        }
    }
    let parent = module.rsplit_once("::").map(|(p, _)| p);
    for (at, _) in text.match_indices("super::") {
        // `super::super::` and a file at the crate's root are rare enough to read as written.
        if let Some(parent) = parent {
            let rest: String = text[at + "super::".len()..].chars().take_while(|c| ident(*c)).collect();
            out.push(format!("{parent}::{rest}"));
        }
    }
    out.into_iter().map(|p| p.trim_end_matches("::").to_owned()).filter(|p| !p.is_empty()).collect()
}

/// Each module and the other modules it imports.
fn imports(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(root);
    modules
        .iter()
        .map(|(module, text)| {
            let targets = paths(module, text)
                .iter()
                .filter_map(|p| module_of(p, &modules))
                // A module's own children are its parts, and its parent's items are its own.
                .filter(|t| *t != module && !module.starts_with(&format!("{t}::")) && !t.starts_with(&format!("{module}::")))
                .map(str::to_owned)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// The circles of `graph`: each strongly connected set of more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        for t in w.graph.get(v).into_iter().flatten() {
            let t = t.as_str();
            if !w.index.contains_key(t) {
                visit(w, t);
                let low = w.low[v].min(w.low[t]);
                w.low.insert(v, low);
            } else if w.stack.contains(&t) {
                let low = w.low[v].min(w.index[t]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut set = Vec::new();
            while let Some(m) = w.stack.pop() {
                set.push(m.to_owned());
                if m == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                w.found.push(set);
            }
        }
    }
    let mut w = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn the_modules_import_each_other_in_one_direction() {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 60 && graph["gateway"].contains("store"), "the imports were read: {graph:?}");
    let found = circles(&graph);
    let told: Vec<String> = found
        .iter()
        .map(|set| {
            let ties: Vec<String> =
                set.iter().flat_map(|a| graph[a].iter().filter(|b| set.contains(b)).map(move |b| format!("{a} -> {b}"))).collect();
            ties.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "modules that import each other: {told:#?}");
}

#[test]
fn a_circle_is_found_however_far_round() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .fold(BTreeMap::new(), |mut g, (from, to)| {
            g.entry(from.to_owned()).or_default().insert(to.to_owned());
            g.entry(to.to_owned()).or_default();
            g
        });
    assert_eq!(circles(&graph), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    let text = "use crate::{config::RegionConfig, store::{Ledger, Store}};\nlet x = crate::domain::Ucr::parse(y);\nuse super::files::Files;";
    assert_eq!(paths("schema::openapi", text), ["config::RegionConfig", "store", "domain::Ucr::parse", "schema::files::Files"]);
}
