//! Signed receipts: every receipt carries a JWS (EdDSA) over its members and the body's hash;
//! the gateway's keys are at `/.well-known/jwks.json`; an independent JOSE library (PyJWT, in
//! Python) verifies it, and `ventanilla receipt verify` checks one offline, refusing a changed one.

use serde_json::Value;

use crate::helpers::{example, repo, spawn_app_with};

/// PyJWT verifies `receipt`'s signature with the JWKS and prints the signed payload.
const VERIFY_WITH_PYJWT: &str = r#"
import json, sys, jwt
receipt, jwks = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
token = receipt.pop("signature")
kid = jwt.get_unverified_header(token)["kid"]
key = jwt.PyJWK([k for k in jwks["keys"] if k["kid"] == kid][0]).key
signed = json.loads(jwt.api_jws.PyJWS().decode_complete(token, key=key, algorithms=["EdDSA"])["payload"])
assert signed == receipt, "the receipt's members are the ones signed"
print(json.dumps(signed))
"#;

#[tokio::test]
async fn receipts_are_signed_and_verified_by_an_independent_library_and_offline() {
    let app = spawn_app_with(None).await;
    let body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    let receipt: Value = app.submit(&body).await.json().await.unwrap();
    assert!(receipt["signature"].as_str().is_some_and(|s| s.split('.').count() == 3), "{receipt:#}");
    assert_eq!(receipt["bodySha256"].as_str().map(str::len), Some(64));
    // A resend answers the first receipt, signature and all.
    let again: Value = app.submit(&body).await.json().await.unwrap();
    assert_eq!(again, receipt);
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");

    let dir = tempfile::tempdir().unwrap();
    let (receipt_file, jwks_file) = (dir.path().join("receipt.json"), dir.path().join("jwks.json"));
    std::fs::write(&receipt_file, receipt.to_string()).unwrap();
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let python = std::process::Command::new("python3").arg("-c").arg(VERIFY_WITH_PYJWT).arg(&receipt_file).arg(&jwks_file).output().unwrap();
    assert!(python.status.success(), "PyJWT: {}", String::from_utf8_lossy(&python.stderr));
    let signed: Value = serde_json::from_slice(&python.stdout).unwrap();
    assert_eq!(signed["documentId"], receipt["documentId"]);

    // Offline, with the saved JWKS or the keys directory: 0; changed: 1.
    let verify = |file: &std::path::Path, keys: &[&str]| {
        crate::support::cli()
            .args(["receipt", "verify"])
            .arg(file)
            .args(keys)
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let jwks_arg = jwks_file.display().to_string();
    let out = verify(&receipt_file, &["--jwks", &jwks_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("receipt verified"));
    let keys_dir = app.data.path().join("receipt-keys").display().to_string();
    assert_eq!(verify(&receipt_file, &["--keys-dir", &keys_dir]).status.code(), Some(0));
    let mut changed = receipt.clone();
    changed["consignmentState"] = "released".into();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(&changed_file, changed.to_string()).unwrap();
    let out = verify(&changed_file, &["--jwks", &jwks_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("differ from what was signed"));
    let python = std::process::Command::new("python3").arg("-c").arg(VERIFY_WITH_PYJWT).arg(&changed_file).arg(&jwks_file).output().unwrap();
    assert!(!python.status.success(), "PyJWT also refuses the changed receipt");
    app.stop().await;
}

/// Issue 26, item 12: `receipt verify` is a check, and a check never writes: a keys directory
/// that is empty or missing is an error saying where the keys were expected (exit 2), and no
/// key appears there for gateways to sign with later. With `--document` it checks the file's
/// SHA-256, in the gateway's canonical form, against the signed `bodySha256`.
#[tokio::test]
async fn receipt_verify_only_reads_keys_and_checks_the_document_it_is_for() {
    let app = spawn_app_with(None).await;
    let path = repo().join("examples/customsDeclaration/valid/import-cars-sea-BR-UY.json");
    let receipt: Value = app.submit(&serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()).await.json().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receipt_file = dir.path().join("receipt.json");
    std::fs::write(&receipt_file, receipt.to_string()).unwrap();
    let verify = |args: &[&std::ffi::OsStr]| {
        crate::support::cli().args(["receipt", "verify"]).arg(&receipt_file).args(args).output().unwrap()
    };

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = dir.path().join("missing");
    for keys in [&empty, &missing] {
        let out = verify(&["--keys-dir".as_ref(), keys.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("no receipt keys in {}", keys.display())) && stderr.contains("--jwks"), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "no key was made in the empty directory");
    assert!(!missing.exists(), "nor the missing one made");

    // The document as submitted, as the example file is formatted (indented, its members in
    // their own order): its hash is the receipt's. Another document's is not.
    let keys_dir = app.data.path().join("receipt-keys");
    let keys = keys_dir.as_os_str();
    let out = verify(&["--keys-dir".as_ref(), keys, "--document".as_ref(), path.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("body sha256 {}, which is that of {}", receipt["bodySha256"].as_str().unwrap(), path.display())), "{stdout}");
    let other = repo().join("examples/customsDeclaration/valid/export-beef-road-AR-BR.json");
    let out = verify(&["--keys-dir".as_ref(), keys, "--document".as_ref(), other.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("signed, but for another document") && stderr.contains(receipt["bodySha256"].as_str().unwrap()), "{stderr}");

    // Issue 31: the keys straight from the URL the gateway serves them at, as traders have it.
    let url = format!("{}/.well-known/jwks.json", app.address);
    let (file, document) = (receipt_file.clone(), path.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::support::cli().args(["receipt", "verify"]).arg(&file).args(["--jwks", &url, "--document"]).arg(&document).output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("receipt verified"));
    // Keys that cannot be had are "could not check" (2), not "changed" (1); and plain http from
    // another machine is refused, as anyone on the way could swap the keys.
    let out = crate::support::run_cli(["receipt", "verify", receipt_file.to_str().unwrap(), "--jwks", "http://127.0.0.1:1/.well-known/jwks.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot fetch the keys from http://127.0.0.1:1/"), "{stderr}");
    let out = crate::support::run_cli(["receipt", "verify", receipt_file.to_str().unwrap(), "--jwks", "http://gateway.example/.well-known/jwks.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("fetch the keys over https"), "{stderr}");
}
