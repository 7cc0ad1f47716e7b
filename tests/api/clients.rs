//! Clients generated from `/openapi.json` as the gateway serves it (issue 31: three widely used
//! generators failed on it): openapi-python-client, openapi-typescript and @hey-api/openapi-ts,
//! pinned and installed by the test command (`scripts/clients.sh`), generate without a warning;
//! every valid example type-checks with `tsc --strict` against the generated types; and the
//! generated Python client submits, amends and reads a consignment against a real gateway.

use serde_json::Value;

use crate::helpers::{repo, spawn_app};

#[tokio::test]
async fn generated_clients_build_and_the_python_one_submits_amends_and_reads_a_consignment() {
    std::env::var("VENTANILLA_TEST_CLIENT_TOOLS")
        .expect("VENTANILLA_TEST_CLIENT_TOOLS is not set: run the suite with scripts/test.sh, which installs the generators");
    let app = spawn_app().await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, r.bytes().await.unwrap()).unwrap();
    let out = dir.path().join("clients");

    let (spec_arg, out_arg) = (spec.clone(), out.clone());
    let generated = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(repo().join("scripts/clients.sh"))
            .arg("generate")
            .args([&spec_arg, &out_arg])
            .arg(repo().join("examples"))
            .current_dir(repo())
            .output()
            .expect("bash runs")
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&generated.stderr);
    assert!(generated.status.success(), "the generators refused /openapi.json:\n{said}");
    assert!(said.contains("tsc") && said.contains("accepts all"), "the examples were type-checked: {said}");

    let (client_dir, address) = (out.join("python"), app.address.clone());
    let example = repo().join("examples/customsDeclaration/valid/transit-computers-road-BR-AR.json");
    let ran = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(repo().join("tests/fixtures/python_client.py"))
            .arg(&client_dir)
            .arg(&address)
            .arg(&example)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "the generated Python client:\n{stdout}\n{}", String::from_utf8_lossy(&ran.stderr));
    let steps: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON line per step")).collect();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["submitDocument", "amendDocument", "consignment"]);
    let (submitted, amended) = (&steps[0], &steps[1]);
    assert_eq!((amended["amends"].as_str(), amended["version"].as_i64()), (submitted["documentId"].as_str(), Some(2)));
    // What the client read is what the gateway holds.
    let ucr = submitted["ucr"].as_str().unwrap();
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-trader")).await.json().await.unwrap();
    let latest = view["documents"].as_array().unwrap().iter().find(|d| d["version"] == 2).expect("version 2 in the view");
    assert_eq!(latest["documentId"], amended["documentId"]);
    assert_eq!(steps[2]["documents"].as_array().unwrap().iter().filter(|d| **d == latest["documentId"]).count(), 1);
    app.stop().await;
}
