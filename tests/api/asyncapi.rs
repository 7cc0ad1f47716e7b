//! `/asyncapi.json`: the Kafka side as AsyncAPI 3.0, generated from the registry and the
//! region, validated by the maintained parser (@asyncapi/parser from the npm registry, which
//! the test command installs), with every topic the gateway uses.

use serde_json::Value;

use crate::helpers::{repo, spawn_app_with};

#[tokio::test]
async fn the_asyncapi_document_is_valid_and_names_every_topic() {
    let parser = std::env::var("VENTANILLA_TEST_ASYNCAPI_PARSER")
        .expect("VENTANILLA_TEST_ASYNCAPI_PARSER is not set: run the suite with scripts/test.sh, which installs @asyncapi/parser");
    let app = spawn_app_with(None).await;
    let r = app.get("/asyncapi.json", None).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("asyncapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(repo().join("scripts/check-asyncapi.mjs"))
            .arg(&file)
            .env("ASYNCAPI_PARSER_DIR", parser)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the parser refused it:\n{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["version"], "3.0.0");
    let channels: Vec<&str> = parsed["channels"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for agency in ["ar-customs", "br-sanitary", "uy-border"] {
        for topic in [format!("agency.{agency}"), format!("acks.{agency}"), format!("acks.{agency}.refused")] {
            assert!(channels.contains(&app.topic(&topic).as_str()), "{topic} in {channels:?}");
        }
    }
    assert!(channels.contains(&app.topic("status").as_str()) && channels.contains(&app.topic("deadletter").as_str()));
    // Clients learn where to bootstrap, and that every record is keyed by a string (the UCR).
    assert_eq!(parsed["servers"], serde_json::json!([{ "host": app.brokers.split(',').next().unwrap(), "protocol": "kafka" }]), "{parsed:#}");
    for message in ["document", "acknowledgment", "refusedAnswer", "unchangedAnswer", "status"] {
        assert_eq!(parsed["keys"][message]["type"], "string", "{message}'s Kafka key binding: {parsed:#}");
    }
    // The messages carry the CloudEvents headers and the registry's schemas.
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["components"]["schemas"]["customsDeclaration-1.0.0"].is_object());
    assert_eq!(doc["components"]["messages"]["document"]["headers"]["$ref"], "#/components/schemas/CloudEventHeaders");
    app.stop().await;
}
