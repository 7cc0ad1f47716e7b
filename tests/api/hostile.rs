//! The bad-input corpus: hostile or broken requests, each answered with the right status and a
//! problem+json body, none crashing the gateway, and none changing the store or the topics
//! (both read before and after, not assumed).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, example, spawn_app, TestApp};

const AGENCIES: [&str; 9] = [
    "ar-customs", "ar-sanitary", "ar-border", "br-customs", "br-sanitary", "br-border", "uy-customs", "uy-sanitary", "uy-border",
];

/// Row counts of every table, read from the gateway's SQLite file, and every topic's end offsets.
async fn snapshot(app: &TestApp) -> (Vec<i64>, Vec<(String, i32, i64)>) {
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let counts = ["consignments", "documents", "deliveries", "delivery_events", "status_outbox"]
        .iter()
        .map(|t| db.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0)).unwrap())
        .collect();
    let brokers = app.brokers.clone();
    let mut topics: Vec<String> = AGENCIES.iter().flat_map(|a| [app.topic(&format!("agency.{a}")), app.topic(&format!("acks.{a}"))]).collect();
    topics.extend([app.topic("status"), app.topic("deadletter")]);
    let marks = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", "watermarks").create().unwrap();
        let mut out = Vec::new();
        for t in topics {
            for p in 0..3 {
                let (_, high) = c.fetch_watermarks(&t, p, Duration::from_secs(10)).unwrap();
                out.push((t.clone(), p, high));
            }
        }
        out
    })
    .await
    .unwrap();
    (counts, marks)
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    token: Option<&'static str>,
    content_type: Option<&'static str>,
    idempotency_key: Option<String>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, path: &str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: path.into(),
        token: Some(if path == "/v1/acknowledgments" { "demo-br-customs" } else { "demo-trader" }),
        content_type: Some("application/json"),
        idempotency_key: None,
        body: body.into(),
        status,
        code,
    }
}

fn with(base: &Value, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = base.clone();
    f(&mut v);
    v.to_string().into_bytes()
}

