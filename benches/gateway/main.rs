//! The gateway benchmark: `cargo bench --bench gateway` (options after `--`, see `Options`).
//!
//! It starts what it needs: the release `ventanilla` binary as a separate process on a fresh
//! store, against the embedded broker and against an Apache Kafka broker process
//! (`scripts/kafka.sh`), and measures, with every
//! guarantee on (a 202 only after the SQLite commit, deliveries through the outbox):
//!
//! - single-document submissions, closed loop: documents/s (the maximum);
//! - the same, open loop at half that rate: latency p50/p99/p99.9, measured from each
//!   request's scheduled time, so a slow server cannot hide its queueing;
//! - batch submissions: documents/s;
//! - the outbox drain: how long until the broker confirmed every delivery;
//! - the ceilings, in the same run: rdkafka's producer alone with the gateway's own producer
//!   settings, the same kind of broker (a fresh Apache Kafka broker; the embedded mock cluster,
//!   started in this process), same payloads and headers, one record per delivery; and an
//!   HTTP server that only reads and parses the body (the same bounded JSON parser);
//! - each figure against its ceiling, the gateway's peak resident memory, and the CPU each
//!   side used, so the load generator's share is known.
//!
//! The documents are the valid examples, varied so no two are identical: a unique UCR, and the
//! goods list grown to 1..50 items; each is checked against the registry before use.
//!
//! `--compare-stores` runs issue 27's comparison instead, on Apache Kafka (`compare_stores`):
//! SQLite and PostgreSQL with one and two gateways and the ratios between them, what one document
//! costs each store, 10,000 e-commerce parcels in one NDJSON batch on each, and the reference
//! Java service (`../shared/peers/java-vertx`) against the gateway on the same document.
//!
//! `--allocations N` counts what one document costs the allocator instead (`allocations`):
//! the gateway under heaptrack, per part of the program and per function of the gateway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

mod allocations;
mod fairness;
mod indicators;
mod peer;
mod risk;
mod stores;
mod throughput;

use allocations::allocations;
use fairness::fairness;
use indicators::indicators;
use peer::peer_comparison;
use risk::{risk_cost, risk_training};
use stores::compare_stores;
use throughput::{parse_only_ceiling, parse_only_server, run_broker};

