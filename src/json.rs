//! Strict JSON for everything that arrives from outside (HTTP bodies, ack records): a
//! duplicated key is an error rather than a silent "last one wins", so two readers of the same
//! document can never disagree about its content; and the shape of the text (nesting depth,
//! items per array or object, string length) is bounded by [`check_limits`] before anything is
//! built from it, so no input can make the parser recurse deeply or allocate without bound.

use serde_json::Value;

/// Bounds on the shape of incoming JSON (`gateway.max_json_depth`, `max_json_items`,
/// `max_json_string_bytes`), checked on the raw bytes before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects; the schemas need far less than the default.
    pub max_depth: usize,
    /// Most items in one array, or members in one object.
    pub max_items: usize,
    /// Longest string (key or value), in bytes as sent, escapes included.
    pub max_string_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits { max_depth: 32, max_items: 10_000, max_string_bytes: 64 * 1024 }
    }
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
}

impl LimitExceeded {
    /// The name of the configured bound, for error bodies.
    pub fn bound(&self) -> &'static str {
        match self {
            LimitExceeded::Depth { .. } => "max_json_depth",
            LimitExceeded::Items { .. } => "max_json_items",
            LimitExceeded::StringBytes { .. } => "max_json_string_bytes",
        }
    }
    pub fn limit(&self) -> usize {
        match *self {
            LimitExceeded::Depth { limit, .. } | LimitExceeded::Items { limit, .. } | LimitExceeded::StringBytes { limit, .. } => limit,
        }
    }
}

/// Checks the bounds in one pass over the bytes, without building anything. Lenient about
/// syntax (the parser that follows judges that): it only counts.
pub fn check_limits(bytes: &[u8], limits: &JsonLimits) -> Result<(), LimitExceeded> {
    // Per open array or object: the separators seen so far (items = separators + 1).
    let mut frames: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i.min(bytes.len()) - start - 1 > limits.max_string_bytes {
                    return Err(LimitExceeded::StringBytes { limit: limits.max_string_bytes, offset: start });
                }
            }
            b'[' | b'{' => {
                if frames.len() == limits.max_depth {
                    return Err(LimitExceeded::Depth { limit: limits.max_depth, offset: i });
                }
                frames.push(0);
            }
            b']' | b'}' => {
                frames.pop();
            }
            b',' => {
                if let Some(separators) = frames.last_mut() {
                    *separators += 1;
                    if *separators + 1 > limits.max_items {
                        return Err(LimitExceeded::Items { limit: limits.max_items, offset: i });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
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
        let l = JsonLimits { max_depth: 3, max_items: 3, max_string_bytes: 5 };
        assert_eq!(check_limits(br#"{"a":[[1,2,3]],"b":"12345"}"#, &l), Ok(()));
        assert_eq!(check_limits(b"[[[[]]]]", &l), Err(LimitExceeded::Depth { limit: 3, offset: 3 }));
        assert_eq!(check_limits(b"[1,2,3,4]", &l), Err(LimitExceeded::Items { limit: 3, offset: 6 }));
        assert!(matches!(check_limits(br#"{"a":1,"b":2,"c":3,"d":4}"#, &l), Err(LimitExceeded::Items { .. })));
        assert_eq!(check_limits(br#"["123456"]"#, &l), Err(LimitExceeded::StringBytes { limit: 5, offset: 1 }));
        // Brackets, commas and escaped quotes inside strings are text, not structure.
        assert_eq!(check_limits(br#"["[[[,,,", "a\"[["]"#, &JsonLimits { max_string_bytes: 50, ..l }), Ok(()));
        // Truncated input is left to the parser.
        assert_eq!(check_limits(br#"{"a":"12"#, &l), Ok(()));
        let deep = "[".repeat(10_000);
        assert!(matches!(check_limits(deep.as_bytes(), &JsonLimits::default()), Err(LimitExceeded::Depth { limit: 32, .. })));
    }
}
