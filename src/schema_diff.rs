//! Schema evolution: what changed between two versions of a document type's JSON Schema, and
//! whether the new one is compatible.
//!
//! - **Backward compatible**: every document valid under the old version is valid under the
//!   new one (the new version accepts at least what the old accepted), so traders still sending
//!   the old shape are not refused.
//! - **Forward compatible**: every document valid under the new version is valid under the old
//!   one, so agencies still validating with the old version accept what traders send.
//!
//! The comparison walks both schemas by JSON pointer (properties, items, `$defs`, `allOf`...)
//! and judges each difference on its own. It is conservative: a change it does not analyse
//! (a new pattern, a different `$ref`, anything in `if`/`then`/`else`, `not`, `oneOf`...)
//! counts as breaking both ways, so "incompatible" may be too cautious, while "compatible"
//! means no difference outside the keywords it understands.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::pointer::escape;

/// One difference, and which compatibility it keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// JSON pointer into the schema where the difference is.
    pub pointer: String,
    /// A stable name: `property-added`, `type-narrowed`, `enum-value-removed`...
    pub kind: &'static str,
    /// In words, with the old and new values.
    pub explanation: String,
    /// Documents valid under the old version stay valid.
    pub backward: bool,
    /// Documents valid under the new version are valid under the old.
    pub forward: bool,
}

/// Every difference between `old` and `new`, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    pub backward: bool,
    pub forward: bool,
    pub differences: Vec<Difference>,
}

/// A type's declared compatibility mode (`x-compatibility` in its newer schema; default
/// `backward`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Backward,
    /// Backward, for an open content model: a member the newer version adds to an object the
    /// older one left open, and described nothing else of, is not breaking (strictly, it
    /// constrains what the older one let through unchecked).
    BackwardOpen,
    Forward,
    Full,
    None,
}

impl Mode {
    pub fn of(schema: &Value) -> Result<Mode, String> {
        match schema.get("x-compatibility").map(|v| v.as_str()) {
            None => Ok(Mode::Backward),
            Some(Some(name)) => Mode::parse(name).map_err(|e| format!("x-compatibility: {e}")),
            Some(None) => Err("x-compatibility is a text: backward, backward-open, forward, full or none".into()),
        }
    }

    /// A mode by its name.
    pub fn parse(name: &str) -> Result<Mode, String> {
        match name {
            "backward" => Ok(Mode::Backward),
            "backward-open" => Ok(Mode::BackwardOpen),
            "forward" => Ok(Mode::Forward),
            "full" => Ok(Mode::Full),
            "none" => Ok(Mode::None),
            other => Err(format!("{other:?}: use backward, backward-open, forward, full or none")),
        }
    }

    /// The differences that break this mode.
    pub fn breaking<'a>(&self, c: &'a Comparison) -> Vec<&'a Difference> {
        c.differences
            .iter()
            .filter(|d| match self {
                Mode::Backward => !d.backward,
                Mode::BackwardOpen => !d.backward && d.kind != OPEN_MEMBER_ADDED,
                Mode::Forward => !d.forward,
                Mode::Full => !d.backward || !d.forward,
                Mode::None => false,
            })
            .collect()
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Backward => "backward",
            Mode::BackwardOpen => "backward-open",
            Mode::Forward => "forward",
            Mode::Full => "full",
            Mode::None => "none",
        }
    }
}

/// A schema with its references followed (issue 29, item 1): each `$ref` to the same file
/// (`#/$defs/x`) or to a file beside it (`parties.json#/definitions/party`, read by `read`)
/// replaced by what it names, so that two versions compare by what they accept, not by how
/// they are split into files. What stands beside a reference holds as well: `required` joins
/// the target's (both hold: the union), anything else is put beside the target in an `allOf`,
/// and in drafts 4 to 7, which ignore what stands beside a reference, it is dropped. A
/// reference that names a schema being followed already (a recursion), that cannot be read, or
/// past [`MAX_FOLLOWED`] references followed, stays a reference.
pub fn followed(schema: &Value, read: &dyn Fn(&str) -> Option<Value>) -> Value {
    let beside_ignored = schema
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(|d| ["draft-04", "draft-06", "draft-07"].iter().any(|old| d.contains(old)));
    let root = std::rc::Rc::new(schema.clone());
    let mut f = Follower { read, files: std::collections::HashMap::new(), stack: Vec::new(), budget: MAX_FOLLOWED, beside_ignored };
    f.follow(schema, &root, "")
}