/// Command-line options (after `cargo bench --bench gateway --`).
struct Options {
    /// Seconds per measured phase.
    seconds: u64,
    /// In-flight requests of the closed loops.
    concurrency: usize,
    /// Documents per batch.
    batch_size: usize,
    /// Which brokers: `embedded`, `kafka` (Apache Kafka, one broker process), or both.
    brokers: Vec<String>,
    /// The gateway's store: `sqlite` (the embedded default) or `postgres` (a durable PostgreSQL
    /// cluster started by `scripts/postgres.sh`, a fresh database per gateway).
    store: String,
    /// Documents prepared (cycled through with fresh UCRs when the run needs more).
    corpus: usize,
    /// A soak run: this many seconds of single submissions, sampling resident memory.
    soak: Option<u64>,
    /// Documents/s of the soak run (default: half the maximum measured).
    soak_rate: Option<f64>,
    /// The fairness run instead of the broker runs: the honest participant's p99 quiet and under
    /// each attack of issue 14, and memory with 100 stalled streams over 1 MB documents.
    fairness: bool,
    /// The store comparison instead of the broker runs: SQLite with one gateway, PostgreSQL
    /// with one and with two, on Apache Kafka, the same documents; the cost per document, a
    /// batch of 10,000 parcels on each store, and the Java peer (`compare_stores`).
    compare_stores: bool,
    /// The release-time indicators run instead of the broker runs: figures over this many
    /// consignments (`--indicators N`, 1,000,000 by default), latency per request.
    indicators: Option<usize>,
    /// The CPU risk profiling adds to each document (`--risk-cost`): its facts read, a channel
    /// chosen for each agency and written as JSON, with the shipped rules and budgets.
    risk_cost: bool,
    /// Train on this many planted findings: logistic regression against a decision tree.
    risk_training: Option<usize>,
    /// The allocations one document costs the gateway (`--allocations N`): the gateway run under
    /// heaptrack twice, with N/5 and with N single documents, the difference divided by the
    /// difference in documents (so the start and the stop cancel out); and the call sites that
    /// allocate most for those documents.
    allocations: Option<usize>,
    /// Records a CPU profile of the gateway (`perf record -e cpu-clock --call-graph dwarf`) during the
    /// single-document and batch phases, into this directory.
    perf: Option<PathBuf>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options { seconds: 10, concurrency: 64, batch_size: 100, brokers: vec!["embedded".into(), "kafka".into()], store: "sqlite".into(), corpus: 2_000, soak: None, soak_rate: None, perf: None, compare_stores: false, fairness: false, indicators: None, risk_cost: false, risk_training: None, allocations: None };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--seconds" => o.seconds = value().parse().expect("--seconds N"),
                "--concurrency" => o.concurrency = value().parse().expect("--concurrency N"),
                "--batch-size" => o.batch_size = value().parse().expect("--batch-size N"),
                "--broker" => o.brokers = vec![value()],
                "--store" => o.store = value(),
                "--compare-stores" => o.compare_stores = true,
                "--fairness" => o.fairness = true,
                "--risk-cost" => o.risk_cost = true,
                "--risk-training" => {
                    o.risk_training = Some(args.next().filter(|v| !v.starts_with("--")).map_or(1_000_000, |v| v.parse().expect("--risk-training N")))
                }
                "--indicators" => {
                    o.indicators = Some(args.next().filter(|v| !v.starts_with("--")).map_or(1_000_000, |v| v.parse().expect("--indicators N")))
                }
                "--allocations" => {
                    o.allocations = Some(args.next().filter(|v| !v.starts_with("--")).map_or(5_000, |v| v.parse().expect("--allocations N")))
                }
                "--corpus" => o.corpus = value().parse().expect("--corpus N"),
                "--soak" => o.soak = Some(value().parse().expect("--soak SECONDS")),
                "--perf" => o.perf = Some(value().into()),
                "--soak-rate" => o.soak_rate = Some(value().parse().expect("--soak-rate DOCUMENTS_PER_SECOND")),
                "--parse-only-server" => {
                    parse_only_server(value().parse().expect("--parse-only-server PORT"));
                    std::process::exit(0);
                }
                _ => {} // cargo bench passes --bench
            }
        }
        o
    }
}

#[path = "../../tests/support/mod.rs"]
mod support;
use support::{eventually, repo};

// ------------------------------------------------------------------ documents ---------------

/// One prepared document: its body around its UCR, and what the gateway would publish for it.
struct Doc {
    ucr: String,
    envelope: Value,
    /// The serialized envelope before and after the UCR's value.
    before: Vec<u8>,
    after: Vec<u8>,
    /// (topic suffix after the prefix, payload) of each delivery the router makes.
    deliveries: Vec<(String, String)>,
    document_type: String,
}

/// The first array of objects that carry an `hsCode` (the goods list of every type).
fn goods_list(v: &mut Value) -> Option<&mut Vec<Value>> {
    let is_goods = |v: &Value| v.as_array().is_some_and(|a| a.iter().any(|i| i.get("hsCode").is_some() || i.get("contents").is_some()));
    match v {
        Value::Object(map) => {
            let key = map.iter().find(|(_, v)| is_goods(v)).map(|(k, _)| k.clone());
            match key {
                Some(k) => map.get_mut(&k).and_then(Value::as_array_mut),
                None => map.values_mut().find_map(goods_list),
            }
        }
        _ => None,
    }
}

/// The mixed corpus: `size` documents varied from the valid examples of every type, each with its
/// own UCR and its goods list grown to 1..50 items.
fn corpus(size: usize, run: &str) -> Vec<Doc> {
    vary(&examples(None), size, run, Some(50))
}

/// The valid examples of every document type but acknowledgments, or of type `only`.
fn examples(only: Option<&str>) -> Vec<Value> {
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let dir = entry.unwrap().path().join("valid");
        if dir.is_dir() && !dir.starts_with(repo().join("examples/acknowledgment")) {
            for f in std::fs::read_dir(&dir).unwrap() {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                examples.push(serde_json::from_str::<Value>(&text).unwrap());
            }
        }
    }
    examples.retain(|e| e.get("documentType").is_some_and(|t| only.is_none_or(|only| t == only)));
    examples
}