#[tokio::test]
async fn hostile_and_broken_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let valid = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    // One accepted document, so acknowledgments have something real to aim at.
    let receipt: Value = app.submit(&valid).await.json().await.unwrap();
    let doc = receipt["documentId"].as_str().unwrap().to_owned();
    let ucr = receipt["ucr"].as_str().unwrap().to_owned();
    app.wait_for_state(&ucr, "submitted").await;
    crate::support::eventually(Duration::from_secs(10), "every delivery dispatched", || async {
        let v: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        v["documents"][0]["deliveries"].as_array().unwrap().iter().all(|d| d["dispatchedAt"].is_string()).then_some(())
    })
    .await;
    // And the status relay has published every status event (rows are kept, marked published).
    let status = app.topic("status");
    crate::support::eventually(Duration::from_secs(10), "every status event on the status topic", || async {
        let (counts, marks) = snapshot(&app).await;
        let published: i64 = marks.iter().filter(|(t, _, _)| *t == status).map(|(_, _, high)| high).sum();
        (counts[4] > 0 && published >= counts[4]).then_some(())
    })
    .await;
    let before = snapshot(&app).await;

    let d = "/v1/documents";
    let a = "/v1/acknowledgments";
    let valid_text = valid.to_string();
    let ack = json!({"documentId": doc, "agency": "br-customs", "status": "accepted"});
    let mut cases = vec![
        case("truncated JSON", d, &valid_text.as_bytes()[..valid_text.len() / 2], 400, "malformed-json"),
        case("a lone brace", d, "{", 400, "malformed-json"),
        case("empty body", d, "", 400, "malformed-json"),
        case("trailing garbage", d, format!("{valid_text} x"), 400, "malformed-json"),
        case("invalid UTF-8", d, b"{\"ucr\": \"\xff\xfe\"}".to_vec(), 400, "malformed-json"),
        case("byte order mark", d, [b"\xef\xbb\xbf".as_slice(), valid_text.as_bytes()].concat(), 400, "malformed-json"),
        case("duplicate keys", d, valid_text.replacen("{", "{\"ucr\":\"OTHER-UCR\",", 1), 400, "malformed-json"),
        case("10,000-deep nesting", d, "[".repeat(10_000) + &"]".repeat(10_000), 422, "json-limit-exceeded"),
        case("33-deep nesting inside the payload", d, with(&valid, |v| v["payload"]["x"] = serde_json::from_str(&("[".repeat(33) + &"]".repeat(33))).unwrap()), 422, "json-limit-exceeded"),
        case("10,000-deep unclosed nesting", d, "{\"a\":".repeat(10_000), 422, "json-limit-exceeded"),
        // JSON text no serializer would write: a number beyond f64.
        case("number beyond f64", d, valid_text.replacen("{", "{\"n\":1e400,", 1), 400, "malformed-json"),
        case("JSON null", d, "null", 422, "invalid-document"),
        case("JSON array", d, "[]", 422, "invalid-document"),
        case("JSON string", d, "\"customsDeclaration\"", 422, "invalid-document"),
        case("JSON number", d, "42", 422, "invalid-document"),
        case("empty object", d, "{}", 422, "invalid-document"),
        case("huge array of goods", d, with(&valid, |v| v["payload"]["goodsItems"] = json!(vec![json!({}); 100_000])), 422, "json-limit-exceeded"),
        case("huge string", d, with(&valid, |v| v["payload"]["declarant"]["name"] = json!("A".repeat(900_000))), 422, "json-limit-exceeded"),
        case("object with 20,000 members", d, with(&valid, |v| v["payload"]["x"] = (0..20_000).map(|i| (format!("k{i}"), json!(1))).collect::<serde_json::Map<_, _>>().into()), 422, "json-limit-exceeded"),
        case("goods over the schema's 999", d, with(&valid, |v| v["payload"]["goodsItems"] = json!(vec![json!({}); 1_000])), 422, "invalid-document"),
        case("name over the schema's 200 characters", d, with(&valid, |v| v["payload"]["declarant"]["name"] = json!("A".repeat(201))), 422, "invalid-document"),
        case("body over the limit", d, with(&valid, |v| v["payload"]["declarant"]["name"] = json!("A".repeat(1_100_000))), 413, "payload-too-large"),
        case("unknown document type", d, with(&valid, |v| v["documentType"] = json!("billOfLading")), 422, "unknown-document-type"),
        case("unknown schema version", d, with(&valid, |v| v["schemaVersion"] = json!("7.0.0")), 422, "unknown-schema-version"),
        case("version not a version", d, with(&valid, |v| v["schemaVersion"] = json!("latest")), 422, "invalid-document"),
        case("document type as number", d, with(&valid, |v| v["documentType"] = json!(7)), 422, "invalid-document"),
        case("document type path traversal", d, with(&valid, |v| v["documentType"] = json!("../../etc/passwd")), 422, "invalid-document"),
        case("UCR as number", d, with(&valid, |v| v["ucr"] = json!(123456)), 422, "invalid-document"),
        case("UCR with header injection", d, with(&valid, |v| v["ucr"] = json!("ABC\r\nX-Injected: 1")), 422, "invalid-document"),
        case("UCR with a NUL byte", d, with(&valid, |v| v["ucr"] = json!("ABC\u{0}DEF")), 422, "invalid-document"),
        case("UCR too long", d, with(&valid, |v| v["ucr"] = json!("A".repeat(36))), 422, "invalid-document"),
        case("origin as array", d, with(&valid, |v| v["origin"] = json!(["AR"])), 422, "invalid-document"),
        case("unknown country", d, with(&valid, |v| v["destination"] = json!("XX")), 422, "invalid-document"),
        case("payload as string", d, with(&valid, |v| v["payload"] = json!("{}")), 422, "invalid-document"),
        case("payload missing", d, with(&valid, |v| { v.as_object_mut().unwrap().remove("payload"); }), 422, "invalid-document"),
        case("extra envelope field", d, with(&valid, |v| v["priority"] = json!("urgent")), 422, "invalid-document"),
        case("ack for an unknown document", a, with(&ack, |v| v["documentId"] = json!("0190c7a4-6a7e-7cc3-8b2b-3f0f6b1e2a10")), 404, "unknown-document"),
        case("ack with an unknown status", a, with(&ack, |v| v["status"] = json!("approved")), 422, "invalid-acknowledgment"),
        case("ack with a bad document id", a, with(&ack, |v| v["documentId"] = json!("not-a-uuid")), 422, "invalid-acknowledgment"),
        case("ack in another agency's name", a, with(&ack, |v| v["agency"] = json!("ar-customs")), 403, "forbidden"),
        case("ack with a huge reason", a, with(&ack, |v| v["reason"] = json!("r".repeat(10_000))), 422, "invalid-acknowledgment"),
        case("ack as an array", a, "[]", 422, "invalid-acknowledgment"),
        case("ack truncated", a, "{\"documentId\":", 400, "malformed-json"),
        case("ack nested 10,000 deep", a, "[".repeat(10_000), 422, "json-limit-exceeded"),
        case("ack with duplicate keys", a, ack.to_string().replacen("{", "{\"status\":\"released\",", 1), 400, "malformed-json"),
    ];
    let mut more = vec![
        Case { content_type: None, ..case("no content type", d, valid_text.clone(), 415, "unsupported-media-type") },
        Case { content_type: Some("text/plain"), ..case("text/plain", d, valid_text.clone(), 415, "unsupported-media-type") },
        Case { content_type: Some("application/xml"), ..case("XML media type", d, valid_text.clone(), 415, "unsupported-media-type") },
        Case { content_type: Some("application/x-www-form-urlencoded"), ..case("form media type", a, ack.to_string(), 415, "unsupported-media-type") },
        Case { token: None, ..case("no token", d, valid_text.clone(), 401, "unauthenticated") },
        Case { token: Some("demo-trader' OR '1'='1"), ..case("forged token", d, valid_text.clone(), 401, "unauthenticated") },
        Case { token: Some("demo-trader"), ..case("ack by a trader", a, ack.to_string(), 403, "forbidden") },
        Case { idempotency_key: Some("a\tb".into()), ..case("idempotency key with a control character", d, valid_text.clone(), 400, "invalid-idempotency-key") },
        Case { idempotency_key: Some("k".repeat(300)), ..case("idempotency key too long", d, valid_text.clone(), 400, "invalid-idempotency-key") },
        Case { method: "GET", ..case("schema path traversal", "/v1/schemas/..%2F..%2Fetc%2Fpasswd/1.0.0", "", 404, "not-found") },
        Case { method: "GET", ..case("schema version traversal", "/v1/schemas/customsDeclaration/..%2F..%2Fconfig", "", 404, "not-found") },
        Case { method: "GET", ..case("consignment path traversal", "/v1/consignments/..%2F..%2Fetc%2Fpasswd", "", 404, "not-found") },
        Case { method: "PUT", ..case("PUT on documents", d, valid_text.clone(), 405, "method-not-allowed") },
        Case { method: "DELETE", ..case("DELETE on acknowledgments", a, "", 405, "method-not-allowed") },
    ];
    cases.append(&mut more);
    assert!(cases.len() >= 40, "{} cases", cases.len());

    for c in &cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = app.client.request(method, format!("{}{}", app.address, c.path)).body(c.body.clone());
        if let Some(t) = c.token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = c.content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(k) = &c.idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{}: the gateway did not answer: {e}", c.name));
        println!("case {:<40} -> {} {}", c.name, r.status().as_u16(), c.code);
        let status = r.status().as_u16();
        assert_eq!(status, c.status, "case {:?}", c.name);
        assert_problem(r, c.status, c.code).await;
    }
    // Still alive, and nothing changed.
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let after = snapshot(&app).await;
    assert_eq!(before.0, after.0, "store row counts (consignments, documents, deliveries, events, status outbox)");
    assert_eq!(before.1, after.1, "topic end offsets");
}
