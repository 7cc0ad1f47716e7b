//! Strict JSON for everything that arrives from outside (HTTP bodies, ack records): a
//! duplicated key is an error rather than a silent "last one wins", so two readers of the same
//! document can never disagree about its content; and the shape of the text (nesting depth,
//! items per array or object, string length, values in all, and the memory the parsed tree will
//! take) is bounded by [`check_limits`] before anything is built from it, so no input can make
//! the parser recurse deeply or allocate without bound. A few bytes of text can become hundreds
//! of bytes of tree (`{"":0}` is 7 bytes, and its object about 650), so what a body costs is
//! [`Shape::parsed_bytes`], not its length: that is what quotas count.

use serde_json::Value;

/// Bounds on the shape of incoming JSON (`gateway.max_json_depth`, `max_json_items`,
/// `max_json_string_bytes`, `max_json_nodes`, `max_json_parsed_bytes`), checked on the raw
/// bytes before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects; the schemas need far less than the default.
    pub max_depth: usize,
    /// Most items in one array, or members in one object.
    pub max_items: usize,
    /// Longest string (key or value), in bytes as sent, escapes included.
    pub max_string_bytes: usize,
    /// Most values and member names in the whole text: each is an allocation or a slot.
    pub max_nodes: usize,
    /// Most memory the parsed tree may take ([`Shape::parsed_bytes`]): what bounds a body
    /// whose values are many and small.
    pub max_parsed_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits { max_depth: 32, max_items: 10_000, max_string_bytes: 64 * 1024, max_nodes: 200_000, max_parsed_bytes: 16 * 1024 * 1024 }
    }
}

/// What a JSON text will cost once parsed, counted by [`check_limits`] without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Values and member names.
    pub nodes: usize,
    /// An upper estimate of the heap the parsed `serde_json::Value` takes (glibc's allocator,
    /// serde_json's `BTreeMap` objects): each value's 32-byte slot, each array's vector as it
    /// grows, each object's B-tree nodes, each string's buffer, and the allocator's overhead.
    pub parsed_bytes: usize,
}

/// Heap cost of one allocation of `n` bytes: glibc rounds to 16 and adds a 16-byte header
/// (8 used, 8 kept for alignment, as counted for small chunks).
const fn allocation(n: usize) -> usize {
    if n == 0 { 0 } else { n.div_ceil(16) * 16 + 16 }
}

/// A `serde_json::Value`: the slot it takes in its parent (or at the top).
const VALUE_BYTES: usize = 32;

/// A B-tree leaf of `String` keys and `Value`s (11 of each, lengths and a parent link), and an
/// internal node (a leaf and 12 child links).
const BTREE_LEAF_BYTES: usize = 11 * (24 + VALUE_BYTES) + 16;
const BTREE_INTERNAL_BYTES: usize = BTREE_LEAF_BYTES + 12 * 8;

/// The heap an array of `items` values takes: the vector grows by doubling.
fn array_bytes(items: usize) -> usize {
    if items == 0 { 0 } else { allocation(items.next_power_of_two().max(4) * VALUE_BYTES) }
}

/// The heap an object of `members` takes: B-tree nodes at least half full, one internal node
/// per six leaves.
fn object_bytes(members: usize) -> usize {
    if members == 0 {
        return 0;
    }
    let leaves = members.div_ceil(5);
    allocation(BTREE_LEAF_BYTES) * leaves + allocation(BTREE_INTERNAL_BYTES) * leaves.div_ceil(5).saturating_sub(usize::from(leaves == 1))
}

/// Which bound the text crossed, and where (byte offset in the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    #[error("the JSON nests deeper than {limit} levels (at byte {offset})")]
    Depth { limit: usize, offset: usize },
    #[error("an array or object has more than {limit} items (at byte {offset})")]
    Items { limit: usize, offset: usize },
    #[error("a string is longer than {limit} bytes (starting at byte {offset})")]
    StringBytes { limit: usize, offset: usize },
    #[error("the JSON holds more than {limit} values and member names (at byte {offset})")]
    Nodes { limit: usize, offset: usize },
    #[error("the JSON would take about {needed} bytes of memory once parsed, more than {limit}: it holds too many small values")]
    ParsedBytes { limit: usize, needed: usize },
}