/// `size` documents made from `examples`, cycled through: each with its own UCR (`B<run>-<n>`)
/// and, with `max_items`, its goods list grown to between 1 and `max_items` items (without, the
/// example's own). Each variant is checked against the registry; one refused is left out.
fn vary(examples: &[Value], size: usize, run: &str, max_items: Option<usize>) -> Vec<Doc> {
    let options = ventanilla::config::ServeOptions {
        topic_prefix: Some("bench.".into()),
        ..ventanilla::config::ServeOptions::local("127.0.0.1:0".parse().unwrap(), "./data".into())
    };
    let settings = ventanilla::config::Settings::load(repo().join("config"), options).expect("config loads");
    let registry = ventanilla::schema::SchemaRegistry::of_region(&settings.schemas_dir(), &settings.region).expect("schemas load");
    let router = ventanilla::routing::Router::new(&settings.region);
    let topics = ventanilla::broker::Topics::new("");
    let mut docs = Vec::with_capacity(size);
    let mut refused = 0;
    let mut i = 0usize;
    while docs.len() < size {
        let mut d = examples[i % examples.len()].clone();
        if let (Some(max), Some(goods)) = (max_items, goods_list(&mut d["payload"])) {
            let items = 1 + (i * 7919) % max;
            let first = goods[0].clone();
            goods.clear();
            for n in 0..items {
                let mut g = first.clone();
                for key in ["sequenceNumber", "lineNumber"] {
                    if g.get(key).is_some() {
                        g[key] = json!(n + 1);
                    }
                }
                goods.push(g);
            }
        }
        let ucr = format!("B{run}-{i:07}");
        d["ucr"] = json!(ucr);
        i += 1;
        match ventanilla::gateway::check_submission(&registry, &router, &topics, None, &d) {
            Ok(checked) => {
                let payload = d["payload"].to_string();
                let deliveries = checked.routed.iter().map(|r| (r.topic.clone(), payload.clone())).collect();
                let document_type = d["documentType"].as_str().unwrap().to_owned();
                let text = d.to_string();
                let quoted = format!("\"{ucr}\"");
                let at = text.find(&quoted).expect("the UCR is in the text") + 1;
                let (before, after) = (text.as_bytes()[..at].to_vec(), text.as_bytes()[at + ucr.len()..].to_vec());
                docs.push(Doc { ucr, envelope: d, before, after, deliveries, document_type });
            }
            Err(_) => refused += 1,
        }
        assert!(i < size * 10, "too few example variants pass validation");
    }
    if refused > 0 {
        eprintln!("corpus: {refused} variants refused by the schemas were left out");
    }
    docs
}

/// The `i`-th body of a phase: the corpus cycled, each with a UCR unique to `phase` and round.
fn body(docs: &[Doc], phase: &str, i: usize) -> Bytes {
    let d = &docs[i % docs.len()];
    let ucr = format!("{}-{phase}{}", d.ucr, i / docs.len());
    let mut b = Vec::with_capacity(d.before.len() + ucr.len() + d.after.len());
    b.extend_from_slice(&d.before);
    b.extend_from_slice(ucr.as_bytes());
    b.extend_from_slice(&d.after);
    Bytes::from(b)
}

/// The `i`-th batch of `size` documents, as a JSON array.
fn batch(docs: &[Doc], phase: &str, size: usize, i: usize) -> Bytes {
    let mut b = vec![b'['];
    for k in 0..size {
        if k > 0 {
            b.push(b',');
        }
        b.extend_from_slice(&body(docs, phase, i * size + k));
    }
    b.push(b']');
    Bytes::from(b)
}

/// Makes the `i`-th request body of a phase.
type Bodies = Arc<dyn Fn(usize) -> Bytes + Send + Sync>;

// ------------------------------------------------------------------ processes ----------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime, stime in clock ticks (USER_HZ = 100 on Linux)
}