/// References [`followed`] replaces at most (mutually referring definitions could otherwise
/// unfold into more schemas than there is memory).
pub const MAX_FOLLOWED: usize = 10_000;

struct Follower<'r> {
    read: &'r dyn Fn(&str) -> Option<Value>,
    files: std::collections::HashMap<String, Option<std::rc::Rc<Value>>>,
    stack: Vec<String>,
    budget: usize,
    beside_ignored: bool,
}

impl Follower<'_> {
    fn follow(&mut self, v: &Value, root: &std::rc::Rc<Value>, file: &str) -> Value {
        match v {
            Value::Object(m) => {
                if let Some(reference) = m.get("$ref").and_then(Value::as_str) {
                    if let Some(resolved) = self.resolve(reference, m, root, file) {
                        return resolved;
                    }
                }
                Value::Object(
                    m.iter()
                        .map(|(k, c)| (k.clone(), if ["enum", "const", "default", "examples"].contains(&k.as_str()) { c.clone() } else { self.follow(c, root, file) }))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| self.follow(i, root, file)).collect()),
            other => other.clone(),
        }
    }

    /// What `reference` (in `file`, whose JSON is `root`) names, with what stands beside it in
    /// `m`; `None` when it is left as a reference.
    fn resolve(&mut self, reference: &str, m: &Map<String, Value>, root: &std::rc::Rc<Value>, file: &str) -> Option<Value> {
        let (target_file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let target_file = if target_file.is_empty() { file.to_owned() } else { target_file.to_owned() };
        let key = format!("{target_file}#{fragment}");
        if self.budget == 0 || self.stack.contains(&key) {
            return None;
        }
        let document = if target_file == file {
            root.clone()
        } else {
            let read = self.read;
            self.files.entry(target_file.clone()).or_insert_with(|| read(&target_file).map(std::rc::Rc::new)).clone()?
        };
        let target = document.pointer(&percent_decode(fragment))?;
        self.budget -= 1;
        self.stack.push(key);
        let mut resolved = self.follow(target, &document, &target_file);
        self.stack.pop();
        if self.beside_ignored {
            return Some(resolved);
        }
        let mut others = Map::new();
        for (k, c) in m.iter().filter(|(k, _)| *k != "$ref") {
            let c = self.follow(c, root, file);
            let Value::Object(r) = &mut resolved else {
                others.insert(k.clone(), c);
                continue;
            };
            match (k.as_str(), r.get_mut("required")) {
                ("required", Some(Value::Array(own))) => {
                    for member in c.as_array().into_iter().flatten() {
                        if !own.contains(member) {
                            own.push(member.clone());
                        }
                    }
                }
                ("required", None) => {
                    r.insert(k.clone(), c);
                }
                _ => {
                    others.insert(k.clone(), c);
                }
            }
        }
        if others.is_empty() {
            return Some(resolved);
        }
        others.insert("allOf".into(), Value::Array(vec![resolved]));
        Some(Value::Object(others))
    }
}