impl LimitExceeded {
    /// The name of the configured bound, for error bodies.
    pub fn bound(&self) -> &'static str {
        match self {
            LimitExceeded::Depth { .. } => "max_json_depth",
            LimitExceeded::Items { .. } => "max_json_items",
            LimitExceeded::StringBytes { .. } => "max_json_string_bytes",
            LimitExceeded::Nodes { .. } => "max_json_nodes",
            LimitExceeded::ParsedBytes { .. } => "max_json_parsed_bytes",
        }
    }
    pub fn limit(&self) -> usize {
        match *self {
            LimitExceeded::Depth { limit, .. }
            | LimitExceeded::Items { limit, .. }
            | LimitExceeded::StringBytes { limit, .. }
            | LimitExceeded::Nodes { limit, .. }
            | LimitExceeded::ParsedBytes { limit, .. } => limit,
        }
    }
}

/// An array or object being read: separators seen so far (items = separators + 1, when any
/// value was seen), and which of the two it is.
struct Frame {
    separators: usize,
    any: bool,
    object: bool,
}

/// Checks the bounds in one pass over the bytes, without building anything, and tells what the
/// parsed tree will cost. Lenient about syntax (the parser that follows judges that): it only
/// counts.
pub fn check_limits(bytes: &[u8], limits: &JsonLimits) -> Result<Shape, LimitExceeded> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut shape = Shape { nodes: 0, parsed_bytes: VALUE_BYTES };
    // Whether the next token starts a value (or, in an object, a member name).
    let mut expecting = true;
    let mut i = 0;
    let node = |shape: &mut Shape, offset: usize| {
        shape.nodes += 1;
        if shape.nodes > limits.max_nodes {
            return Err(LimitExceeded::Nodes { limit: limits.max_nodes, offset });
        }
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let len = i.min(bytes.len()) - start - 1;
                if len > limits.max_string_bytes {
                    return Err(LimitExceeded::StringBytes { limit: limits.max_string_bytes, offset: start });
                }
                shape.parsed_bytes += allocation(len);
                node(&mut shape, start)?;
                if let Some(f) = frames.last_mut() {
                    f.any = true;
                }
                expecting = false;
            }
            b'[' | b'{' => {
                if frames.len() == limits.max_depth {
                    return Err(LimitExceeded::Depth { limit: limits.max_depth, offset: i });
                }
                node(&mut shape, i)?;
                if let Some(f) = frames.last_mut() {
                    f.any = true;
                }
                frames.push(Frame { separators: 0, any: false, object: b == b'{' });
                expecting = true;
            }
            b']' | b'}' => {
                if let Some(f) = frames.pop() {
                    let items = if f.any { f.separators + 1 } else { 0 };
                    shape.parsed_bytes += if f.object { object_bytes(items) } else { array_bytes(items) };
                }
                expecting = false;
            }
            b',' => {
                if let Some(f) = frames.last_mut() {
                    f.separators += 1;
                    if f.separators + 1 > limits.max_items {
                        return Err(LimitExceeded::Items { limit: limits.max_items, offset: i });
                    }
                }
                expecting = true;
            }
            b':' => expecting = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                // A number, true, false or null: one value, its bytes skipped.
                if expecting {
                    node(&mut shape, i)?;
                    if let Some(f) = frames.last_mut() {
                        f.any = true;
                    }
                    expecting = false;
                }
            }
        }
        i += 1;
    }
    if shape.parsed_bytes > limits.max_parsed_bytes {
        return Err(LimitExceeded::ParsedBytes { limit: limits.max_parsed_bytes, needed: shape.parsed_bytes });
    }
    Ok(shape)
}

/// Why a JSON text was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    #[error(transparent)]
    Syntax(#[from] serde_json::Error),
}

/// Checks the bounds, then parses strictly: the one way outside JSON comes in.
pub fn parse_bounded(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    check_limits(bytes, limits)?;
    Ok(parse_strict(bytes)?)
}

/// [`parse_bounded`], where the memory the tree will take must first be granted by `reserve`
/// (a quota's bytes in flight): it is given [`Shape::parsed_bytes`] before anything is built,
/// and what it answers is kept for as long as the tree is.
pub fn parse_reserved<R, E: From<JsonError>>(
    bytes: &[u8],
    limits: &JsonLimits,
    reserve: impl FnOnce(usize) -> Result<R, E>,
) -> Result<(Value, R), E> {
    let shape = check_limits(bytes, limits).map_err(JsonError::from)?;
    let reserved = reserve(shape.parsed_bytes)?;
    let value = parse_strict(bytes).map_err(JsonError::from)?;
    Ok((value, reserved))
}

