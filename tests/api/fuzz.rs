//! Property-based fuzzing (proptest) of the parsers every outside input goes through: the
//! bounded strict JSON reader, the envelope (submission) validator and the acknowledgment
//! parser. No input may panic them, and every refusal must point at a place that exists in
//! the input. Runs 256 cases per property in the test command; for a longer run:
//! `PROPTEST_CASES=100000 scripts/test.sh fuzz` (or `cargo test --test api fuzz` alone, which
//! needs no broker).

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};
use ventanilla::gateway::parse_acknowledgment;
use ventanilla::json::{check_limits, parse_bounded, JsonError, JsonLimits};
use ventanilla::schema::{Rejection, SchemaRegistry};

use crate::helpers::{example, registry_of, repo};

fn registry() -> &'static SchemaRegistry {
    static R: OnceLock<SchemaRegistry> = OnceLock::new();
    R.get_or_init(|| registry_of(&repo().join("schemas")).expect("the schemas compile"))
}

/// Any JSON value, up to a few levels deep, with strings that look like the real thing.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("AR".to_owned()),
            Just("customsDeclaration".to_owned()),
            Just("1.0.0".to_owned()),
            Just("../../etc/passwd".to_owned()),
            Just("0190c7a4-6a7e-7cc3-8b2b-3f0f6b1e2a10".to_owned()),
            Just("released".to_owned()),
            ".{0,40}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ucr".to_owned()),
                    Just("documentType".to_owned()),
                    Just("payload".to_owned()),
                    Just("hsCode".to_owned()),
                    "[a-zA-Z]{1,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer to a value inside `v`, the root included.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

/// Whether a violation's pointer names a place in `body`: the value at fault, or for a missing
/// member (`required`) the place it should be, inside an object that exists.
fn points_into(body: &Value, pointer: &str, keyword: &str) -> bool {
    if keyword == "required" {
        let parent = pointer.rsplit_once('/').map_or("", |(p, _)| p);
        body.pointer(parent).is_some_and(Value::is_object)
    } else {
        body.pointer(pointer).is_some()
    }
}

/// Submission validation on `body` must not panic, and every violation must point into it.
fn check_submission(body: &Value) -> Result<(), TestCaseError> {
    match registry().validate_submission(body) {
        Ok(valid) => {
            let _ = valid.routing_facts();
        }
        Err(Rejection::Invalid(violations)) => {
            prop_assert!(!violations.is_empty());
            for v in violations {
                prop_assert!(points_into(body, &v.pointer, &v.keyword), "violation {:?} at {:?} is not in the body", v.keyword, v.pointer);
            }
        }
        Err(_) => {}
    }
    Ok(())
}

const VALID: [&str; 4] = [
    "customsDeclaration/valid/export-beef-road-AR-BR.json",
    "spsCertificate/valid/phyto-pears-road-AR-BR.json",
    "commercialInvoice/valid/beef-road-AR-BR.json",
    "borderCrossingNotice/valid/road-beef-AR-BR.json",
];

/// Bytes that are JSON-like more often than random bytes are: tokens of JSON, and any byte.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()), Just(b"}".to_vec()), Just(b"[".to_vec()), Just(b"]".to_vec()),
        Just(b",".to_vec()), Just(b":".to_vec()), Just(b"\"k\"".to_vec()), Just(b"\"a\\\"b\"".to_vec()),
        Just(b"1".to_vec()), Just(b"-0.5e3".to_vec()), Just(b"1e400".to_vec()), Just(b"true".to_vec()),
        Just(b"null".to_vec()), Just(b" ".to_vec()), Just(b"\"\\u00e9\"".to_vec()), Just(b"\"".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

/// Depth, largest item count and longest string (as sent, escapes included) of a value.
fn shape(v: &Value) -> (usize, usize, usize) {
    let sent = |s: &str| serde_json::to_string(s).map(|t| t.len() - 2).unwrap_or(0);
    match v {
        Value::String(s) => (0, 0, sent(s)),
        Value::Array(a) => a.iter().map(shape).fold((1, a.len(), 0), |(d, i, l), (cd, ci, cl)| (d.max(cd + 1), i.max(ci), l.max(cl))),
        Value::Object(m) => m.iter().map(|(k, c)| { let (cd, ci, cl) = shape(c); (cd, ci, cl.max(sent(k))) })
            .fold((1, m.len(), 0), |(d, i, l), (cd, ci, cl)| (d.max(cd + 1), i.max(ci), l.max(cl))),
        _ => (0, 0, 0),
    }
}

/// Values and member names in `v`.
fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(nodes).sum(),
        Value::Object(members) => members.values().map(|m| 1 + nodes(m)).sum(),
        _ => 0,
    }
}

