//! `spawn_app` and the helpers every test shares.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;
use serde_json::Value;
use ventanilla::config::{ServeOptions, Settings};
use ventanilla::startup::Application;

pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub topic_prefix: String,
    pub client: reqwest::Client,
    /// The store's directory; shared with a gateway started again on it.
    pub data: Arc<tempfile::TempDir>,
    server: ventanilla::startup::StopHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub use crate::support::{cli, eventually, repo, run_cli};

/// A loopback port free a moment ago, for a process or setting that must be given a number.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// The repository's region file (`config/ventanilla.toml`), as parsed.
pub fn shipped_region() -> ventanilla::config::RegionConfig {
    toml::from_str(&std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap()).unwrap()
}

/// `from`'s files and folders copied into `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The schemas under `dir`, with the shipped region's document types.
pub fn registry_of(dir: &std::path::Path) -> Result<ventanilla::schema::SchemaRegistry, ventanilla::schema::SchemaError> {
    ventanilla::schema::SchemaRegistry::of_region(dir, &shipped_region())
}

/// The broker the test command started. Without it the suite cannot test what it claims to.
pub fn test_brokers() -> String {
    std::env::var("VENTANILLA_TEST_BROKERS").unwrap_or_else(|_| {
        panic!("VENTANILLA_TEST_BROKERS is not set: run the suite with scripts/test.sh, which starts an Apache Kafka broker")
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
    let data = Arc::new(tempfile::tempdir().expect("temp dir"));
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    spawn_app_on(data, prefix, brokers, adjust).await
}

/// The repository's settings for a gateway on a free port, over the store in `data` and the
/// topics of `prefix`, with a consumer group of that prefix.
pub fn settings_for(data: &tempfile::TempDir, prefix: &str, brokers: Option<String>) -> Settings {
    ventanilla::telemetry::init_for_tests();
    let options = ServeOptions {
        kafka_brokers: brokers,
        topic_prefix: Some(prefix.to_owned()),
        ..ServeOptions::local("127.0.0.1:0".parse().unwrap(), data.path().to_owned())
    };
    let mut settings = Settings::load(repo().join("config"), options).expect("the repository's configuration loads");
    settings.region.kafka.consumer_group = format!("{prefix}gateway");
    settings
}

/// A gateway on a free port over the store in `data` and the topics of `prefix` (those of a
/// gateway stopped before: a restart).
pub async fn spawn_app_on(
    data: Arc<tempfile::TempDir>,
    prefix: String,
    brokers: Option<String>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = settings_for(&data, &prefix, brokers);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("the gateway starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let brokers = app.brokers.clone();
    let server = app.stop_handle();
    let running = tokio::spawn(app.run_until_stopped());
    // A pooled connection idle for longer than the gateway's keep-alive (5 s) may be closed by
    // the gateway just as the client reuses it (an incomplete message, not the gateway's
    // answer): the client drops idle connections well before.
    let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().expect("an HTTP client");
    TestApp { address, brokers, topic_prefix: prefix, client, data, server, running }
}

impl TestApp {
    /// Stops the gateway gracefully (as on SIGTERM) and waits until it has.
    pub async fn stop(self) {
        self.server.stop().await;
        let _ = self.running.await;
    }

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

    /// `POST /v1/documents:batch` as NDJSON, one document per line, by `token`.
    pub async fn submit_ndjson(&self, token: &str, documents: impl IntoIterator<Item = Value>) -> reqwest::Response {
        let lines: Vec<String> = documents.into_iter().map(|d| d.to_string()).collect();
        self.client
            .post(format!("{}/v1/documents:batch", self.address))
            .bearer_auth(token)
            .header("Content-Type", "application/x-ndjson")
            .body(lines.join("\n"))
            .send()
            .await
            .expect("request sent")
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
        eventually(Duration::from_secs(30), &format!("consignment {ucr} to be {state}"), || async {
            let view: Value = self.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
            (view["state"] == state).then_some(view)
        })
        .await
    }
}

/// A test's consumer, never dropped: rust-rdkafka 0.39 closes a consumer on drop by asking
/// librdkafka for its rebalance protocol, which can block forever after the broker it talked
/// to was killed and restarted (seen in the outage tests). The test process ends soon after;
/// leaking the client is the lesser harm.
pub struct TestConsumer(std::mem::ManuallyDrop<StreamConsumer>);

impl std::ops::Deref for TestConsumer {
    type Target = StreamConsumer;
    fn deref(&self) -> &StreamConsumer {
        &self.0
    }
}

/// A consumer of every partition of `topics`, from the beginning. Partitions are assigned, not
/// subscribed: no consumer group to join.
pub fn consumer(brokers: &str, topics: &[&str]) -> TestConsumer {
    use rdkafka::{Offset, TopicPartitionList};
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = c.fetch_metadata(Some(topic), Duration::from_secs(30)).expect("topic metadata");
        let partitions = metadata.topics().iter().map(|t| t.partitions().len()).sum::<usize>();
        assert!(partitions > 0, "topic {topic} has partitions");
        for p in 0..partitions as i32 {
            assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assignable");
        }
    }
    c.assign(&assignment).expect("assign");
    TestConsumer(std::mem::ManuallyDrop::new(c))
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

/// A raw connection that sends `POST path` with `token`, announces a body of `announced` bytes
/// and sends only `start` of it: a write held open until the connection is dropped.
pub async fn held_write(address: &str, path: &str, token: &str, announced: usize, start: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = address.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {announced}\r\n\r\n{start}"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// An Apache Kafka cluster of a test's own (`scripts/kafka.sh`), to kill and resume nodes at
/// will: outage, failover and security tests. Its storage survives a kill, like a real broker's.
/// Its directory goes under `VENTANILLA_TEST_KAFKA_DIR`, so the test command can stop whatever a
/// failed test left running.
pub struct OwnCluster {
    pub address: String,
    pub dir: tempfile::TempDir,
    nodes: usize,
}

/// Runs `scripts/kafka.sh ARGS` and returns its standard output; panics with its errors.
pub async fn kafka_script(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(repo().join("scripts/kafka.sh"))
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("scripts/kafka.sh runs");
        assert!(out.status.success(), "scripts/kafka.sh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8")
    })
    .await
    .expect("the script's thread")
}

impl OwnCluster {
    /// One broker, plaintext.
    pub async fn start() -> OwnCluster {
        OwnCluster::start_with(1, &[]).await
    }

    /// `nodes` combined broker and controller nodes (1 or 3), with `scripts/kafka.sh start`'s
    /// further `options` (`--sasl`, `--user NAME=PASSWORD`).
    pub async fn start_with(nodes: usize, options: &[&str]) -> OwnCluster {
        let dir = match std::env::var_os("VENTANILLA_TEST_KAFKA_DIR") {
            Some(parent) => {
                std::fs::create_dir_all(&parent).expect("the clusters' folder");
                tempfile::tempdir_in(parent)
            }
            None => tempfile::tempdir(),
        }
        .expect("a cluster directory");
        let mut args = vec!["start".to_owned(), dir.path().display().to_string(), "--nodes".into(), nodes.to_string()];
        args.extend(options.iter().map(|o| o.to_string()));
        let address = kafka_script(args).await.trim().to_owned();
        OwnCluster { address, dir, nodes }
    }

    /// SIGKILLs node `node` (1-based): an outage, not a shutdown.
    pub async fn kill(&self, node: usize) {
        kafka_script(vec!["kill".into(), self.dir.path().display().to_string(), node.to_string()]).await;
    }

    /// Starts nodes again on their storage and ports, and waits until each serves.
    pub async fn resume(&self, nodes: &[usize]) {
        let mut args = vec!["resume".to_owned(), self.dir.path().display().to_string()];
        args.extend(nodes.iter().map(|n| n.to_string()));
        kafka_script(args).await;
    }

    /// Every node SIGKILLed.
    pub async fn kill_all(&self) {
        for n in 1..=self.nodes {
            self.kill(n).await;
        }
    }

    /// Every node started again.
    pub async fn resume_all(&self) {
        self.resume(&(1..=self.nodes).collect::<Vec<_>>()).await;
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("scripts/kafka.sh"))
            .args(["stop", &self.dir.path().display().to_string()])
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// Runs the real `ventanilla serve` binary on a free port; returns the process, its base URL
/// and its log lines (as they come).
pub fn spawn_binary(
    data_dir: &std::path::Path,
    prefix: &str,
    brokers: &str,
) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    spawn_binary_with(&["--data-dir".as_ref(), data_dir.as_os_str()], prefix, brokers)
}

/// [`spawn_binary`] on the store `url` (`--store`), as gateways sharing one database run.
pub fn spawn_binary_on_store(url: &str, prefix: &str, brokers: &str) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    spawn_binary_with(&["--store".as_ref(), url.as_ref()], prefix, brokers)
}

fn spawn_binary_with(
    store: &[&std::ffi::OsStr],
    prefix: &str,
    brokers: &str,
) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = cli()
        .args(["serve", "--bind", "127.0.0.1:0", "--topic-prefix", prefix])
        .args(store)
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

/// A document id that got a 202, and the agency topics its receipt named.
pub type Accepted = (String, Vec<String>);

/// What a stream of submissions met.
#[derive(Debug, Default, Clone)]
pub struct StreamLog {
    /// Documents answered 202, with their topics.
    pub accepted: Vec<Accepted>,
    /// Answers other than 202 (status and body).
    pub refused: Vec<(u16, String)>,
    /// Requests that could not connect (the gateway was gone or not listening).
    pub unconnected: usize,
    /// Requests that connected but got no complete answer.
    pub broken: Vec<String>,
}

/// Lets a submission stream run a second and a half, and on until `at_least` documents were
/// accepted (30 s at most): on a machine busy with the rest of the suite the first answers can
/// be slow, and a test of what happens to documents flowing must have some flowing.
pub async fn until_accepted(log: &std::sync::Arc<std::sync::Mutex<StreamLog>>, at_least: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    while log.lock().unwrap().accepted.len() < at_least && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Submits commercial invoices with fresh UCRs from `workers` concurrent clients until `stop`
/// turns true, or until the gateway stops answering when `until_gone`.
pub fn submission_stream(
    address: &str,
    label: &str,
    workers: usize,
    until_gone: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<std::sync::Mutex<StreamLog>>, Vec<tokio::task::JoinHandle<()>>) {
    use std::sync::atomic::Ordering;
    let log: Arc<std::sync::Mutex<StreamLog>> = Arc::default();
    let template = example("commercialInvoice/valid/beef-road-AR-BR.json");
    // UCRs are digits, upper-case letters and hyphens.
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let handles = (0..workers)
        .map(|worker| {
            let (log, address, template, stop) = (log.clone(), address.to_owned(), template.clone(), stop.clone());
            let ucr_prefix = format!("{label}-{}-{worker}", &run[run.len() - 8..]);
            tokio::spawn(async move {
                // One connection per request: a request either reaches the gateway or fails to
                // connect, never waits on a pooled connection the gateway is closing.
                let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let mut body = template.clone();
                    body["ucr"] = serde_json::json!(format!("{ucr_prefix}-{i:06}"));
                    let sent = client.post(format!("{address}/v1/documents")).bearer_auth("demo-trader").json(&body).send().await;
                    let r = match sent {
                        Ok(r) => r,
                        Err(e) => {
                            {
                                let mut l = log.lock().unwrap();
                                if e.is_connect() { l.unconnected += 1 } else { l.broken.push(e.to_string()) }
                            }
                            if until_gone { break }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let status = r.status().as_u16();
                    match r.text().await {
                        Ok(text) if status == 202 => {
                            let receipt: Value = serde_json::from_str(&text).expect("a receipt");
                            let topics = receipt["deliveries"].as_array().unwrap().iter()
                                .map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
                            log.lock().unwrap().accepted.push((receipt["documentId"].as_str().unwrap().to_owned(), topics));
                        }
                        Ok(text) => log.lock().unwrap().refused.push((status, text)),
                        Err(e) => {
                            log.lock().unwrap().broken.push(e.to_string());
                            if until_gone { break }
                        }
                    }
                }
            })
        })
        .collect();
    (log, handles)
}

/// Reads the agency topics until every accepted document has arrived on every topic its
/// receipt named; panics naming what is missing after `within`. Returns (deliveries,
/// duplicate records); every record read must carry `ce_id`.
pub async fn await_deliveries(brokers: &str, accepted: &[Accepted], within: Duration) -> (usize, usize) {
    use rdkafka::message::{Headers, Message};
    use std::collections::{HashMap, HashSet};
    let mut expected: HashSet<(String, String)> =
        accepted.iter().flat_map(|(d, ts)| ts.iter().map(move |t| (t.clone(), d.clone()))).collect();
    let total = expected.len();
    let wanted = expected.clone();
    let topics: HashSet<String> = expected.iter().map(|(t, _)| t.clone()).collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let c = consumer(brokers, &topic_refs);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while !expected.is_empty() {
        let m = match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(m) => m.expect("consumer"),
            Err(_) => panic!("{} of {total} deliveries never arrived, e.g. {:?}", expected.len(), expected.iter().next()),
        };
        let ce_id = m.headers().and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned()).expect("every record carries ce_id");
        let key = (m.topic().to_owned(), ce_id);
        expected.remove(&key);
        if wanted.contains(&key) {
            *seen.entry(key).or_default() += 1;
        }
    }
    (total, seen.values().map(|n| n - 1).sum())
}

/// A fresh database on the PostgreSQL server the test command started
/// (`VENTANILLA_TEST_POSTGRES`, an administrator's URL); its URL.
pub async fn postgres_database() -> String {
    let admin = std::env::var("VENTANILLA_TEST_POSTGRES")
        .unwrap_or_else(|_| panic!("VENTANILLA_TEST_POSTGRES is not set: run the suite with scripts/test.sh, which starts PostgreSQL"));
    let config: tokio_postgres::Config = admin.parse().expect("an administrator's URL");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("the test PostgreSQL server answers");
    tokio::spawn(connection);
    let name = format!("t{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("a database");
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// A calendar month whose public release-time figures are published whatever today is (the
/// one two months before now's: ended, and settled longer than the region's 7 days): its first
/// instant, its end, and its name (`2026-10`).
pub fn published_month() -> (i64, i64, String) {
    use ventanilla::clock::{month_start, next_month, now_millis, year_month};
    let (y, m) = year_month(now_millis());
    let (y, m) = if m <= 2 { (y - 1, m + 10) } else { (y, m - 2) };
    let start = month_start(y, m);
    (start, next_month(start), format!("{y:04}-{m:02}"))
}

/// `ventanilla simulate` into the store in `dir`: `consignments` lodged over `[from, to)`; the
/// run's summary.
pub async fn simulate_into(dir: &std::path::Path, consignments: usize, seed: u64, from: i64, to: i64) -> Value {
    let days = ((to - from) / 86_400_000).to_string();
    let end = ventanilla::clock::rfc3339(to);
    simulate(dir, &["--consignments", &consignments.to_string(), "--seed", &seed.to_string(), "--days", &days, "--end", &end]).await
}

/// `ventanilla simulate ARGS --data-dir DIR`, from the repository's root; the run's summary.
pub async fn simulate(dir: &std::path::Path, args: &[&str]) -> Value {
    let args: Vec<String> = std::iter::once("simulate").chain(args.iter().copied()).map(str::to_owned).collect();
    let out = ventanilla_on(dir, args).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the run's summary, as JSON")
}

/// The operations binary, `ventanilla ARGS --data-dir DIR`, run from the repository's root on a
/// blocking thread (warnings only in its log); what it printed and its exit status.
pub async fn ventanilla_on(dir: &std::path::Path, mut args: Vec<String>) -> std::process::Output {
    args.extend(["--data-dir".to_owned(), dir.display().to_string()]);
    ventanilla(args).await
}

/// [`run_cli`] on a blocking thread, so the gateway a test runs keeps answering meanwhile.
pub async fn ventanilla(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || run_cli(&args)).await.unwrap()
}