/// A JSON pointer from a URI fragment (`%C3%AD` is `í`).
fn percent_decode(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares two schemas.
pub fn compare(old: &Value, new: &Value) -> Comparison {
    let mut differences = Vec::new();
    walk(old, new, "", &mut differences);
    Comparison {
        backward: differences.iter().all(|d| d.backward),
        forward: differences.iter().all(|d| d.forward),
        differences,
    }
}

fn push(out: &mut Vec<Difference>, pointer: &str, kind: &'static str, explanation: String, backward: bool, forward: bool) {
    out.push(Difference { pointer: if pointer.is_empty() { "/".into() } else { pointer.to_owned() }, kind, explanation, backward, forward });
}

/// The set of JSON types a `type` keyword allows (`None`: any); `number` includes `integer`.
fn types(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let mut set: BTreeSet<String> = match schema.get("type")? {
        Value::String(t) => [t.clone()].into(),
        Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => return None,
    };
    if set.contains("number") {
        set.insert("integer".into());
    }
    Some(set)
}

/// Whether `additionalProperties` closes the object.
/// A member added to an open object that the old version described nowhere (no pattern,
/// schema for other members, or combinator there): breaking in the strict sense only, which the
/// `backward-open` mode does not count.
pub const OPEN_MEMBER_ADDED: &str = "open-member-added";

/// Whether an open object says nothing of members it does not list: no `patternProperties`, no
/// `additionalProperties` schema, no combinator or reference that could describe them.
fn described_nowhere_else(schema: &Map<String, Value>) -> bool {
    let open = matches!(schema.get("additionalProperties"), None | Some(Value::Bool(true)));
    open && ["patternProperties", "allOf", "anyOf", "oneOf", "$ref", "if", "dependentSchemas", "dependencies", "unevaluatedProperties"]
        .iter()
        .all(|k| !schema.contains_key(*k))
}

fn closed(schema: &Map<String, Value>) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
}