proptest! {
    #[test]
    fn fuzz_the_json_reader_never_panics_and_agrees_with_serde(bytes in json_ish_bytes()) {
        let limits = JsonLimits { max_depth: 4, max_items: 8, max_string_bytes: 16, ..JsonLimits::default() };
        match parse_bounded(&bytes, &limits) {
            Ok(v) => {
                prop_assert!(check_limits(&bytes, &limits).is_ok());
                prop_assert_eq!(serde_json::from_slice::<Value>(&bytes).ok(), Some(v));
            }
            Err(JsonError::Limit(_)) => prop_assert!(check_limits(&bytes, &limits).is_err()),
            Err(_) => {}
        }
    }

    #[test]
    fn fuzz_the_json_reader_accepts_what_fits_and_refuses_what_does_not(v in any_json()) {
        let text = v.to_string();
        let tight = JsonLimits { max_depth: 3, max_items: 4, max_string_bytes: 12, ..JsonLimits::default() };
        // Values and member names, counted on the text without parsing it, are the tree's.
        prop_assert_eq!(check_limits(text.as_bytes(), &JsonLimits::default()).map(|s| s.nodes).ok(), Some(nodes(&v)));
        let (depth, items, longest) = shape(&v);
        let fits = depth <= tight.max_depth && items <= tight.max_items && longest <= tight.max_string_bytes;
        match parse_bounded(text.as_bytes(), &tight) {
            Ok(parsed) => {
                prop_assert!(fits, "accepted although depth {depth}, items {items}, string {longest}");
                prop_assert_eq!(&parsed, &v);
            }
            Err(JsonError::Limit(_)) => prop_assert!(!fits, "refused although depth {depth}, items {items}, string {longest}"),
            Err(e) => prop_assert!(false, "serde_json's own output refused: {e}"),
        }
        prop_assert_eq!(parse_bounded(text.as_bytes(), &JsonLimits::default()).ok(), Some(v));
    }

    #[test]
    fn fuzz_envelopes_of_any_shape(body in any_json()) {
        check_submission(&body)?;
    }

    #[test]
    fn fuzz_valid_documents_with_one_value_replaced(which in 0..VALID.len(), pick in any::<prop::sample::Index>(), with in any_json()) {
        let mut body = example(VALID[which]);
        let mut all = Vec::new();
        pointers(&body, String::new(), &mut all);
        let target = pick.get(&all).clone();
        match body.pointer_mut(&target) {
            Some(slot) => *slot = with,
            None => prop_assert!(false, "pointer {target} exists"),
        }
        check_submission(&body)?;
    }

    #[test]
    fn fuzz_acknowledgments(
        document_id in prop_oneof![Just(json!("0190c7a4-6a7e-7cc3-8b2b-3f0f6b1e2a10")), any_json()],
        agency in prop_oneof![Just(json!("br-customs")), any_json()],
        status in prop_oneof![Just(json!("released")), Just(json!("hold")), any_json()],
        reason in proptest::option::of(any_json()),
        extra in proptest::option::of(any_json()),
    ) {
        let mut ack = json!({"documentId": document_id, "agency": agency, "status": status});
        if let Some(r) = reason { ack["reason"] = r; }
        if let Some(x) = extra { ack["extra"] = x; }
        match parse_acknowledgment(registry(), &ack) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.document_id.to_string(), ack["documentId"].as_str().unwrap());
                prop_assert_eq!(parsed.status.as_str(), ack["status"].as_str().unwrap());
                prop_assert_eq!(parsed.agency.as_str(), ack["agency"].as_str().unwrap());
            }
            Err(violations) => {
                prop_assert!(!violations.is_empty());
                for v in violations {
                    prop_assert!(points_into(&ack, &v.pointer, &v.keyword), "violation {:?} at {:?} is not in the ack", v.keyword, v.pointer);
                }
            }
        }
    }
}
