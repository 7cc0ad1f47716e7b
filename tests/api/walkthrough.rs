//! The README's walkthrough, pasted as written: every `sh` block of its "Walkthrough" section,
//! its kcat part included, runs, in order, in one bash session from the repository's root,
//! against a real gateway. Only the addresses are changed (the README's are the defaults,
//! 127.0.0.1:8080 and the embedded broker's 127.0.0.1:9092; the test's gateway listens on a free
//! port, against the test broker, with topics of its own prefix), `cargo run --release --` is
//! the binary this suite built, and each `kcat` is bounded by `timeout` so that a record that
//! never comes fails the test instead of hanging it. Then the API is asked whether the walkthrough did what the
//! README says it does. The IT teams' guide's "Adding a document type" runs the same way.

use serde_json::Value;

use crate::helpers::{repo, spawn_app};

/// The `sh` blocks of a document between `from` and `to` (two headings; `to` absent: the end).
fn blocks(readme: &str, from: &str, to: &str) -> Vec<String> {
    let start = readme.find(from).unwrap_or_else(|| panic!("the document has {from:?}"));
    let end = readme[start..].find(to).map_or(readme.len(), |e| start + e);
    readme[start..end].split("```sh\n").skip(1).map(|b| b.split("```").next().unwrap_or_default().to_owned()).collect()
}

#[tokio::test]
async fn the_readme_walkthrough_works_as_written() {
    let app = spawn_app().await;
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let walkthrough = blocks(&readme, "## Walkthrough", "## Adding a document type");
    assert!(walkthrough.len() >= 13, "the walkthrough, its amend, query, respond, withdraw part and its kcat part: {} blocks", walkthrough.len());
    let script = format!("set -euo pipefail\n{}", walkthrough.join("\n"))
        .replace("http://127.0.0.1:8080", &app.address)
        .replace("127.0.0.1:9092", &app.brokers)
        .replace("-t ventanilla.", &format!("-t {}", app.topic_prefix))
        .replace("cargo run --release --", crate::support::VENTANILLA)
        .replace("kcat -b", "timeout 60 kcat -b");
    // On a blocking thread: the gateway answers on this test's runtime meanwhile.
    let (bash_script, data) = (script.clone(), app.data.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash").arg("-c").arg(&bash_script).current_dir(repo()).env("VENTANILLA_DATA_DIR", data).output()
    })
    .await
    .unwrap()
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the walkthrough failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("audit log intact"), "{stdout}");
    // Only the agency topic's read prints headers; only the refused-answers read prints a problem.
    assert!(stdout.contains("key=5AR30714255831-C0781\nheaders=") && stdout.contains("ce_type=org.ventanilla.document"), "kcat read the agency's topic: {stdout}");
    assert!(stdout.contains("\"refused\"") && stdout.contains("\"code\""), "kcat read the refusal of 'released, please': {stdout}");
    // The late answer on the ack topic was told: it changed nothing, and the agency knows.
    assert!(stdout.contains("\"outcome\":\"late\""), "kcat read the late answer's notice: {stdout}");

    // The first declaration is released; the second was queried, answered, amended, withdrawn.
    app.wait_for_state("5AR30714255831-C0781", "released").await;
    let wheat = app.wait_for_state("5AR30698765433-W2207", "withdrawn").await;
    let documents = wheat["documents"].as_array().unwrap();
    let life: Vec<(i64, &str)> = documents.iter().map(|d| (d["version"].as_i64().unwrap(), d["status"].as_str().unwrap())).collect();
    assert_eq!(life, [(1, "superseded"), (2, "withdrawn")], "{wheat:#}");
    let customs = documents[0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-customs").unwrap();
    let history: Vec<&str> = customs["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    for step in ["query", "responded", "amended"] {
        assert!(history.contains(&step), "{step} in {history:?}");
    }
    let amended: Value = serde_json::from_str(&std::fs::read_to_string("/tmp/amended.json").unwrap()).unwrap();
    assert_eq!((amended["version"].as_i64(), amended["amends"].as_str()), (Some(2), documents[0]["documentId"].as_str()));

    // The release-times guide's figures, pasted after the walkthrough (issue 31: its URL once
    // answered 401 without a token, and its fixed period was already past): the released
    // declaration counts.
    let guide = std::fs::read_to_string(repo().join("docs/release-times.md")).unwrap();
    let figures = blocks(&guide, "Pasted after the README's walkthrough", "- **Public figures**");
    assert_eq!(figures.len(), 1, "the guide's figures block");
    let script = format!("set -euo pipefail\n{}", figures[0]).replace("http://127.0.0.1:8080", &app.address);
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg("-c").arg(&script).current_dir(repo()).output())
        .await
        .unwrap()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the figures block failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_str(&stdout).expect("the figures, as JSON");
    assert!(answer["overall"]["count"].as_u64() >= Some(1), "the walkthrough's released declaration counts: {answer:#}");
    app.stop().await;
}

/// "Adding a document type" (the IT teams' guide), pasted as written: a draft-07 schema of a carrier's own with its
/// definitions beside it, a table in a copy of the region file, a standard imported from its
/// OpenAPI document with a table of computed facts, `ventanilla validate --as`, and a
/// gateway serving that region (its embedded broker) taking the new type. Only the gateway's port
/// (a free one instead of 8081), its broker's (none fixed instead of 9093) and the binary are
/// changed.
#[tokio::test]
async fn the_it_teams_guide_adding_a_document_type_works_as_written() {
    let guide = std::fs::read_to_string(repo().join("docs/it-teams.md")).unwrap();
    let blocks = blocks(&guide, "## Adding a document type", "\n## ");
    assert!(blocks.len() >= 4, "{} blocks", blocks.len());
    let port = crate::helpers::free_port();
    // The gateway the section starts in the background is stopped however the script ends.
    let script = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}", blocks.join("\n"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{port}"))
        .replace("--embedded-kafka-port 9093", "--embedded-kafka-port 0")
        .replace("cargo run --release --", crate::support::VENTANILLA);
    let bash_script = script.clone();
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("bash").arg("-c").arg(&bash_script).current_dir(repo()).output())
        .await
        .unwrap()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the section failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("/bill-of-lading.json: valid"), "{stdout}");
    assert!(stdout.contains("ocean-bill-of-lading/valid.json: valid"), "the standard imported from OpenAPI, its facts computed: {stdout}");
    assert!(stdout.contains("\"billOfLading-parties\""), "its definitions are an /openapi.json component: {stdout}");
    let receipt: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["documentId"].is_string())
        .unwrap_or_else(|| panic!("a receipt in {stdout}"));
    assert_eq!(receipt["documentType"], "billOfLading", "{receipt:#}");
    let agencies: Vec<&str> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["agency"].as_str().unwrap()).collect();
    assert_eq!(agencies, ["br-customs", "br-sanitary"], "{receipt:#}");
}
