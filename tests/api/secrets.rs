//! Secrets stay secret: the real binary, logging at debug level, with TLS, a participant whose
//! token is a secret, a Kafka SASL password in its environment, and requests with right and
//! wrong tokens. Neither the logs nor any answer (problems, receipts, consignment views)
//! contain a token, the private key or the password.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair};
use serde_json::Value;

use crate::helpers::{example, repo, test_brokers};

const TOKEN: &str = "tok-7f3a9c-trader-SECRET";
const WRONG_TOKEN: &str = "tok-wrong-guess-SECRET";
const KAFKA_PASSWORD: &str = "kafka-pw-SECRET-91";

#[tokio::test]
async fn no_token_key_or_password_appears_in_logs_or_answers() {
    // A configuration with one more trader whose token is a real secret.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    let mut region = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    region = region.replace("schemas_dir = \"../schemas\"", &format!("schemas_dir = {:?}", repo().join("schemas").display().to_string()));
    region.push_str(&format!(
        "\n[[participants]]\nid = \"acme-broker\"\nrole = \"trader\"\ntoken_sha256 = \"{}\"\nacts_for = [\"AR-CUIT:30714255831\"]\n",
        ventanilla::digest::sha256_hex(TOKEN.as_bytes())
    ));
    std::fs::write(config.join("ventanilla.toml"), region).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    std::fs::write(dir.path().join("tls.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key_pem).unwrap();

    let mut child = crate::support::cli()
        .args(["serve", "--bind", "127.0.0.1:0", "--topic-prefix", &format!("x{}.", uuid::Uuid::now_v7().simple())])
        .arg("--data-dir").arg(dir.path().join("data"))
        .arg("--config").arg(&config)
        .arg("--kafka-brokers").arg(test_brokers())
        .env("VENTANILLA_TLS_CERT", dir.path().join("tls.pem"))
        .env("VENTANILLA_TLS_KEY", dir.path().join("tls.key"))
        .env("VENTANILLA_KAFKA_SASL_PASSWORD", KAFKA_PASSWORD)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| { let _ = tx.send(l); }));
    let mut logs = Vec::new();
    let address = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the gateway starts");
        logs.push(line.clone());
        if let Some(i) = line.find("listening on https://") {
            break line[i + "listening on ".len()..].split_whitespace().next().unwrap().replace("127.0.0.1", "localhost");
        }
    };
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();

    let mut answers = Vec::new();
    let r = client.post(format!("{address}/v1/documents")).bearer_auth(TOKEN)
        .json(&example("customsDeclaration/valid/export-beef-road-AR-BR.json")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    answers.push(receipt.to_string());
    let ucr = receipt["ucr"].as_str().unwrap();
    for token in [TOKEN, WRONG_TOKEN] {
        let r = client.get(format!("{address}/v1/consignments/{ucr}")).bearer_auth(token).send().await.unwrap();
        answers.push(r.text().await.unwrap());
        let r = client.post(format!("{address}/v1/documents")).bearer_auth(token).body("{").header("Content-Type", "application/json").send().await.unwrap();
        answers.push(r.text().await.unwrap());
    }
    let r = client.post(format!("{address}/v1/documents")).header("Authorization", format!("Basic {WRONG_TOKEN}")).send().await.unwrap();
    answers.push(r.text().await.unwrap());
    assert!(answers[1].contains("\"state\""), "the owner reads its consignment: {}", answers[1]);

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    logs.extend(rx.try_iter());
    assert!(logs.len() > 10, "debug logging is on ({} lines)", logs.len());

    let key_line = key_pem.lines().nth(1).unwrap();
    for (what, secret) in [("token", TOKEN), ("wrong token", WRONG_TOKEN), ("Kafka password", KAFKA_PASSWORD), ("TLS key", key_line)] {
        assert!(!logs.iter().any(|l| l.contains(secret)), "the {what} appears in the logs");
        assert!(!answers.iter().any(|a| a.contains(secret)), "the {what} appears in an answer");
    }
    assert!(!answers.iter().any(|a| a.contains(&ventanilla::digest::sha256_hex(TOKEN.as_bytes()))), "no token hash in answers");
}

/// Issue 31, item 8: `serve --data-dir ./sim` inside a work tree left the receipt-signing
/// private key untracked and not ignored, one `git add .` from a commit. The real binary,
/// started in a fresh git repository: git, asked, sees nothing of the keys or the store.
#[tokio::test]
async fn keys_and_store_made_inside_a_work_tree_are_ignored_by_git() {
    let tree = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(tree.path()).output().expect("git runs");
    assert!(git(&["init", "-q"]).status.success());
    let data = tree.path().join("sim");
    let prefix = format!("gi{}.", uuid::Uuid::now_v7().simple());
    let (mut child, _address, _log) = crate::helpers::spawn_binary(&data, &prefix, &crate::helpers::test_brokers());
    let _ = (child.kill(), child.wait());
    let keys = std::fs::read_dir(data.join("receipt-keys")).unwrap();
    assert!(keys.filter_map(Result::ok).any(|e| e.path().extension().is_some_and(|x| x == "pk8")), "a key was made");
    assert!(data.join("ventanilla.db").exists(), "the store was made");
    let status = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(String::from_utf8_lossy(&status.stdout), "", "git sees nothing to add");
}