/// Parses JSON, refusing duplicate keys in any object (serde_json alone keeps the last one).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Strict(v) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            // One lookup: the key is placed, or found already there.
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(v);
                }
                serde_json::map::Entry::Occupied(taken) => {
                    let shown: String = taken.key().chars().take(64).collect();
                    return Err(serde::de::Error::custom(format!("duplicate key {shown:?}")));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_strict;

    #[test]
    fn strict_json_refuses_duplicate_keys_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#).is_ok());
        let e = parse_strict(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
        assert!(parse_strict(br#"{"x":[{"k":1,"k":1}]}"#).is_err());
        assert!(parse_strict(b"{} x").is_err());
        assert!(parse_strict(b"1e400").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_strict(deep.as_bytes()).is_err(), "the recursion limit holds");
    }

    #[test]
    fn limits_count_depth_items_and_string_bytes_outside_strings_only() {
        use super::{check_limits, JsonLimits, LimitExceeded};
        let l = JsonLimits { max_depth: 3, max_items: 3, max_string_bytes: 5, ..JsonLimits::default() };
        assert!(check_limits(br#"{"a":[[1,2,3]],"b":"12345"}"#, &l).is_ok());
        assert_eq!(check_limits(b"[[[[]]]]", &l), Err(LimitExceeded::Depth { limit: 3, offset: 3 }));
        assert_eq!(check_limits(b"[1,2,3,4]", &l), Err(LimitExceeded::Items { limit: 3, offset: 6 }));
        assert!(matches!(check_limits(br#"{"a":1,"b":2,"c":3,"d":4}"#, &l), Err(LimitExceeded::Items { .. })));
        assert_eq!(check_limits(br#"["123456"]"#, &l), Err(LimitExceeded::StringBytes { limit: 5, offset: 1 }));
        // Brackets, commas and escaped quotes inside strings are text, not structure.
        assert!(check_limits(br#"["[[[,,,", "a\"[["]"#, &JsonLimits { max_string_bytes: 50, ..l }).is_ok());
        // Truncated input is left to the parser.
        assert!(check_limits(br#"{"a":"12"#, &l).is_ok());
        let deep = "[".repeat(10_000);
        assert!(matches!(check_limits(deep.as_bytes(), &JsonLimits::default()), Err(LimitExceeded::Depth { limit: 32, .. })));
    }

    #[test]
    fn nodes_are_values_and_member_names() {
        use super::{check_limits, JsonLimits};
        let l = JsonLimits::default();
        assert_eq!(check_limits(br#"{"a":[1,true,null,"x"],"b":{}}"#, &l).unwrap().nodes, 9);
        assert_eq!(check_limits(b" 12 ", &l).unwrap().nodes, 1);
        assert_eq!(check_limits(b"[-1.5e3, 2]", &l).unwrap().nodes, 3);
        let tight = JsonLimits { max_nodes: 8, ..l };
        assert_eq!(check_limits(br#"{"a":[1,true,null,"x"],"b":{}}"#, &tight).unwrap_err().bound(), "max_json_nodes");
    }

    #[test]
    fn many_small_objects_cost_far_more_than_their_text() {
        use super::{check_limits, JsonLimits, LimitExceeded};
        // The red team's body: 10,000 `{"":0}` in each of 14 arrays, 980 KB of text.
        let arrays: Vec<String> = (0..14).map(|i| format!("\"k{i}\":[{}]", vec![r#"{"":0}"#; 10_000].join(","))).collect();
        let body = format!("{{{}}}", arrays.join(","));
        let unbounded = JsonLimits { max_parsed_bytes: usize::MAX, max_nodes: usize::MAX, ..JsonLimits::default() };
        let shape = check_limits(body.as_bytes(), &unbounded).unwrap();
        assert!(shape.parsed_bytes > 60 * body.len(), "{} bytes of text estimated at {}", body.len(), shape.parsed_bytes);
        assert!(matches!(check_limits(body.as_bytes(), &JsonLimits::default()), Err(LimitExceeded::Nodes { .. })));
        let by_memory = JsonLimits { max_nodes: usize::MAX, ..JsonLimits::default() };
        assert!(matches!(check_limits(body.as_bytes(), &by_memory), Err(LimitExceeded::ParsedBytes { .. })));
        // An ordinary document costs a few times its text.
        let doc = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/customsDeclaration/valid/export-beef-road-AR-BR.json")).unwrap();
        let shape = check_limits(&doc, &JsonLimits::default()).unwrap();
        assert!(shape.parsed_bytes < 12 * doc.len() && shape.parsed_bytes > doc.len(), "{} -> {}", doc.len(), shape.parsed_bytes);
    }
}
