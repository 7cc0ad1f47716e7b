//! `spawn_app` and the helpers every test shares.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;
use serde_json::Value;
use ventanilla::config::Settings;
use ventanilla::startup::Application;

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub topic_prefix: String,
    pub client: reqwest::Client,
    pub _data: tempfile::TempDir,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The broker the test command started. Without it the suite cannot test what it claims to.
pub fn test_brokers() -> String {
    std::env::var("VENTANILLA_TEST_BROKERS").unwrap_or_else(|_| {
        panic!("VENTANILLA_TEST_BROKERS is not set: run the suite with scripts/test.sh, which starts a Tansu broker")
    })
}

/// A gateway on a free port, against the test broker.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Some(test_brokers())).await
}

/// A gateway on a free port; `None` uses the embedded mock cluster.
pub async fn spawn_app_with(brokers: Option<String>) -> TestApp {
    spawn_app_configured(brokers, |_| {}).await
}

/// A gateway on a free port, with settings changed by `adjust` before it starts.
pub async fn spawn_app_configured(brokers: Option<String>, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    ventanilla::telemetry::init();
    let data = tempfile::tempdir().expect("temp dir");
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let mut settings = Settings::load(
        repo().join("config"),
        "127.0.0.1:0".parse().unwrap(),
        data.path().to_owned(),
        brokers,
        Some(prefix.clone()),
    )
    .expect("the repository's configuration loads");
    settings.region.kafka.consumer_group = format!("{prefix}gateway");
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the gateway starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let brokers = app.brokers.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { address, brokers, topic_prefix: prefix, client: reqwest::Client::new(), _data: data }
}

impl TestApp {
    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.topic_prefix, name)
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.address))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn submit(&self, body: &Value) -> reqwest::Response {
        self.post_json("/v1/documents", Some("demo-trader"), &body.to_string()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    /// Polls the consignment (as the operator) until `state`, or fails after 30 s.
    pub async fn wait_for_state(&self, ucr: &str, state: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..300 {
            let r = self.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await;
            last = r.json().await.unwrap();
            if last["state"] == state {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("consignment {ucr} never reached {state}; last view: {last:#}");
    }
}

/// A consumer of `topics` from the beginning, in a fresh group.
pub fn consumer(brokers: &str, topics: &[&str]) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(topics).expect("subscribe");
    c
}

/// Reads an example file as JSON.
pub fn example(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("examples").join(path)).expect("example exists");
    serde_json::from_str(&text).expect("example is JSON")
}

/// Asserts a problem+json answer with `status` and `code`, and returns its body.
pub async fn assert_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ctype.as_deref(), Some("application/problem+json"));
    let body: Value = r.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body:#}");
    assert!(body["type"].as_str().unwrap().ends_with(code));
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body:#}");
    body
}

/// A Tansu broker of a test's own, to stop and start at will (outage tests). Its SQLite
/// storage survives a restart, like a real broker's log.
pub struct OwnBroker {
    pub address: String,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    pub async fn start() -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut b = OwnBroker { address: format!("127.0.0.1:{port}"), port, dir: tempfile::tempdir().unwrap(), child: None };
        b.resume().await;
        b
    }

    /// Starts the broker process (again) on the same port and storage, and waits for it.
    pub async fn resume(&mut self) {
        let tansu = std::env::var("VENTANILLA_TEST_TANSU")
            .unwrap_or_else(|_| panic!("VENTANILLA_TEST_TANSU is not set: run the suite with scripts/test.sh"));
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = std::process::Command::new(tansu)
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "sqlite://tansu.db"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&self.address).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tansu did not listen on {}", self.address);
    }

    /// Kills the broker process (SIGKILL): an outage, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the real `ventanilla serve` binary on a free port; returns the process, its base URL
/// and its log lines (as they come).
pub fn spawn_binary(
    data_dir: &std::path::Path,
    prefix: &str,
    brokers: &str,
) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ventanilla"))
        .args(["serve", "--bind", "127.0.0.1:0", "--topic-prefix", prefix])
        .arg("--data-dir").arg(data_dir)
        .arg("--config").arg(repo().join("config"))
        .arg("--kafka-brokers").arg(brokers)
        .env("RUST_LOG", "info,rdkafka=off,librdkafka=off")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let address = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the gateway logs its address");
        if let Some(i) = line.find("listening on http://") {
            let rest = &line[i + "listening on ".len()..];
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (child, address, rx)
}
