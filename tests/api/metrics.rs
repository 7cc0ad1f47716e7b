//! `/metrics` in Prometheus' text format, after real traffic: requests by route and status,
//! validation failures by document type, deliveries by agency and status, the backlog, the
//! publish latency and each agency's time to its first answer.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{example, spawn_app};

/// The value of the sample named exactly `series`, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = spawn_app().await;
    let receipt: serde_json::Value = app.submit(&example("customsDeclaration/valid/export-beef-road-AR-BR.json")).await.json().await.unwrap();
    assert_eq!(app.submit(&example("customsDeclaration/invalid/bad-hs-code.json")).await.status(), 422);
    assert_eq!(app.submit(&example("spsCertificate/invalid/bad-date.json")).await.status(), 422);
    let ucr = receipt["ucr"].as_str().unwrap();
    app.wait_for_state(ucr, "submitted").await;
    let ack = json!({"documentId": receipt["documentId"], "agency": "br-customs", "status": "released"});
    assert_eq!(app.post_json("/v1/acknowledgments", Some("demo-br-customs"), &ack.to_string()).await.status(), 200);
    let deliveries = receipt["deliveries"].as_array().unwrap().len() as f64;

    // Publications are counted once the broker confirms them; the store records the
    // confirmation just after, and the relay counts the backlog again on its next round.
    let text = crate::support::eventually(Duration::from_secs(10), "every publication counted and the backlog empty", || async {
        let r = app.get("/metrics", Some("demo-operator")).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        (sample(&text, "ventanilla_publish_latency_seconds_count") == Some(deliveries)
            && sample(&text, "ventanilla_deliveries{agency=\"ar-customs\",status=\"dispatched\"}") == Some(1.0)
            && sample(&text, "ventanilla_outbox_backlog") == Some(0.0))
        .then_some(text)
    })
    .await;
    assert_eq!(sample(&text, "ventanilla_publish_latency_seconds_count"), Some(deliveries), "{text}");
    assert_eq!(sample(&text, "ventanilla_http_requests_total{route=\"/v1/documents\",status=\"202\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_http_requests_total{route=\"/v1/documents\",status=\"422\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_http_requests_total{route=\"/v1/acknowledgments\",status=\"200\"}"), Some(1.0), "{text}");
    assert!(sample(&text, "ventanilla_http_requests_total{route=\"/v1/consignments/{ucr}\",status=\"200\"}").is_some(), "by template, not path: {text}");
    assert_eq!(sample(&text, "ventanilla_validation_failures_total{document_type=\"customsDeclaration\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_validation_failures_total{document_type=\"spsCertificate\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_deliveries{agency=\"br-customs\",status=\"released\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_deliveries{agency=\"ar-customs\",status=\"dispatched\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_outbox_backlog"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_acknowledgment_latency_seconds_count{agency=\"br-customs\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "ventanilla_acknowledgment_latency_seconds_bucket{agency=\"br-customs\",le=\"+Inf\"}"), Some(1.0), "{text}");
    // Operators only.
    assert_eq!(app.get("/metrics", Some("demo-trader")).await.status(), 403);
    assert_eq!(app.get("/metrics", None).await.status(), 401);
}
