//! A schema's violations in a trader's words: the field's `x-hint` where its schema gives one,
//! bounds as people say them, one violation per field however many keywords it breaks, and no
//! message longer than [`MAX_MESSAGE`].

use serde_json::Value;

use super::files::{percent_decoded, Files};
use super::CompiledSchema;
use crate::pointer::{escape, Violation, MAX_VIOLATIONS};

/// Longest message text reported; a violation never echoes a huge input back.
const MAX_MESSAGE: usize = 300;

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
pub(super) fn violations_of(files: &Files, schema: &CompiledSchema, instance: &Value, prefix: &str) -> Vec<Violation> {
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

pub(super) fn truncate(mut s: String) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_bounds_are_told_as_people_write_them() {
        assert_eq!(limit(&json!(1000000.0)), "1000000");
        assert_eq!(limit(&json!(10.5)), "10.5");
        assert_eq!(kind_of(&json!("short")), "the text \"short\"");
        assert_eq!(kind_of(&json!("x".repeat(41))), "a text");
        assert_eq!(kind_of(&json!([1])), "an array");
        assert_eq!(count(1, "item"), "1 item");
        assert_eq!(count(3, "item"), "3 items");
    }

    #[test]
    fn a_message_is_cut_at_a_character_boundary_and_a_huge_value_is_not_written_whole() {
        let long = "é".repeat(MAX_MESSAGE);
        let cut = truncate(long);
        assert!(cut.len() <= MAX_MESSAGE + '…'.len_utf8() && cut.ends_with('…'));
        assert_eq!(truncate("short".into()), "short");
        let huge = json!({"a": "x".repeat(1 << 20)});
        assert!(short(&huge).len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}