/// (current, peak) resident memory in MiB, from /proc.
fn rss_mib(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

struct Gateway {
    child: Child,
    address: String,
    brokers: String,
    /// Set at the stop: the log reader stops echoing errors.
    stopping: Arc<AtomicBool>,
    _data: tempfile::TempDir,
}

impl Gateway {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The SQLite file of a gateway started without a store URL.
    fn sqlite_file(&self) -> PathBuf {
        self._data.path().join("ventanilla.db")
    }

    /// A gateway on `store` (a PostgreSQL URL; none: SQLite in a fresh directory).
    async fn start(brokers: Option<&str>, prefix: &str, store: Option<&str>) -> Gateway {
        Gateway::start_on(tempfile::tempdir().unwrap(), brokers, prefix, store).await
    }

    /// A gateway on the SQLite store in `data` (or on `store`).
    async fn start_on(data: tempfile::TempDir, brokers: Option<&str>, prefix: &str, store: Option<&str>) -> Gateway {
        let port = free_port();
        // VENTANILLA_BENCH_BINARY measures another build (an earlier commit's, for a before/after).
        let binary = std::env::var("VENTANILLA_BENCH_BINARY").unwrap_or_else(|_| support::VENTANILLA.into());
        let mut cmd = match WRAPPER.lock().unwrap().clone() {
            Some(wrapper) => {
                let mut c = Command::new(&wrapper[0]);
                c.args(&wrapper[1..]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--topic-prefix", prefix])
            .arg("--config")
            .arg(CONFIG_DIR.lock().unwrap().clone().unwrap_or_else(default_config_dir))
            .arg("--data-dir")
            .arg(data.path())
            .env("RUST_LOG", "warn,ventanilla::startup=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(b) = brokers {
            cmd.args(["--kafka-brokers", b]);
        }
        if let Some(url) = store {
            cmd.args(["--store", url]);
        }
        let mut child = cmd.spawn().expect("the ventanilla binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let quiet = stopping.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("Ventanilla is listening") {
                    let brokers = line.split("brokers=").nth(1).map(|b| b.split_whitespace().next().unwrap_or("").to_owned());
                    let _ = tx.send(brokers.unwrap_or_default());
                    sent = true;
                } else if line.contains("ERROR") && !quiet.load(Ordering::Relaxed) {
                    // Errors while measuring are shown; the embedded broker's going away at
                    // the stop is not news.
                    eprintln!("gateway: {line}");
                }
            }
        });
        let brokers = rx.recv_timeout(Duration::from_secs(60)).expect("the gateway says where it listens");
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(30), "the gateway to be ready", || async {
            client.get(format!("{address}/readyz")).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
        })
        .await;
        Gateway { child, address, brokers, stopping, _data: data }
    }

    /// Waits until every delivery is confirmed by the broker; returns how long that took.
    async fn drain(&self, client: &reqwest::Client) -> Duration {
        let start = Instant::now();
        loop {
            let r: Value = match client.get(format!("{}/readyz", self.address)).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            if r["outboxBacklog"] == 0 {
                return start.elapsed();
            }
            assert!(start.elapsed() < Duration::from_secs(600), "the outbox did not drain within 10 minutes: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = Command::new("kill").args(["-TERM", &self.gateway_pid()]).status();
        let _ = self.child.wait();
    }

    /// The gateway's own process: the child, or the child's child named `ventanilla` when it
    /// runs under a wrapper (which finishes its work once the gateway has stopped).
    fn gateway_pid(&self) -> String {
        let me = self.child.id().to_string();
        let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ventanilla"))
            .map_or(me, str::to_owned)
    }
}

impl Drop for Gateway {
    /// A benchmark that fails part-way leaves no gateway running (after `stop`, the process has
    /// already exited and this does nothing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Apache Kafka broker process of the benchmark's own (`scripts/kafka.sh`), on loopback.
struct Kafka {
    address: String,
    dir: tempfile::TempDir,
}

impl Kafka {
    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("node-1/pid")).ok().map(|p| p.trim().to_owned())
    }
}

impl Kafka {
    /// Fetches the jars once (cached), formats a fresh broker and starts it; `None`, saying why,
    /// where Java or Maven is missing.
    fn start() -> Option<Kafka> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(repo().join("scripts/kafka.sh"))
            .arg("start")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/kafka.sh runs");
        if !out.status.success() {
            println!("skipped: scripts/kafka.sh could not start Apache Kafka (its error above)");
            return None;
        }
        let address = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Some(Kafka { address, dir })
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/kafka.sh")).arg("stop").arg(self.dir.path()).status();
    }
}