fn walk(old: &Value, new: &Value, at: &str, out: &mut Vec<Difference>) {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        if old != new {
            push(out, at, "schema-changed", format!("the schema changed from {old} to {new}"), false, false);
        }
        return;
    };

    // Types.
    match (types(o), types(n)) {
        (Some(a), Some(b)) if a != b => {
            let (wider, narrower) = (b.is_superset(&a), b.is_subset(&a));
            let (kind, backward, forward) = match (wider, narrower) {
                (true, _) => ("type-widened", true, false),
                (_, true) => ("type-narrowed", false, true),
                _ => ("type-changed", false, false),
            };
            push(out, at, kind, format!("type {} became {}", o["type"], n["type"]), backward, forward);
        }
        (Some(_), None) => push(out, at, "type-widened", format!("type {} is no longer constrained", o["type"]), true, false),
        (None, Some(_)) => push(out, at, "type-narrowed", format!("type {} is now required", n["type"]), false, true),
        _ => {}
    }

    // Enumerations.
    match (o.get("enum").and_then(Value::as_array), n.get("enum").and_then(Value::as_array)) {
        (Some(a), Some(b)) => {
            for v in a.iter().filter(|v| !b.contains(v)) {
                push(out, at, "enum-value-removed", format!("value {v} is no longer allowed"), false, true);
            }
            for v in b.iter().filter(|v| !a.contains(v)) {
                push(out, at, "enum-value-added", format!("value {v} is now allowed"), true, false);
            }
        }
        (Some(_), None) => push(out, at, "enum-removed", "any value is now allowed".into(), true, false),
        (None, Some(b)) => push(out, at, "enum-added", format!("only {} value(s) are now allowed", b.len()), false, true),
        (None, None) => {}
    }

    // Keywords whose change cannot be proven harmless either way.
    for k in ["const", "pattern", "format", "$ref", "multipleOf"] {
        match (o.get(k), n.get(k)) {
            (Some(a), Some(b)) if a != b => push(out, &format!("{at}/{k}"), "constraint-changed", format!("{k} changed from {a} to {b}"), false, false),
            (Some(a), None) => push(out, &format!("{at}/{k}"), "constraint-removed", format!("{k} {a} no longer applies"), true, false),
            (None, Some(b)) => push(out, &format!("{at}/{k}"), "constraint-added", format!("{k} {b} now applies"), false, true),
            _ => {}
        }
    }

    // Bounds: an upper bound raised or a lower bound lowered accepts more.
    for (k, upper) in [
        ("maxLength", true), ("maxItems", true), ("maxProperties", true), ("maximum", true), ("exclusiveMaximum", true),
        ("minLength", false), ("minItems", false), ("minProperties", false), ("minimum", false), ("exclusiveMinimum", false),
    ] {
        let (a, b) = (o.get(k).and_then(Value::as_f64), n.get(k).and_then(Value::as_f64));
        let looser = match (a, b) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(a), Some(b)) => (b > a) == upper,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => continue,
        };
        let shown = |v: Option<f64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        let (kind, words) = if looser { ("bound-relaxed", "relaxed") } else { ("bound-tightened", "tightened") };
        push(out, &format!("{at}/{k}"), kind, format!("{k} {words} from {} to {}", shown(a), shown(b)), looser, !looser);
    }

    // Required members.
    let required = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.get("required").and_then(Value::as_array).map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let (ra, rb) = (required(o), required(n));
    for r in rb.difference(&ra) {
        push(out, &format!("{at}/required"), "required-added", format!("{r:?} is now required"), false, true);
    }
    for r in ra.difference(&rb) {
        push(out, &format!("{at}/required"), "required-removed", format!("{r:?} is no longer required"), true, false);
    }

    // Closing or opening the object.
    match (closed(o), closed(n)) {
        (true, false) => push(out, &format!("{at}/additionalProperties"), "object-opened", "members not listed are now allowed".into(), true, false),
        (false, true) => push(out, &format!("{at}/additionalProperties"), "object-closed", "members not listed are now refused".into(), false, true),
        _ => {}
    }

    // Properties, one by one.
    let empty = Map::new();
    let (pa, pb) = (
        o.get("properties").and_then(Value::as_object).unwrap_or(&empty),
        n.get("properties").and_then(Value::as_object).unwrap_or(&empty),
    );
    for (name, a) in pa {
        let here = format!("{at}/properties/{}", escape(name));
        match pb.get(name) {
            Some(b) => walk(a, b, &here, out),
            None if closed(n) => push(out, &here, "property-removed", format!("property {name:?} was removed and is now refused"), false, true),
            None => push(out, &here, "property-removed", format!("property {name:?} is no longer constrained (still allowed)"), true, false),
        }
    }
    for name in pb.keys().filter(|k| !pa.contains_key(*k)) {
        let here = format!("{at}/properties/{}", escape(name));
        if closed(o) {
            push(out, &here, "property-added", format!("property {name:?} was added (the old version refuses it)"), true, false);
        } else if described_nowhere_else(o) {
            push(out, &here, OPEN_MEMBER_ADDED, format!("property {name:?} was added to an open object (the old version took it unchecked)"), false, true);
        } else {
            push(out, &here, "property-added", format!("property {name:?} is now constrained"), false, true);
        }
    }

    // Items, definitions and combinators.
    match (o.get("items"), n.get("items")) {
        (Some(a), Some(b)) => walk(a, b, &format!("{at}/items"), out),
        (Some(_), None) => push(out, &format!("{at}/items"), "constraint-removed", "array items are no longer constrained".into(), true, false),
        (None, Some(_)) => push(out, &format!("{at}/items"), "constraint-added", "array items are now constrained".into(), false, true),
        (None, None) => {}
    }
    if let (Some(a), Some(b)) = (o.get("$defs").and_then(Value::as_object), n.get("$defs").and_then(Value::as_object)) {
        for (name, da) in a {
            if let Some(db) = b.get(name) {
                walk(da, db, &format!("{at}/$defs/{}", escape(name)), out);
            }
        }
    }
    // allOf is a conjunction: each part judged in place. anyOf and oneOf are not (widening one
    // branch can make a document match two), so any change there counts as breaking.
    match (o.get("allOf").and_then(Value::as_array), n.get("allOf").and_then(Value::as_array)) {
        (Some(a), Some(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                walk(x, y, &format!("{at}/allOf/{i}"), out);
            }
        }
        (a, b) if a != b => push(out, &format!("{at}/allOf"), "combinator-changed", "allOf changed shape".into(), false, false),
        _ => {}
    }
    // Every other keyword: annotations are ignored; any other change is not analysed, so it
    // counts as breaking both ways.
    const JUDGED: &[&str] = &[
        "type", "enum", "const", "pattern", "format", "$ref", "multipleOf", "maxLength", "maxItems", "maxProperties",
        "maximum", "exclusiveMaximum", "minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum",
        "required", "properties", "items", "$defs", "allOf",
    ];
    const ANNOTATIONS: &[&str] = &["title", "description", "examples", "$comment", "$id", "$schema", "default", "deprecated", "readOnly", "writeOnly"];
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for k in keys {
        let skip = JUDGED.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()) || k.starts_with("x-");
        // `additionalProperties: false` against absent/true was judged above as closing or opening.
        let judged_closing = k == "additionalProperties"
            && [o.get(k), n.get(k)].iter().all(|v| matches!(v, None | Some(Value::Bool(_))));
        if skip || judged_closing || o.get(k) == n.get(k) {
            continue;
        }
        push(out, &format!("{at}/{}", escape(k)), "keyword-changed", format!("{k} changed; its effect is not analysed"), false, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The case: a region's wrapper that refers to the publisher's file and adds one
    /// required member differs from it by that member only, once the reference is followed
    /// (without following it, every keyword of the publisher's file looked removed).
    #[test]
    fn a_wrapper_compares_by_what_it_accepts_once_its_references_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let plain = json!({
            "type": "object",
            "properties": {"party": {"$ref": "#/$defs/party"}, "date": {"type": "string"}},
            "$defs": {"party": {"type": "object", "properties": {"id": {"type": "string"}}}}
        });
        std::fs::write(dir.path().join("plain.json"), plain.to_string()).unwrap();
        let wrapper = json!({"$ref": "plain.json", "required": ["party"]});
        let naive = compare(&plain, &wrapper);
        assert!(naive.differences.len() > 1, "{:?}", naive.differences);
        let read = |name: &str| std::fs::read(dir.path().join(name)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let c = compare(&followed(&plain, &read), &followed(&wrapper, &read));
        let kinds: Vec<(&str, &str)> = c.differences.iter().map(|d| (d.pointer.as_str(), d.kind)).collect();
        assert_eq!(kinds, [("/required", "required-added")], "{:#?}", c.differences);
        // A recursion stays a reference instead of unfolding for ever.
        let tree = json!({"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}});
        assert_eq!(followed(&tree, &read)["properties"]["children"]["items"]["properties"]["children"]["items"], json!({"$ref": "#"}));
        // What stands beside a reference holds beside what it names; in draft 7 it is ignored.
        let closed = json!({"properties": {"p": {"$ref": "#/$defs/party", "additionalProperties": false}}, "$defs": {"party": {"type": "object"}}});
        assert_eq!(followed(&closed, &read)["properties"]["p"], json!({"additionalProperties": false, "allOf": [{"type": "object"}]}));
        let mut draft7 = closed.clone();
        draft7["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        assert_eq!(followed(&draft7, &read)["properties"]["p"], json!({"type": "object"}));
        // A fragment that is not percent-encoding is taken as written, whatever its bytes.
        let odd = json!({"properties": {"p": {"$ref": "#/$defs/%a€"}}});
        assert_eq!(followed(&odd, &read)["properties"]["p"], json!({"$ref": "#/$defs/%a€"}));
    }

    fn base() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["ucr", "mode"],
            "properties": {
                "ucr": {"type": "string", "maxLength": 35, "pattern": "^[0-9A-Z-]+$"},
                "mode": {"enum": ["road", "rail", "sea"]},
                "weight": {"type": "integer", "minimum": 0},
                "amount": {"type": "number"},
                "items": {"type": "array", "maxItems": 999, "items": {"type": "object", "properties": {"hs": {"type": "string"}}}},
                "note": {"type": "string"}
            }
        })
    }

    /// Applies `change` to the base schema and returns the verdict and the difference kinds.
    fn verdict(change: impl FnOnce(&mut Value)) -> (bool, bool, Vec<(&'static str, String)>) {
        let mut new = base();
        change(&mut new);
        let c = compare(&base(), &new);
        (c.backward, c.forward, c.differences.iter().map(|d| (d.kind, d.pointer.clone())).collect())
    }

    /// (name, the change, backward, forward, a difference kind expected, at that pointer)
    type Case = (&'static str, Box<dyn FnOnce(&mut Value)>, bool, bool, &'static str, &'static str);

    #[test]
    fn kinds_of_change_each_get_their_verdict() {
        let cases: Vec<Case> = vec![
            ("optional property added", Box::new(|s| { s["properties"]["seal"] = json!({"type": "string"}); }), true, false, "property-added", "/properties/seal"),
            ("required property added", Box::new(|s| { s["properties"]["seal"] = json!({"type": "string"}); s["required"] = json!(["ucr", "mode", "seal"]); }), false, false, "required-added", "/required"),
            ("property removed", Box::new(|s| { s["properties"].as_object_mut().unwrap().remove("note"); }), false, true, "property-removed", "/properties/note"),
            ("requirement dropped", Box::new(|s| { s["required"] = json!(["ucr"]); }), true, false, "required-removed", "/required"),
            ("type widened", Box::new(|s| { s["properties"]["weight"]["type"] = json!("number"); }), true, false, "type-widened", "/properties/weight"),
            ("type narrowed", Box::new(|s| { s["properties"]["amount"]["type"] = json!("integer"); }), false, true, "type-narrowed", "/properties/amount"),
            ("type changed", Box::new(|s| { s["properties"]["note"]["type"] = json!("null"); }), false, false, "type-changed", "/properties/note"),
            ("type written differently", Box::new(|s| { s["properties"]["weight"]["type"] = json!(["integer"]); s["properties"]["note"]["type"] = json!(["string"]); }), true, true, "", ""),
            ("enum value added", Box::new(|s| { s["properties"]["mode"]["enum"] = json!(["road", "rail", "sea", "air"]); }), true, false, "enum-value-added", "/properties/mode"),
            ("enum value removed", Box::new(|s| { s["properties"]["mode"]["enum"] = json!(["road", "rail"]); }), false, true, "enum-value-removed", "/properties/mode"),
            ("maximum length lowered", Box::new(|s| { s["properties"]["ucr"]["maxLength"] = json!(20); }), false, true, "bound-tightened", "/properties/ucr/maxLength"),
            ("array bound raised", Box::new(|s| { s["properties"]["items"]["maxItems"] = json!(5000); }), true, false, "bound-relaxed", "/properties/items/maxItems"),
            ("minimum raised", Box::new(|s| { s["properties"]["weight"]["minimum"] = json!(1); }), false, true, "bound-tightened", "/properties/weight/minimum"),
            ("pattern changed", Box::new(|s| { s["properties"]["ucr"]["pattern"] = json!("^[0-9A-Z]+$"); }), false, false, "constraint-changed", "/properties/ucr/pattern"),
            ("object opened", Box::new(|s| { s["additionalProperties"] = json!(true); }), true, false, "object-opened", "/additionalProperties"),
            ("nested item type narrowed", Box::new(|s| { s["properties"]["items"]["items"]["properties"]["hs"]["type"] = json!("integer"); }), false, false, "type-changed", "/properties/items/items/properties/hs"),
            ("nothing but a description", Box::new(|s| { s["description"] = json!("new words"); }), true, true, "", ""),
            ("a conditional requirement added", Box::new(|s| { s["if"] = json!({"properties": {"mode": {"const": "sea"}}}); s["then"] = json!({"required": ["weight"]}); }), false, false, "keyword-changed", "/if"),
            ("oneOf branch changed", Box::new(|s| { s["properties"]["note"]["oneOf"] = json!([{"maxLength": 5}, {"minLength": 3}]); }), false, false, "keyword-changed", "/properties/note/oneOf"),
        ];
        assert!(cases.len() >= 10);
        for (name, change, backward, forward, kind, pointer) in cases {
            let (b, f, kinds) = verdict(change);
            assert_eq!((b, f), (backward, forward), "{name}: {kinds:?}");
            if kind.is_empty() {
                assert!(kinds.is_empty(), "{name}: {kinds:?}");
            } else {
                assert!(kinds.contains(&(kind, pointer.to_owned())), "{name}: {kinds:?}");
            }
        }
    }

    #[test]
    fn modes_pick_the_breaking_differences() {
        let mut new = base();
        new["properties"]["mode"]["enum"] = json!(["road"]);
        let c = compare(&base(), &new);
        assert_eq!(Mode::Backward.breaking(&c).len(), 2, "rail and sea removed");
        assert!(Mode::Forward.breaking(&c).is_empty());
        assert_eq!(Mode::Full.breaking(&c).len(), 2);
        assert!(Mode::None.breaking(&c).is_empty());
        assert_eq!(Mode::of(&json!({})).unwrap(), Mode::Backward);
        assert!(Mode::of(&json!({"x-compatibility": "sideways"})).is_err());
    }
}