// ------------------------------------------------------------------ load -------------------

/// What a phase measured.
#[derive(Default)]
struct Outcome {
    ok: u64,
    /// Answers other than the expected success, by status (0 = transport error).
    other: HashMap<u16, u64>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    gateway_cpu: f64,
    bench_cpu: f64,
    /// CPU of the broker process (Apache Kafka), when it runs apart from the gateway.
    broker_cpu: f64,
    /// CPU of the PostgreSQL server's processes (the store comparison).
    store_cpu: f64,
}

/// The PostgreSQL server's administrator URL when the benchmark runs on `--store postgres`.
static POSTGRES_ADMIN: Mutex<Option<String>> = Mutex::new(None);

/// The configuration directory gateways start with (the default's when none).
static CONFIG_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A command the gateway is started under (heaptrack and its options, for `--allocations`).
static WRAPPER: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// The repository's configuration, or VENTANILLA_BENCH_CONFIG: the one of the build measured
/// (an earlier commit's region file and schemas, which its binary reads).
fn default_config_dir() -> PathBuf {
    std::env::var_os("VENTANILLA_BENCH_CONFIG").map_or_else(|| repo().join("config"), PathBuf::from)
}

/// A fresh database for one gateway on the benchmark's PostgreSQL server; its URL.
async fn postgres_database(admin: &str) -> String {
    let client = pg_client(admin).await;
    let name = format!("bench{}", uuid::Uuid::now_v7().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("a database");
    format!("{}/{name}", admin.rsplit_once('/').map_or(admin, |(base, _)| base))
}

/// A client of the PostgreSQL database at `url`, its connection driven in the background.
async fn pg_client(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("PostgreSQL answers");
    tokio::spawn(connection);
    client
}

/// The Apache Kafka broker's process id while a phase runs against it, for its CPU share.
static BROKER_PID: Mutex<Option<String>> = Mutex::new(None);

fn broker_pid() -> Option<String> {
    BROKER_PID.lock().unwrap().clone()
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

fn one(_: &[u8]) -> u64 {
    1
}

fn accepted(body: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(body).ok().and_then(|v| v["accepted"].as_u64()).unwrap_or(0)
}

fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(concurrency).http1_only().tcp_nodelay(true).build().unwrap()
}

/// Single submissions, `concurrency` in flight, for `seconds`.
/// `count` says how many documents an expected answer accepted (1 for a single submission;
/// a batch answer's `accepted`).
async fn closed_loop(address: &str, path: &str, bodies: Bodies, concurrency: usize, seconds: u64, expect: u16, count: fn(&[u8]) -> u64) -> Outcome {
    let client = client(concurrency);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let other = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{address}{path}");
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, ok, other, stop, bodies, url) = (client.clone(), next.clone(), ok.clone(), other.clone(), stop.clone(), bodies.clone(), url.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let r = client.post(&url).header("Content-Type", "application/json").bearer_auth("demo-trader").body(bodies(i)).send().await;
                    match r {
                        Ok(r) if r.status().as_u16() == expect => {
                            let body = r.bytes().await.unwrap_or_default();
                            ok.fetch_add(count(&body), Ordering::Relaxed);
                        }
                        Ok(r) => {
                            *other.lock().unwrap().entry(r.status().as_u16()).or_insert(0) += 1;
                            let _ = r.bytes().await;
                        }
                        Err(_) => *other.lock().unwrap().entry(0).or_insert(0) += 1,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    // Until the last answer counted, so requests in flight at the deadline are not free.
    let elapsed = start.elapsed();
    let other = other.lock().unwrap().clone();
    Outcome { ok: ok.load(Ordering::Relaxed), other, elapsed, ..Default::default() }
}

/// Single submissions at a fixed `rate`, whatever the answers: latency from the scheduled time.
async fn open_loop(address: &str, bodies: Bodies, rate: f64, seconds: u64) -> Outcome {
    let client = client(1024);
    let url = Arc::new(format!("{address}/v1/documents"));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let other = Arc::new(Mutex::new(HashMap::new()));
    let ok = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let total = (rate * seconds as f64) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let body = bodies(i);
        let (client, url, latencies, other, ok) = (client.clone(), url.clone(), latencies.clone(), other.clone(), ok.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(url.as_str()).header("Content-Type", "application/json").bearer_auth("demo-trader").body(body).send().await;
            match r {
                Ok(r) if r.status() == 202 => {
                    let _ = r.bytes().await;
                    latencies.lock().unwrap().push(at.elapsed());
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => *other.lock().unwrap().entry(r.status().as_u16()).or_insert(0) += 1,
                Err(_) => *other.lock().unwrap().entry(0).or_insert(0) += 1,
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    let other = other.lock().unwrap().clone();
    Outcome { ok: ok.load(Ordering::Relaxed), other, elapsed, latencies, ..Default::default() }
}

/// `perf record` of `pid` into `dir/name.data`, while the returned child runs.
fn profile(dir: Option<&PathBuf>, pid: &str, name: &str) -> Option<Child> {
    let dir = dir?;
    std::fs::create_dir_all(dir).ok()?;
    let started = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384", "-p", pid, "-o"])
        .arg(dir.join(format!("{name}.data")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = &started {
        println!("  (no profile: cannot run perf: {e})");
    }
    started.ok()
}

fn end_profile(p: Option<Child>) {
    if let Some(mut p) = p {
        let _ = Command::new("kill").args(["-INT", &p.id().to_string()]).status();
        let _ = p.wait();
    }
}

/// Measures `phase` with both processes' CPU time.
async fn measured<F: std::future::Future<Output = Outcome>>(gateway_pid: &str, phase: F) -> Outcome {
    let broker = broker_pid();
    let broker_cpu = || broker.as_deref().map_or(0.0, cpu_seconds);
    let (g0, b0, k0) = (cpu_seconds(gateway_pid), cpu_seconds("self"), broker_cpu());
    let mut o = phase.await;
    o.gateway_cpu = cpu_seconds(gateway_pid) - g0;
    o.bench_cpu = cpu_seconds("self") - b0;
    o.broker_cpu = broker_cpu() - k0;
    o
}

// ------------------------------------------------------------------ ceilings ----------------

/// The topics the corpus is delivered to.
fn topics_of(docs: &[Doc], prefix: &str) -> Vec<String> {
    let mut topics: Vec<String> = docs.iter().flat_map(|d| d.deliveries.iter().map(|x| format!("{prefix}{}", x.0))).collect();
    topics.sort();
    topics.dedup();
    topics
}

/// Creates `topics` on `brokers` as the gateway creates its own: 3 partitions, records up to its
/// largest (`kafka.max_message_bytes`).
async fn create_kafka_topics(brokers: &str, topics: &[String]) {
    let layout = ventanilla::kafka::TopicLayout { partitions: 3, replication_factor: None, min_insync_replicas: None, max_message_bytes: 1_064_960 };
    ventanilla::kafka::create_topics(brokers, &ventanilla::config::KafkaSecurity::default(), topics, layout).await.expect("topics created");
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn others(o: &Outcome) -> String {
    if o.other.is_empty() {
        String::new()
    } else {
        let mut v: Vec<_> = o.other.iter().map(|(s, n)| format!("{n}x{}", if *s == 0 { "error".into() } else { s.to_string() })).collect();
        v.sort();
        format!(" (also: {})", v.join(", "))
    }
}

fn share(o: &Outcome) -> String {
    let wall = o.elapsed.as_secs_f64();
    let broker = if o.broker_cpu > 0.0 { format!(", broker {:.2} cores", o.broker_cpu / wall) } else { String::new() };
    format!(
        "gateway {:.2} cores, load generator {:.2} cores ({:.0}% of what the two used){broker}",
        o.gateway_cpu / wall,
        o.bench_cpu / wall,
        100.0 * o.bench_cpu / (o.bench_cpu + o.gateway_cpu).max(1e-9)
    )
}

/// "met", or "**not met**".
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// The repository's region file changed by `edit`, in a fresh directory (its `config` folder,
/// for `CONFIG_DIR`) beside a link to the schemas.
fn config_with(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("ventanilla.toml"), edit(text)).unwrap();
    std::os::unix::fs::symlink(repo().join("schemas"), dir.path().join("schemas")).unwrap();
    dir
}

/// Single documents, `concurrency` in flight, until `n` were answered 202 (others are counted
/// and shown); returns how many were.
async fn submit_exactly(address: &str, bodies: Bodies, n: usize, concurrency: usize) -> u64 {
    let client = client(concurrency);
    let next = Arc::new(AtomicU64::new(0));
    let url = format!("{address}/v1/documents");
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, bodies, url) = (client.clone(), next.clone(), bodies.clone(), url.clone());
            tokio::spawn(async move {
                let (mut ok, mut other) = (0u64, 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        return (ok, other);
                    }
                    let r = client.post(&url).header("Content-Type", "application/json").bearer_auth("demo-trader").body(bodies(i)).send().await;
                    match r {
                        Ok(r) if r.status() == 202 => ok += 1,
                        _ => other += 1,
                    }
                }
            })
        })
        .collect();
    let (mut ok, mut other) = (0, 0);
    for t in tasks {
        let (o, x) = t.await.unwrap_or_default();
        ok += o;
        other += x;
    }
    if other > 0 {
        println!("  ({other} of {n} not answered 202)");
    }
    ok
}

fn deliveries_per_doc(docs: &[Doc]) -> f64 {
    docs.iter().map(|d| d.deliveries.len()).sum::<usize>() as f64 / docs.len() as f64
}

// ------------------------------------------------------------------ release-time indicators ----

fn main() {
    let o = Options::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let run = format!("{:06}", std::process::id() % 1_000_000);
        let t = Instant::now();
        let docs = Arc::new(corpus(o.corpus, &run));
        let items: Vec<usize> = docs.iter().filter_map(|d| {
            let mut e = d.envelope.clone();
            goods_list(&mut e["payload"]).map(|g| g.len())
        }).collect();
        let sizes: Vec<usize> = docs.iter().map(|d| d.envelope.to_string().len()).collect();
        println!("# Ventanilla benchmark");
        println!("machine: {} cores, {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())).unwrap_or_default());
        println!("documents: {} prepared in {:.1} s, 7 types, {}..{} goods items, {}..{} bytes (mean {:.0}), {:.2} deliveries each",
            docs.len(), t.elapsed().as_secs_f64(), items.iter().min().unwrap_or(&0), items.iter().max().unwrap_or(&0),
            sizes.iter().min().unwrap_or(&0), sizes.iter().max().unwrap_or(&0), sizes.iter().sum::<usize>() as f64 / sizes.len() as f64, deliveries_per_doc(&docs));
        println!("phases of {} s; {} requests in flight for single documents", o.seconds, o.concurrency);
        let postgres = (o.store == "postgres" || o.compare_stores).then(|| {
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new(repo().join("scripts/postgres.sh"))
                .arg("start")
                .arg(dir.path())
                .arg("--durable")
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .expect("scripts/postgres.sh runs");
            assert!(out.status.success(), "scripts/postgres.sh could not start PostgreSQL (its error above)");
            *POSTGRES_ADMIN.lock().unwrap() = Some(String::from_utf8(out.stdout).unwrap().trim().to_owned());
            // The first line of postmaster.pid: its CPU and its children's are the server's.
            let pid = std::fs::read_to_string(dir.path().join("data/postmaster.pid")).ok().and_then(|t| t.lines().next().map(str::to_owned));
            *POSTGRES_PID.lock().unwrap() = pid;
            dir
        });
        if o.fairness {
            fairness(&o, docs.clone()).await;
            return;
        }
        if o.risk_cost {
            risk_cost(&docs, o.seconds);
            return;
        }
        if let Some(n) = o.risk_training {
            risk_training(n);
            return;
        }
        if let Some(n) = o.allocations {
            allocations(n, &o, docs.clone()).await;
            return;
        }
        if let Some(n) = o.indicators {
            indicators(n, &o).await;
            return;
        }
        if o.compare_stores {
            compare_stores(&o, docs.clone()).await;
            if let Some(dir) = postgres {
                let _ = Command::new(repo().join("scripts/postgres.sh")).arg("stop").arg(dir.path()).status();
            }
            return;
        }
        println!("store: {}", if postgres.is_some() { "PostgreSQL (durable: fsync and synchronous_commit on), a fresh database per gateway" } else { "SQLite (WAL, synchronous=FULL)" });
        let parse_bodies: Bodies = {
            let docs = docs.clone();
            Arc::new(move |i| body(&docs, "P", i))
        };
        let parse_batches: Bodies = {
            let (docs, size) = (docs.clone(), o.batch_size);
            Arc::new(move |i| batch(&docs, "Q", size, i))
        };
        let (parse, parse_batch) = parse_only_ceiling(parse_bodies, parse_batches, &o).await;
        println!("\nceiling, HTTP server that only parses the body: {:.0} documents/s{}; {}", parse.rate(), others(&parse), share(&parse));
        println!("ceiling, the same server parsing batches of {}: {:.0} documents/s{}; {}", o.batch_size, parse_batch.rate(), others(&parse_batch), share(&parse_batch));
        for kind in &o.brokers {
            run_broker(kind, &o, docs.clone(), (parse.rate(), parse_batch.rate())).await;
        }
        if let Some(dir) = postgres {
            let _ = Command::new(repo().join("scripts/postgres.sh")).arg("stop").arg(dir.path()).status();
        }
    });
}

/// The postmaster of the benchmark's PostgreSQL server, once started.
static POSTGRES_PID: Mutex<Option<String>> = Mutex::new(None);

/// CPU seconds of the benchmark's PostgreSQL server (its postmaster and the processes it started:
/// backends, writers), from /proc; not another server's on the same machine. Every process named
/// `postgres` when the postmaster is not known.
fn postgres_cpu() -> f64 {
    let postmaster = POSTGRES_PID.lock().unwrap().clone();
    let parent = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|x| x.1.split_whitespace().nth(1).map(str::to_owned)).unwrap_or_default()
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter(|pid| postmaster.as_ref().is_none_or(|pm| pid == pm || parent(pid) == *pm))
        .map(|pid| cpu_seconds(&pid))
        .sum()
}

/// `phase(i)` for each gateway `i` at once, merged: documents, answers and latencies added up,
/// the CPU of the gateways, the PostgreSQL server and the broker over the whole phase.
async fn across<F, Fut>(gateways: &[Gateway], phase: F) -> Outcome
where
    F: Fn(usize, String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let pids: Vec<String> = gateways.iter().map(Gateway::pid).collect();
    let gateways_cpu = || pids.iter().map(|p| cpu_seconds(p)).sum::<f64>();
    let broker = broker_pid();
    let broker_cpu = || broker.as_deref().map_or(0.0, cpu_seconds);
    let (g0, p0, k0, b0) = (gateways_cpu(), postgres_cpu(), broker_cpu(), cpu_seconds("self"));
    let runs: Vec<_> = gateways.iter().enumerate().map(|(i, g)| tokio::spawn(phase(i, g.address.clone()))).collect();
    let mut merged = Outcome::default();
    for r in runs {
        let o = r.await.expect("a load task");
        merged.ok += o.ok;
        merged.elapsed = merged.elapsed.max(o.elapsed);
        merged.latencies.extend(o.latencies);
        for (status, n) in o.other {
            *merged.other.entry(status).or_insert(0) += n;
        }
    }
    merged.gateway_cpu = gateways_cpu() - g0;
    merged.broker_cpu = broker_cpu() - k0;
    merged.bench_cpu = cpu_seconds("self") - b0;
    // The database's share, apart: kept in `bench_cpu`'s place would mislead.
    merged.store_cpu = postgres_cpu() - p0;
    merged
}
