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

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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
    let settings = ventanilla::config::Settings::load(repo().join("config"), "127.0.0.1:0".parse().unwrap(), "./data".into(), None, Some("bench.".into()), None)
        .expect("config loads");
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
        let binary = std::env::var("VENTANILLA_BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ventanilla").into());
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
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{address}/readyz")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// Records the producer-alone ceiling keeps unconfirmed at most: a few seconds of a slow
/// broker's pace, far below the 30 s after which librdkafka gives a record up.
const MAX_IN_FLIGHT: usize = 5_000;

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

/// rdkafka's producer alone, with the gateway's settings: every delivery of every document,
/// with the same key, payload and CloudEvents headers. (Documents/s, cores of this process.)
async fn producer_ceiling(brokers: &str, prefix: &str, docs: &[Doc], seconds: u64, create_topics: bool) -> (f64, f64) {
    use rdkafka::producer::FutureRecord;
    if create_topics {
        create_kafka_topics(brokers, &topics_of(docs, prefix)).await;
    }
    let producer = ventanilla::kafka::producer(brokers, &ventanilla::config::KafkaSecurity::default(), 1_064_960).expect("producer");
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    let mut sent_docs = 0u64;
    let mut confirmed = 0u64;
    'outer: for round in 0.. {
        for d in docs {
            if start.elapsed() >= Duration::from_secs(seconds) {
                break 'outer;
            }
            for (topic, payload) in &d.deliveries {
                let delivery = ventanilla::store::OutboundDelivery {
                    delivery_id: 0,
                    document_id: uuid::Uuid::now_v7(),
                    agency: ventanilla::domain::AgencyId::parse(topic.rsplit('.').next().unwrap_or("xx-x")).unwrap_or_else(|_| ventanilla::domain::AgencyId::parse("xx-unknown").unwrap()),
                    topic: format!("{prefix}{topic}"),
                    ucr: ventanilla::domain::Ucr::parse(&format!("{}-{round}", d.ucr)).unwrap(),
                    document_type: ventanilla::domain::DocumentType::parse(&d.document_type).unwrap(),
                    schema_version: "1.0.0".into(),
                    schema_id: String::new(),
                    origin: String::new(),
                    destination: String::new(),
                    sender: "demo-trader".into(),
                    submitted_at: 0,
                    payload: String::new(),
                    version: 1,
                    amends: None,
                    notice: None,
                    attempts: 0,
                    position: 0,
                    // A green channel's selection, as most records carry.
                    selection: Some(r#"{"channel":"green","score":0.0,"source":"none","reasons":[]}"#.into()),
                };
                let mut record = FutureRecord::to(&delivery.topic)
                    .key(delivery.ucr.as_str())
                    .payload(payload.as_str())
                    .headers(ventanilla::kafka::cloudevents::delivery_headers(&delivery));
                // A closed loop against the broker: at most MAX_IN_FLIGHT records unconfirmed, so
                // a slow broker sets the pace instead of timing records out.
                while in_flight.len() >= MAX_IN_FLIGHT {
                    if let Some(f) = in_flight.pop_front() {
                        if matches!(f.await, Ok(Ok(_))) {
                            confirmed += 1;
                        }
                    }
                }
                loop {
                    match producer.send_result(record) {
                        Ok(f) => {
                            in_flight.push_back(f);
                            break;
                        }
                        Err((_, r)) => {
                            record = r;
                            if let Some(f) = in_flight.pop_front() {
                                if matches!(f.await, Ok(Ok(_))) {
                                    confirmed += 1;
                                }
                            } else {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                }
            }
            sent_docs += 1;
        }
    }
    for f in in_flight {
        if matches!(f.await, Ok(Ok(_))) {
            confirmed += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let records = sent_docs as f64 * deliveries_per_doc(docs);
    if (confirmed as f64) < records * 0.999 {
        println!("  producer alone: {confirmed} of about {records:.0} records confirmed");
    }
    // Records the broker confirmed, in documents (at the corpus's deliveries per document), per
    // second until the last confirmation.
    (confirmed as f64 / deliveries_per_doc(docs) / elapsed, (cpu_seconds("self") - cpu0) / elapsed)
}

/// The HTTP ceiling's server: reads and parses the body with the gateway's own bounded parser,
/// answers 202. Nothing else. Runs as a separate process, like the gateway. Batches are split
/// into their documents and each parsed, as the gateway does, and answered 200 with the count.
fn parse_only_server(port: u16) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let limits = ventanilla::config::GatewayConfig::default().json_limits();
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::PayloadConfig::new(64 << 20))
                .route(
                    "/v1/documents",
                    web::post().to(move |body: web::Bytes| async move {
                        match ventanilla::json::parse_bounded(&body, &limits) {
                            Ok(v) => HttpResponse::Accepted().json(json!({ "parsed": v.is_object() })),
                            Err(_) => HttpResponse::BadRequest().finish(),
                        }
                    }),
                )
                .route(
                    "/v1/documents:batch",
                    web::post().to(move |body: web::Bytes| async move {
                        let Ok(texts) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body) else {
                            return HttpResponse::BadRequest().finish();
                        };
                        let parsed = texts.iter().filter(|t| ventanilla::json::parse_bounded(t.get().as_bytes(), &limits).is_ok()).count();
                        HttpResponse::Ok().json(json!({ "accepted": parsed }))
                    }),
                )
        })
        .bind(("127.0.0.1", port))
        .expect("bind")
        .run()
        .await
        .expect("serve")
    });
}

/// The parse-only server's rate for single documents and for batches.
async fn parse_only_ceiling(single: Bodies, batches: Bodies, o: &Options) -> (Outcome, Outcome) {
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap()).args(["--parse-only-server", &port.to_string()]).spawn().expect("parse-only server");
    let address = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let single = measured(&pid, closed_loop(&address, "/v1/documents", single, o.concurrency, o.seconds, 202, one)).await;
    let batches = measured(&pid, closed_loop(&address, "/v1/documents:batch", batches, batch_concurrency(o), o.seconds, 200, accepted)).await;
    let _ = child.kill();
    let _ = child.wait();
    (single, batches)
}

/// Batches in flight: an eighth of the single documents', at least 2.
fn batch_concurrency(o: &Options) -> usize {
    (o.concurrency / 8).max(2)
}

// ------------------------------------------------------------------ report -----------------

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

async fn run_broker(kind: &str, o: &Options, docs: Arc<Vec<Doc>>, (parse_ceiling, parse_batch_ceiling): (f64, f64)) {
    println!("\n## broker: {kind}");
    let mut kafka = match kind {
        "kafka" => match Kafka::start() {
            Some(k) => Some(k),
            None => return,
        },
        _ => None,
    };
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("bench{}.", &run[20..]);
    *BROKER_PID.lock().unwrap() = kafka.as_ref().and_then(Kafka::pid);
    let admin = POSTGRES_ADMIN.lock().unwrap().clone();
    let store = match admin {
        Some(admin) => Some(postgres_database(&admin).await),
        None => None,
    };
    let gateway = Gateway::start(kafka.as_ref().map(|k| k.address.as_str()), &prefix, store.as_deref()).await;
    let pid = gateway.pid();
    println!("gateway {} (pid {pid}), broker {}", gateway.address, gateway.brokers);
    let status = reqwest::Client::new();

    let of = |phase: &'static str| -> Bodies {
        let docs = docs.clone();
        Arc::new(move |i| body(&docs, phase, i))
    };
    let perf = profile(o.perf.as_ref(), &pid, &format!("{kind}-single"));
    let single = measured(&pid, closed_loop(&gateway.address, "/v1/documents", of("S"), o.concurrency, o.seconds, 202, one)).await;
    end_profile(perf);
    let drain_single = gateway.drain(&status).await;
    let max = single.rate();
    println!("single documents, closed loop ({} in flight): {:.0} documents/s{}", o.concurrency, max, others(&single));
    println!("  {}", share(&single));
    let delivered = single.ok as f64 / (single.elapsed + drain_single).as_secs_f64();
    println!("  outbox drained {} after the phase: {delivered:.0} documents/s accepted and delivered", ms(drain_single));

    let mut open = measured(&pid, open_loop(&gateway.address, of("O"), max / 2.0, o.seconds)).await;
    gateway.drain(&status).await;
    println!(
        "single documents, open loop at {:.0}/s (half the maximum): p50 {}  p99 {}  p99.9 {}  max {}  (of the {} answered 202){}",
        max / 2.0,
        ms(open.percentile(0.50)),
        ms(open.percentile(0.99)),
        ms(open.percentile(0.999)),
        ms(open.percentile(1.0)),
        open.ok,
        others(&open)
    );
    println!("  {}", share(&open));

    let batches: Bodies = {
        let (docs, size) = (docs.clone(), o.batch_size);
        Arc::new(move |i| batch(&docs, "B", size, i))
    };
    let batch_concurrency = batch_concurrency(o);
    let perf = profile(o.perf.as_ref(), &pid, &format!("{kind}-batch"));
    let batch = measured(&pid, closed_loop(&gateway.address, "/v1/documents:batch", batches, batch_concurrency, o.seconds, 200, accepted)).await;
    end_profile(perf);
    let drain_batch = gateway.drain(&status).await;
    println!("batches of {} ({batch_concurrency} in flight): {:.0} documents/s{}", o.batch_size, batch.rate(), others(&batch));
    println!("  {}", share(&batch));
    let batch_delivered = batch.ok as f64 / (batch.elapsed + drain_batch).as_secs_f64();
    println!("  outbox drained {} after the phase: {batch_delivered:.0} documents/s accepted and delivered", ms(drain_batch));

    if let Some(soak) = o.soak {
        let rate = o.soak_rate.unwrap_or(max / 2.0);
        println!("soak: {soak} s at {rate:.0} documents/s, resident memory every 30 s:");
        let sampler = {
            let pid = pid.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for _ in 0..(soak / 30 + 1) {
                    samples.push(rss_mib(&pid).0);
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                samples
            })
        };
        let soaked = open_loop(&gateway.address, of("K"), rate, soak).await;
        let samples = sampler.await.unwrap();
        println!("  {} answered 202{}; RSS MiB: {}", soaked.ok, others(&soaked), samples.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(" "));
    }
    // Delivered means confirmed by the broker: none may have failed instead.
    let failed: Value = status.get(format!("{}/v1/deliveries/failed", gateway.address)).bearer_auth("demo-operator").send().await.unwrap().json().await.unwrap();
    let failed = failed["deliveries"].as_array().map_or(0, Vec::len);
    assert_eq!(failed, 0, "{failed} deliveries failed: the delivered figures above would be wrong");
    let (rss, peak) = rss_mib(&pid);
    let producer = if kind == "embedded" {
        gateway.stop();
        // A mock cluster like the gateway's, in this process, for the producer alone.
        let cluster = ventanilla::kafka::embedded::EmbeddedCluster::start(topics_of(&docs, &format!("c{prefix}")), 3).expect("mock cluster");
        let r = producer_ceiling(cluster.bootstrap_servers(), &format!("c{prefix}"), &docs, o.seconds, false).await;
        drop(cluster);
        r
    } else {
        gateway.stop();
        // A fresh broker, not the one the gateway has just filled.
        *BROKER_PID.lock().unwrap() = None;
        drop(kafka.take());
        let fresh = Kafka::start().expect("Apache Kafka started above");
        producer_ceiling(&fresh.address, &format!("c{prefix}"), &docs, o.seconds, true).await
    };
    println!("gateway resident memory: {rss:.0} MiB at the end, {peak:.0} MiB at its peak");
    println!("ceiling, rdkafka producer alone (same settings, payloads, headers; {:.2} deliveries per document): {:.0} documents/s ({:.2} cores)", deliveries_per_doc(&docs), producer.0, producer.1);
    println!("ceiling, HTTP server that only parses the body: {parse_ceiling:.0} documents/s; batches: {parse_batch_ceiling:.0} documents/s");
    println!("ratios: single {:.0}% of parse-only, {:.0}% of producer ({:.0}% counting the drain); batch {:.0}% of parse-only, {:.0}% of producer ({:.0}% counting the drain)",
        100.0 * max / parse_ceiling, 100.0 * max / producer.0, 100.0 * delivered / producer.0,
        100.0 * batch.rate() / parse_batch_ceiling, 100.0 * batch.rate() / producer.0, 100.0 * batch_delivered / producer.0);
    drop(kafka);
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

/// Parcels the batch phase of the store comparison sends in one request (issue 27).
const PARCELS: usize = 10_000;

/// The region file of the store comparison: the repository's, as shipped. Its batches take the
/// batch phase's [`PARCELS`] parcels in one request (`max_batch_items`, 10,000; the NDJSON is
/// about 19 MB of `max_batch_body_bytes`' 32 MiB), and [quotas.demo]'s bytes in flight hold that
/// body and one parcel's parsed tree (the gateway checks it at start). max_json_nodes and
/// max_json_parsed_bytes bound each NDJSON line (one parcel), not the batch.
fn config_for_parcel_batches() -> tempfile::TempDir {
    config_with(|text| text)
}

/// The store comparison (`--compare-stores`, issue 27): on one Apache Kafka broker,
/// 1. the same documents submitted to SQLite with one gateway, PostgreSQL (durable) with one
///    gateway, and PostgreSQL with two gateways sharing the database, the load spread evenly
///    over them: documents/s (closed loop), p99 at half that rate (open loop), CPU per document
///    of each part, and the ratios against the issue's targets;
/// 2. what one document costs the store, with one gateway (`print_costs`);
/// 3. [`PARCELS`] e-commerce parcels in one NDJSON batch, on each store (`parcels_batch`);
/// 4. the reference Java service against the gateway on SQLite, the same document
///    (`peer_comparison`).
async fn compare_stores(o: &Options, docs: Arc<Vec<Doc>>) {
    println!("\n## stores: SQLite and PostgreSQL, one and two gateways, on Apache Kafka");
    // Whatever else runs on the two cores shows here.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the start (1, 5, 15 min): {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(", "));
    let Some(kafka) = Kafka::start() else { return };
    *BROKER_PID.lock().unwrap() = kafka.pid();
    let admin = POSTGRES_ADMIN.lock().unwrap().clone().expect("--compare-stores starts PostgreSQL");
    let config = config_for_parcel_batches();
    *CONFIG_DIR.lock().unwrap() = Some(config.path().join("config"));
    {
        // The broker's JVM compiles its hot paths in its first tens of seconds, on the same two
        // cores: measured cold, the first configuration would pay for it (the peer below is
        // warmed up too). A throwaway gateway loads it first.
        let warm_up = Gateway::start(Some(&kafka.address), "warmup.", None).await;
        let bodies: Bodies = { let docs = docs.clone(); Arc::new(move |i| body(&docs, "WARM", i)) };
        let warm = measured(&warm_up.pid(), closed_loop(&warm_up.address, "/v1/documents", bodies, o.concurrency, 20, 202, one)).await;
        println!(
            "broker warmed up: 20 s through a throwaway gateway (SQLite), {:.0} documents/s, broker {:.2} ms of CPU per document",
            warm.rate(),
            1000.0 * warm.broker_cpu / warm.ok.max(1) as f64
        );
    }
    println!("| store | gateways | documents/s | p99 at half that rate | CPU ms per document: gateways / PostgreSQL / Kafka |");
    println!("|---|---|---|---|---|");
    let mut figures = Vec::new();
    let mut costs = Vec::new();
    for (label, postgres, instances) in [("SQLite", false, 1usize), ("PostgreSQL", true, 1), ("PostgreSQL", true, 2)] {
        let run = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("cmp{}.", &run[20..]);
        let store = if postgres { Some(postgres_database(&admin).await) } else { None };
        let mut gateways = Vec::new();
        for _ in 0..instances {
            gateways.push(Gateway::start(Some(&kafka.address), &prefix, store.as_deref()).await);
        }
        // The cost per document is counted with one gateway, over both single-document phases.
        let before = match (&store, instances) {
            (_, 2..) => None,
            (Some(url), _) => Some(StoreCount::of_postgres(&admin, url).await),
            (None, _) => Some(StoreCount::of_sqlite(&gateways[0].sqlite_file())),
        };
        let phase = format!("C{}{instances}", &label[..1]);
        let of = |docs: &Arc<Vec<Doc>>, phase: String, gateway: usize, of: usize| -> Bodies {
            let docs = docs.clone();
            // Each gateway its own share of the document numbers: no two send the same UCR.
            Arc::new(move |i| body(&docs, &phase, i * of + gateway))
        };
        let concurrency = (o.concurrency / instances).max(1);
        let closed = across(&gateways, |i, address| {
            let bodies = of(&docs, phase.clone(), i, instances);
            let seconds = o.seconds;
            async move { closed_loop(&address, "/v1/documents", bodies, concurrency, seconds, 202, one).await }
        })
        .await;
        let status = reqwest::Client::new();
        gateways[0].drain(&status).await;
        let max = closed.rate();
        let rate = max / 2.0 / instances as f64;
        let mut open = across(&gateways, |i, address| {
            let bodies = of(&docs, format!("{phase}O"), i, instances);
            let seconds = o.seconds;
            async move { open_loop(&address, bodies, rate, seconds).await }
        })
        .await;
        gateways[0].drain(&status).await;
        let per_doc = |cpu: f64| 1000.0 * cpu / closed.ok.max(1) as f64;
        let p99 = open.percentile(0.99);
        println!(
            "| {label} | {instances} | {max:.0}{} | {} (of {} answered 202){} | {:.2} / {:.2} / {:.2} |",
            others(&closed),
            ms(p99),
            open.ok,
            others(&open),
            per_doc(closed.gateway_cpu),
            per_doc(closed.store_cpu),
            per_doc(closed.broker_cpu)
        );
        figures.push((max, p99));
        if let Some(before) = before {
            let after = match &store {
                // The server's counters of a session are complete once it has ended.
                Some(url) => {
                    for g in gateways.drain(..) {
                        g.stop();
                    }
                    postgres_sessions_ended(&admin, url).await;
                    StoreCount::of_postgres(&admin, url).await
                }
                None => StoreCount::of_sqlite(&gateways[0].sqlite_file()),
            };
            costs.push((label, after.since(&before), closed.ok + open.ok));
        }
        for g in gateways {
            g.stop();
        }
    }
    let [(sqlite, sqlite_p99), (postgres, postgres_p99), (two, two_p99)] = figures[..] else { unreachable!() };
    println!("\nPostgreSQL, 1 gateway / SQLite: {:.0}% (target ≥ 50%: {})", 100.0 * postgres / sqlite, verdict(postgres / sqlite >= 0.5));
    println!("PostgreSQL, 2 gateways / 1 gateway: {:.2}x (target ≥ 1.3x: {})", two / postgres, verdict(two / postgres >= 1.3));
    let under = |p99: Duration, ms: u64| verdict(p99 < Duration::from_millis(ms));
    println!(
        "p99 at half the rate: SQLite {} (target < 25 ms: {}); PostgreSQL, 1 gateway {} and 2 gateways {} (target < 60 ms: {}, {})",
        ms(sqlite_p99),
        under(sqlite_p99, 25),
        ms(postgres_p99),
        ms(two_p99),
        under(postgres_p99, 60),
        under(two_p99, 60)
    );
    print_costs(&costs);

    let run = format!("{:06}", std::process::id() % 1_000_000);
    // Parcels hold a few items: grown to 1..4, where the mixed corpus's goods lists go to 50.
    let parcels = Arc::new(vary(&examples(Some("ecommerceShipment")), 100, &format!("{run}P"), Some(4)));
    println!("\n### {PARCELS} e-commerce parcels in one NDJSON request (POST /v1/documents:batch), a fresh gateway on each store");
    println!("| store | request | seconds, request to answer | documents/s | accepted (items answered 202) | CPU ms per document: gateway / PostgreSQL / Kafka | outbox drained after the answer | target |");
    println!("|---|---|---|---|---|---|---|---|");
    parcels_batch("SQLite", &kafka, None, &parcels, Duration::from_secs(3)).await;
    let store = postgres_database(&admin).await;
    parcels_batch("PostgreSQL", &kafka, Some(&store), &parcels, Duration::from_secs(6)).await;

    peer_comparison(o, &kafka, &run).await;
    *CONFIG_DIR.lock().unwrap() = None;
    drop(kafka);
}

/// "met", or "**not met**".
fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// What a store holds, and on PostgreSQL what the server counted of the work on it: read before
/// and after the single-document phases of the store comparison, for the cost per document.
#[derive(Default)]
struct StoreCount {
    /// Rows of each table.
    rows: BTreeMap<String, i64>,
    /// PostgreSQL: rows inserted, updated, deleted, and read by sequential scans, in each table
    /// (`pg_stat_user_tables`).
    written: BTreeMap<String, [i64; 4]>,
    /// PostgreSQL: the database's transactions committed, and rows returned, fetched, inserted,
    /// updated and deleted (`pg_stat_database`).
    database: Option<[i64; 6]>,
    /// PostgreSQL with `pg_stat_statements` loaded (`VENTANILLA_PG_SETTINGS`): each statement's
    /// calls and milliseconds of execution in the database, by its normalized text.
    statements: Option<BTreeMap<String, (i64, f64)>>,
}

impl StoreCount {
    /// The rows of each table of the SQLite file at `path`, read beside the running gateway
    /// (read-only; in WAL mode a reader sees what is committed and holds no writer up).
    fn of_sqlite(path: &Path) -> StoreCount {
        let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("the gateway's SQLite file opens");
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let rows = tables
            .into_iter()
            .map(|t| {
                let n = db.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0)).unwrap();
                (t, n)
            })
            .collect();
        StoreCount { rows, ..Default::default() }
    }

    /// The rows of each table of the PostgreSQL database at `url`, and the server's counters of
    /// it (through `admin`).
    async fn of_postgres(admin: &str, url: &str) -> StoreCount {
        let name = url.rsplit('/').next().unwrap_or_default();
        let server = pg_client(admin).await;
        let d = server
            .query_one("SELECT xact_commit, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = $1", &[&name])
            .await
            .expect("pg_stat_database");
        let mut count = StoreCount { database: Some(std::array::from_fn(|i| d.get::<_, i64>(i))), ..Default::default() };
        // Only where the server loaded the module (its view answers an error otherwise).
        let _ = server.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await;
        if let Ok(rows) = server
            .query(
                "SELECT s.query, sum(s.calls)::bigint, sum(s.total_exec_time) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                 WHERE d.datname = $1 GROUP BY s.query",
                &[&name],
            )
            .await
        {
            count.statements = Some(rows.iter().map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2)))).collect());
        }
        let db = pg_client(url).await;
        for r in db.query("SELECT schemaname::text, relname::text, n_tup_ins, n_tup_upd, n_tup_del, seq_tup_read FROM pg_stat_user_tables", &[]).await.expect("pg_stat_user_tables") {
            let (schema, table): (String, String) = (r.get(0), r.get(1));
            let rows: i64 = db.query_one(&format!("SELECT count(*) FROM \"{schema}\".\"{table}\""), &[]).await.expect("a count").get(0);
            count.written.insert(table.clone(), [r.get(2), r.get(3), r.get(4), r.get(5)]);
            count.rows.insert(table, rows);
        }
        count
    }

    /// What changed from `before` to this.
    fn since(&self, before: &StoreCount) -> StoreCount {
        let rows = self.rows.iter().map(|(t, n)| (t.clone(), n - before.rows.get(t).unwrap_or(&0))).collect();
        let written = self
            .written
            .iter()
            .map(|(t, w)| {
                let b = before.written.get(t).copied().unwrap_or_default();
                (t.clone(), std::array::from_fn(|i| w[i] - b[i]))
            })
            .collect();
        let database = self.database.zip(before.database).map(|(a, b)| std::array::from_fn(|i| a[i] - b[i]));
        let statements = self.statements.as_ref().map(|now| {
            now.iter()
                .map(|(q, (calls, ms))| {
                    let (c0, m0) = before.statements.as_ref().and_then(|b| b.get(q)).copied().unwrap_or_default();
                    (q.clone(), (calls - c0, ms - m0))
                })
                .filter(|(_, (calls, _))| *calls > 0)
                .collect()
        });
        StoreCount { rows, written, database, statements }
    }
}

/// Waits (up to 10 s) until no session is connected to the PostgreSQL database at `url`: a
/// session's statistics are complete once it has ended (a running one reports them up to 10 s
/// late).
async fn postgres_sessions_ended(admin: &str, url: &str) {
    let name = url.rsplit('/').next().unwrap_or_default();
    let server = pg_client(admin).await;
    for _ in 0..100 {
        let n: i64 = server.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&name]).await.expect("pg_stat_activity").get(0);
        if n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("  (sessions still open on {name} after 10 s: its counters may be short)");
}

/// Prints what one document cost each store, from `(store, what changed, documents accepted)`:
/// the rows it added to each table, on PostgreSQL the rows the server counted inserted, updated,
/// deleted and read by sequential scans in each, and its database's counters; and says what is
/// not measured.
fn print_costs(costs: &[(&str, StoreCount, u64)]) {
    println!("\n### cost per document, one gateway, over the single-document phases above (closed and open loop)");
    let tables: BTreeSet<&String> = costs
        .iter()
        .flat_map(|(_, c, _)| c.rows.iter().filter(|(_, n)| **n != 0).map(|(t, _)| t).chain(c.written.iter().filter(|(_, w)| w.iter().any(|n| *n != 0)).map(|(t, _)| t)))
        .collect();
    let mut head = String::from("| table |");
    for (label, c, n) in costs {
        head.push_str(&format!(" {label}: rows added per document ({n} documents) |"));
        if !c.written.is_empty() {
            head.push_str(&format!(" {label}: inserted / updated / deleted per document | {label}: read by sequential scans per document |"));
        }
    }
    println!("{head}");
    println!("|---|{}", "---|".repeat(head.matches(" |").count() - 1));
    let per = |v: i64, n: u64| v as f64 / n.max(1) as f64;
    for table in tables {
        let mut line = format!("| {table} |");
        for (_, c, n) in costs {
            line.push_str(&format!(" {:.2} |", per(c.rows.get(table).copied().unwrap_or(0), *n)));
            if !c.written.is_empty() {
                let w = c.written.get(table).copied().unwrap_or_default();
                line.push_str(&format!(" {:.2} / {:.2} / {:.2} | {:.1} |", per(w[0], *n), per(w[1], *n), per(w[2], *n), per(w[3], *n)));
            }
        }
        println!("{line}");
    }
    for (label, c, n) in costs {
        if let Some(d) = c.database {
            println!(
                "{label}, per document (pg_stat_database, the gateway's database): {:.3} transactions committed; rows {:.2} inserted, {:.2} updated, {:.2} deleted, {:.1} fetched, {:.1} returned",
                per(d[0], *n),
                per(d[3], *n),
                per(d[4], *n),
                per(d[5], *n),
                per(d[2], *n),
                per(d[1], *n)
            );
        }
    }
    let mut counted = false;
    for (label, c, n) in costs {
        let Some(statements) = &c.statements else { continue };
        counted = true;
        let calls: i64 = statements.values().map(|s| s.0).sum();
        println!("{label}, statements per document (pg_stat_statements, every gateway's statement in its database): {:.1}; the most time:", per(calls, *n));
        let mut by_time: Vec<_> = statements.iter().collect();
        by_time.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        for (query, (calls, ms)) in by_time.into_iter().take(8) {
            let text: String = query.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(110).collect();
            println!("  {:.2} calls, {:.1} µs per document: {text}", per(*calls, *n), 1000.0 * ms / (*n).max(1) as f64);
        }
    }
    if !counted {
        println!("statements per document: not counted one by one (VENTANILLA_PG_SETTINGS=\"-c shared_preload_libraries=pg_stat_statements\" loads the module that counts them); the transactions and rows pg_stat_database and pg_stat_user_tables count stand for them");
    }
    println!("heap allocations per document: counted apart, by `--allocations N` (heaptrack), not in this run");
}

/// The batch phase on `store` (none: SQLite): [`PARCELS`] parcels made from `parcels`, each its
/// own UCR, in one NDJSON request to a fresh gateway; prints the time from the request to the
/// whole answer against `target`, the items the answer accepted (counted one by one), the CPU of
/// each part, and how long the outbox then took to drain.
async fn parcels_batch(label: &str, kafka: &Kafka, store: Option<&str>, parcels: &Arc<Vec<Doc>>, target: Duration) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let gateway = Gateway::start(Some(&kafka.address), &format!("par{}.", &run[20..]), store).await;
    let mut ndjson = Vec::new();
    for i in 0..PARCELS {
        ndjson.extend_from_slice(&body(parcels, "N", i));
        ndjson.push(b'\n');
    }
    let ndjson = Bytes::from(ndjson);
    let size = ndjson.len();
    let sent = across(std::slice::from_ref(&gateway), |_, address| {
        let ndjson = ndjson.clone();
        async move {
            let mut o = Outcome::default();
            let start = Instant::now();
            let r = reqwest::Client::new()
                .post(format!("{address}/v1/documents:batch"))
                .header("Content-Type", "application/x-ndjson")
                .bearer_auth("demo-trader")
                .body(ndjson)
                .send()
                .await;
            let (status, answer) = match r {
                Ok(r) => (r.status().as_u16(), r.bytes().await.unwrap_or_default()),
                Err(e) => {
                    println!("  the batch could not be sent: {e}");
                    (0, Bytes::new())
                }
            };
            o.elapsed = start.elapsed();
            let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if status != 200 {
                *o.other.entry(status).or_insert(0) += 1;
                println!("  the batch was answered {status}: {}", answer.to_string().chars().take(500).collect::<String>());
            }
            for item in answer["results"].as_array().into_iter().flatten() {
                match item["status"].as_u64() {
                    Some(202) => o.ok += 1,
                    other => *o.other.entry(other.unwrap_or(0) as u16).or_insert(0) += 1,
                }
            }
            if let Some(refused) = answer["results"].as_array().and_then(|r| r.iter().find(|i| i["status"] != 202)) {
                println!("  an item refused: {refused}");
            }
            if status == 200 && answer["accepted"].as_u64() != Some(o.ok) {
                println!("  the answer says {} accepted, its items {}", answer["accepted"], o.ok);
            }
            o
        }
    })
    .await;
    let drained = gateway.drain(&reqwest::Client::new()).await;
    let per_doc = |cpu: f64| 1000.0 * cpu / sent.ok.max(1) as f64;
    println!(
        "| {label} | {PARCELS} parcels, {:.1} MB | {:.2} | {:.0} | {} of {PARCELS}{} | {:.2} / {:.2} / {:.2} | {:.2} s | < {} s: {} |",
        size as f64 / 1e6,
        sent.elapsed.as_secs_f64(),
        sent.ok as f64 / sent.elapsed.as_secs_f64(),
        sent.ok,
        others(&sent),
        per_doc(sent.gateway_cpu),
        per_doc(sent.store_cpu),
        per_doc(sent.broker_cpu),
        drained.as_secs_f64(),
        target.as_secs(),
        verdict(sent.ok == PARCELS as u64 && sent.elapsed < target)
    );
    gateway.stop();
}

/// The document the Java peer is compared on (its README's): a beef export declaration of about
/// 5.5 KB.
const PEER_DOCUMENT: &str = "examples/customsDeclaration/valid/export-beef-road-AR-BR.json";

/// Single documents to `address` as the store comparison sends them: a closed loop
/// (`o.concurrency` in flight, `o.seconds`), then an open loop at half the rate it reached, each
/// measured with the CPU of `pid` and of the broker; a gateway's outbox drained after each.
async fn closed_and_half(address: &str, pid: &str, (closed, open): (Bodies, Bodies), o: &Options, gateway: Option<&Gateway>) -> (Outcome, Outcome) {
    let status = reqwest::Client::new();
    let closed = measured(pid, closed_loop(address, "/v1/documents", closed, o.concurrency, o.seconds, 202, one)).await;
    if let Some(g) = gateway {
        g.drain(&status).await;
    }
    let open = measured(pid, open_loop(address, open, closed.rate() / 2.0, o.seconds)).await;
    if let Some(g) = gateway {
        g.drain(&status).await;
    }
    (closed, open)
}

/// The reference Java service against the gateway on SQLite (issue 27): both loaded alike with
/// [`PEER_DOCUMENT`], a new UCR per request, beside the same broker; the peer warmed up 10 s
/// first. Documents/s, p99 at half that rate, CPU per document, and the ratio.
async fn peer_comparison(o: &Options, kafka: &Kafka, run: &str) {
    let text = std::fs::read_to_string(repo().join(PEER_DOCUMENT)).unwrap();
    let example: Value = serde_json::from_str(&text).unwrap();
    let mut doc = vary(&[example.clone()], 1, &format!("{run}J"), None);
    // Sent as the file is written (indented), as vary.lua sends it: only the UCR changes.
    let ucr = example["ucr"].as_str().expect("the example has a UCR");
    let at = text.find(&format!("\"{ucr}\"")).expect("the UCR is in the text") + 1;
    (doc[0].before, doc[0].after) = (text.as_bytes()[..at].to_vec(), text.as_bytes()[at + ucr.len()..].to_vec());
    let doc = Arc::new(doc);
    let of = |phase: &'static str| -> Bodies {
        let doc = doc.clone();
        Arc::new(move |i| body(&doc, phase, i))
    };
    let records = doc[0].deliveries.len();
    println!("\n### the Java peer and the gateway on SQLite: {PEER_DOCUMENT} ({} bytes, {records} records each), a new UCR per request", body(&doc, "X", 0).len());
    let run = uuid::Uuid::now_v7().simple().to_string();
    let gateway = Gateway::start(Some(&kafka.address), &format!("gwj{}.", &run[20..]), None).await;
    let (g_closed, mut g_open) = closed_and_half(&gateway.address, &gateway.pid(), (of("JG"), of("JH")), o, Some(&gateway)).await;
    gateway.stop();
    // The peer produces to as many topics as the gateway routes the document to.
    let topics = topics_of(&doc, &format!("peer{}.", &run[20..]));
    create_kafka_topics(&kafka.address, &topics).await;
    let peer = match JavaPeer::start(&kafka.address, &topics) {
        Ok(peer) => Some(peer),
        Err(why) => {
            println!("the Java peer's phase is skipped: {why}");
            None
        }
    };
    let measured_peer = match &peer {
        Some(peer) => {
            println!("{}", peer.started);
            let warm = closed_loop(&peer.address, "/v1/documents", of("JW"), o.concurrency, 10, 202, one).await;
            println!("Java peer warmed up: 10 s, {} in flight, {:.0} documents/s{}", o.concurrency, warm.rate(), others(&warm));
            Some(closed_and_half(&peer.address, &peer.pid(), (of("JP"), of("JQ")), o, None).await)
        }
        None => None,
    };
    if let Some(peer) = peer {
        peer.stop();
    }
    println!("| server | documents/s, closed loop, {} in flight | p99 at half that rate | CPU ms per document: server / Kafka / load generator |", o.concurrency);
    println!("|---|---|---|---|");
    let row = |name: &str, closed: &Outcome, open: &mut Outcome| {
        let per_doc = |cpu: f64| 1000.0 * cpu / closed.ok.max(1) as f64;
        println!(
            "| {name} | {:.0}{} | {} (of {} answered 202){} | {:.3} / {:.3} / {:.3} |",
            closed.rate(),
            others(closed),
            ms(open.percentile(0.99)),
            open.ok,
            others(open),
            per_doc(closed.gateway_cpu),
            per_doc(closed.broker_cpu),
            per_doc(closed.bench_cpu)
        );
    };
    row("gateway, SQLite (not warmed up: nothing in it compiles at run time)", &g_closed, &mut g_open);
    match measured_peer {
        Some((p_closed, mut p_open)) => {
            row("Java peer (Vert.x, kafka-clients; no store, no tokens, formats not asserted)", &p_closed, &mut p_open);
            let ratio = g_closed.rate() / p_closed.rate();
            println!("\ngateway on SQLite / Java peer: {ratio:.2} (target ≥ 0.5: {})", verdict(ratio >= 0.5));
        }
        None => println!("| Java peer | skipped | | |"),
    }
}

/// The reference Java service (`../shared/peers/java-vertx`, or VENTANILLA_PEER_JAVA; its
/// README.md): Vert.x, JSON Schema validation of the envelope and the payload, kafka-clients
/// (`acks=all`, idempotent); no store. It answers `POST /v1/documents` 202 once every record is
/// acknowledged, and checks no token.
struct JavaPeer {
    child: Child,
    address: String,
    /// The line it printed when it listened (its Java, event loops, schemas, topics).
    started: String,
}

impl JavaPeer {
    /// Builds the peer if needed ([`java_peer_jar`]) and starts it as its README says, on
    /// `brokers`, producing each document to every one of `topics` (which must exist). `Err`,
    /// saying why, when it cannot.
    fn start(brokers: &str, topics: &[String]) -> Result<JavaPeer, String> {
        let jar = java_peer_jar()?;
        let port = free_port();
        let mut child = Command::new("java")
            .args(["-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:+AlwaysPreTouch", "-jar"])
            .arg(&jar)
            .env("KAFKA_BOOTSTRAP", brokers)
            .env("PEER_SCHEMAS", repo().join("schemas"))
            .env("PEER_PORT", port.to_string())
            .env("PEER_TOPICS", topics.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("java does not start: {e}"))?;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !told && (line.starts_with("peer-java: listening") || line.starts_with("peer-java: could not start")) {
                    let _ = tx.send(line);
                    told = true;
                } else if line.contains("ERROR") || line.contains("Exception") {
                    eprintln!("peer: {line}");
                }
            }
        });
        let mut peer = JavaPeer { child, address: format!("http://127.0.0.1:{port}"), started: String::new() };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.starts_with("peer-java: listening") => {
                peer.started = line;
                Ok(peer)
            }
            Ok(line) => Err(line),
            Err(_) => Err("the Java peer exited, or did not listen within 120 s".into()),
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Asks it to stop (its producer flushes), and waits up to 15 s.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..150 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for JavaPeer {
    /// No peer is left running (after `stop`, the process has exited and this does nothing).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Java peer's jar: built with `mvn -q -B package` from a copy of its sources in
/// `~/.cache/ventanilla/peer-java` (its sources' folder is read-only), once, and again only when
/// the SHA-256 of its sources changes. `Err`, saying why, when Maven or Java is missing or the
/// build fails.
fn java_peer_jar() -> Result<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let sources = std::env::var_os("VENTANILLA_PEER_JAVA").map_or_else(|| repo().join("../shared/peers/java-vertx"), PathBuf::from);
    if !sources.join("pom.xml").is_file() {
        return Err(format!("no Java peer at {} (VENTANILLA_PEER_JAVA names another)", sources.display()));
    }
    for (tool, arg) in [("mvn", "-v"), ("java", "-version")] {
        if Command::new(tool).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
            return Err(format!("`{tool}` is not installed (Maven builds the peer, Java runs it)"));
        }
    }
    // pom.xml and every file under src/, in a stable order.
    let mut files = vec![PathBuf::from("pom.xml")];
    let mut dirs = vec![PathBuf::from("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(sources.join(&dir)).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = dir.join(entry.map_err(|e| e.to_string())?.file_name());
            if sources.join(&path).is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hash = Sha256::new();
    for f in &files {
        hash.update(f.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update(std::fs::read(sources.join(f)).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    let hash: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?
        .join("ventanilla/peer-java");
    let (stamp, jar) = (cache.join("SOURCES_SHA256"), cache.join("target/peer-java.jar"));
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash) && jar.is_file() {
        return Ok(jar);
    }
    println!("building the Java peer from {} into {} (mvn -q -B package)", sources.display(), cache.display());
    let _ = std::fs::remove_dir_all(&cache);
    for f in &files {
        let to = cache.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).map_err(|e| format!("{}: {e}", cache.display()))?;
        std::fs::copy(sources.join(f), &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    let built = Command::new("mvn")
        .args(["-q", "-B", "package"])
        .current_dir(&cache)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| format!("mvn does not run: {e}"))?;
    if !built.success() || !jar.is_file() {
        return Err(format!("`mvn -q -B package` failed in {} (its output above)", cache.display()));
    }
    std::fs::write(&stamp, &hash).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(jar)
}

// ------------------------------------------------------------------ fairness ----------------

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

/// The repository's region file with the demo participants' large quota taken out, so each
/// demo participant has its role's built-in quota, as a real participant would.
fn config_with_role_quotas() -> tempfile::TempDir {
    config_with(|text| {
        let start = text.find("[quotas.demo]").expect("the region file sets [quotas.demo]");
        let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
        format!("{}{}", &text[..start], &text[end..])
    })
}

/// A commercial invoice of about 990 KB (valid: 512-character descriptions of two-byte
/// letters), with its UCR.
fn large_invoice(ucr: &str) -> Bytes {
    let text = std::fs::read_to_string(repo().join("examples/commercialInvoice/valid/beef-road-AR-BR.json")).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["ucr"] = json!(ucr);
    let line = doc["payload"]["lines"][0].clone();
    let lines: Vec<Value> = (1..=800)
        .map(|n| {
            let mut l = line.clone();
            l["lineNumber"] = json!(n);
            l["description"] = json!("é".repeat(512));
            l
        })
        .collect();
    doc["payload"]["lines"] = json!(lines);
    Bytes::from(serde_json::to_vec(&doc).unwrap())
}

/// Submits 40 large invoices (UCRs `<ucr>-0` to `<ucr>-39`) as the honest trader; the agency
/// they are routed to first.
async fn submit_large_invoices(client: &reqwest::Client, address: &str, ucr: &str) -> String {
    let mut agency = String::new();
    for n in 0..40 {
        let r = client
            .post(format!("{address}/v1/documents"))
            .bearer_auth("demo-trader")
            .header("Content-Type", "application/json")
            .body(large_invoice(&format!("{ucr}-{n}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "a large document");
        let receipt: Value = r.json().await.unwrap();
        agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    }
    agency
}

/// Raw connections that send a request's head (and maybe a body's first byte) and then
/// neither send nor read anything more: held until dropped.
async fn held_connections(address: &str, n: usize, head: impl Fn(&str) -> String) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let host = address.trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(mut s) = tokio::net::TcpStream::connect(&host).await {
            let _ = s.set_nodelay(true);
            if s.write_all(head(&host).as_bytes()).await.is_ok() {
                held.push(s);
            }
        }
    }
    held
}

/// The honest participant: submissions at `rate` for `seconds`, latency from each request's
/// scheduled time (answers other than 202 are listed apart).
async fn honest(address: &str, docs: &Arc<Vec<Doc>>, phase: &str, rate: f64, seconds: u64) -> Outcome {
    let docs = docs.clone();
    let phase = phase.to_owned();
    open_loop(address, Arc::new(move |i| body(&docs, &phase, i)), rate, seconds).await
}

/// Issue 14's run: the honest participant's p99 quiet and under each attack, one gateway, the
/// demo participants at their roles' quotas; then resident memory with 100 stalled streams
/// over 1 MB documents.
async fn fairness(o: &Options, docs: Arc<Vec<Doc>>) {
    println!("\n## fairness: the honest participant (demo-trader) under each attack, embedded broker, roles' quotas");
    let config = config_with_role_quotas();
    *CONFIG_DIR.lock().unwrap() = Some(config.path().join("config"));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("fair{}.", &run[20..]);
    let gateway = Gateway::start(None, &prefix, None).await;
    let address = gateway.address.clone();
    let rate = 50.0;
    let client = reqwest::Client::new();
    // 20,000 status events of the honest participant's, so a poll that rescans costs.
    for b in 0..20 {
        let r = client
            .post(format!("{address}/v1/documents:batch"))
            .bearer_auth("demo-trader")
            .header("Content-Type", "application/json")
            .body(batch(&docs, "F", 1000, b))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "filling the store");
    }
    let mut rows = Vec::new();
    let mut report = |name: &str, mut o: Outcome, note: String| {
        let p99 = o.percentile(0.99);
        println!("{name}: honest p99 {} (p50 {}), {} answered 202{}; {note}", ms(p99), ms(o.percentile(0.5)), o.ok, others(&o));
        rows.push((name.to_owned(), p99));
    };
    let quiet = honest(&address, &docs, "Q", rate, o.seconds).await;
    report("quiet", quiet, String::new());

    // 1. Fifty long polls from the start of the events by a participant with no consignment,
    //    each asked again as soon as answered (after 50 ms when refused).
    let stop = Arc::new(AtomicBool::new(false));
    let polls: Vec<_> = (0..50)
        .map(|_| {
            let (client, stop, url) = (client.clone(), stop.clone(), format!("{address}/v1/consignments/events?after=0&wait=5s"));
            tokio::spawn(async move {
                let (mut served, mut refused) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).bearer_auth("demo-nsw-br").send().await.map(|r| r.status().as_u16()) {
                        Ok(200) => served += 1,
                        _ => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (served, refused)
            })
        })
        .collect();
    let under = honest(&address, &docs, "P", rate, o.seconds).await;
    stop.store(true, Ordering::Relaxed);
    let (mut served, mut refused) = (0, 0);
    for p in polls {
        let (s, r) = p.await.unwrap();
        served += s;
        refused += r;
    }
    report("1. 50 event polls from 0 by a participant without consignments", under, format!("the attacker: {served} polls answered, {refused} refused 429"));

    // 2. 530 connections with an agency's token, each a write's head with a 100,000-byte
    //    announced body and one byte of it.
    let held = held_connections(&address, 530, |host| {
        format!("POST /v1/acknowledgments HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer demo-br-border\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{")
    })
    .await;
    let under = honest(&address, &docs, "W", rate, o.seconds).await;
    report("2. 530 writes held open by an agency", under, format!("{} connections held", held.len()));
    drop(held);

    // 3. Streams of large documents whose reader does not read: 40 documents of about 990 KB,
    //    100 streams asked for by the agency they are routed to (its quota lets 8 stay open).
    let agency = submit_large_invoices(&client, &address, &format!("BIG-{}", run[24..].to_uppercase())).await;
    let stalled = held_connections(&address, 100, |host| {
        format!("GET /v1/agencies/{agency}/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer demo-{agency}\r\n\r\n")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let under = honest(&address, &docs, "S", rate, o.seconds).await;
    let (rss, peak) = rss_mib(&gateway.pid());
    report("3. 100 unread streams over 1 MB documents (8 open, the agency's quota)", under, format!("gateway RSS {rss:.0} MiB (peak {peak:.0})"));
    drop(stalled);

    // 4. 20,000 anonymous requests for a path that does not exist, pipelined on one connection.
    let pipelined = tokio::spawn({
        let address = address.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let host = address.trim_start_matches("http://").to_owned();
            let Ok(mut s) = tokio::net::TcpStream::connect(&host).await else { return 0 };
            let path = format!("/v1/nope-{}", "x".repeat(150));
            let one = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let (mut r, mut w) = s.split();
            let writing = async {
                for _ in 0..20_000 {
                    if w.write_all(one.as_bytes()).await.is_err() {
                        break;
                    }
                }
            };
            let reading = async {
                let (mut buf, mut answers, mut total) = (vec![0u8; 65536], 0usize, 0usize);
                while answers < 20_000 {
                    match tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {
                            total += n;
                            answers += buf[..n].windows(12).filter(|w| w == b"HTTP/1.1 404").count();
                        }
                        _ => break,
                    }
                }
                let _ = total;
                answers
            };
            let (_, answers) = tokio::join!(writing, reading);
            answers
        }
    });
    let under = honest(&address, &docs, "A", rate, o.seconds).await;
    let answered = pipelined.await.unwrap_or(0);
    report("4. 20,000 anonymous refusals pipelined on one connection", under, format!("{answered} answered 404"));
    gateway.stop();

    let quiet_p99 = rows[0].1;
    println!("\n| honest participant, {rate:.0} submissions/s | p99 | x quiet |");
    println!("|---|---|---|");
    for (name, p99) in &rows {
        println!("| {name} | {} | {:.2} |", ms(*p99), p99.as_secs_f64() / quiet_p99.as_secs_f64().max(1e-9));
    }

    // Memory: 100 streams that are never read over 1 MB documents, the demo quota letting
    // every one stay open.
    *CONFIG_DIR.lock().unwrap() = None;
    let prefix = format!("mem{}.", &run[20..]);
    let gateway = Gateway::start(None, &prefix, None).await;
    let address = gateway.address.clone();
    let agency = submit_large_invoices(&client, &address, &format!("MEM-{}", run[24..].to_uppercase())).await;
    let (before, _) = rss_mib(&gateway.pid());
    let stalled = held_connections(&address, 100, |host| {
        format!("GET /v1/agencies/{agency}/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer demo-{agency}\r\n\r\n")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (during, peak) = rss_mib(&gateway.pid());
    drop(stalled);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (after, _) = rss_mib(&gateway.pid());
    println!(
        "\nmemory, {} unread streams over 40 documents of about 990 KB (demo quota): RSS {before:.0} MiB before, {during:.0} MiB with them open (peak {peak:.0}), {after:.0} MiB after they closed",
        100
    );
    gateway.stop();
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

/// heaptrack's totals of one run: calls to allocation functions, and bytes allocated (from its
/// size histogram).
struct HeapTotals {
    calls: u64,
    bytes: u64,
}

fn heap_totals(file: &Path, histogram: &Path) -> HeapTotals {
    let out = Command::new("heaptrack_print").arg("-f").arg(file).args(["-a", "0", "-p", "0", "-T", "0"]).arg("-H").arg(histogram).output().expect("heaptrack_print runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let calls = text
        .lines()
        .find_map(|l| l.strip_prefix("calls to allocation functions: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("heaptrack_print gave no total of calls:\n{text}"));
    // Each line of the histogram: a size in bytes and how many allocations of that size.
    let bytes = std::fs::read_to_string(histogram)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(f.next()?.parse::<u64>().ok()? * f.next()?.parse::<u64>().ok()?)
        })
        .sum();
    HeapTotals { calls, bytes }
}

/// The allocations one document costs (`--allocations N`, item 3 of issue 27): the release
/// gateway on SQLite and Apache Kafka, run under heaptrack (every call to `malloc`, `calloc`,
/// `realloc` and the aligned ones, librdkafka's and SQLite's included) twice, with N/5 and N
/// single documents each drained to the broker; per document, the difference of the two runs'
/// totals over the difference of their documents, so the start, the stop and the idle polling
/// cancel out. Then the call sites that made the most of those allocations (heaptrack's diff of
/// the two runs). heaptrack slows every allocation: the figures are counts, not speeds.
async fn allocations(n: usize, o: &Options, docs: Arc<Vec<Doc>>) {
    println!("\n## allocations per document (heaptrack)");
    if Command::new("heaptrack").arg("--version").stdout(Stdio::null()).status().is_err() {
        println!("skipped: heaptrack is not installed (apt-get install heaptrack)");
        return;
    }
    let Some(kafka) = Kafka::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("VENTANILLA_BENCH_KEEP").is_some() {
        println!("heaptrack's files are kept in {}", dir.path().display());
    }
    let mut runs = Vec::new();
    for (k, count) in [n / 5, n].into_iter().enumerate() {
        let out = dir.path().join(format!("run{k}"));
        *WRAPPER.lock().unwrap() = Some(vec!["heaptrack".into(), "-o".into(), out.display().to_string()]);
        let gateway = Gateway::start(Some(&kafka.address), &format!("alloc{k}{}.", std::process::id()), None).await;
        let bodies: Bodies = {
            let docs = docs.clone();
            Arc::new(move |i| body(&docs, &format!("A{k}"), i))
        };
        let ok = submit_exactly(&gateway.address, bodies, count, o.concurrency.min(16)).await;
        gateway.drain(&reqwest::Client::new()).await;
        gateway.stop();
        *WRAPPER.lock().unwrap() = None;
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("run{k}"))))
            .expect("heaptrack wrote its file");
        let totals = heap_totals(&file, &dir.path().join(format!("histogram{k}")));
        println!("run with {ok} documents: {} calls to allocation functions, {:.1} MB allocated", totals.calls, totals.bytes as f64 / 1e6);
        runs.push((ok, totals, file));
    }
    let ((n1, a, small), (n2, b, large)) = (&runs[0], &runs[1]);
    let docs_between = (n2 - n1).max(1) as f64;
    let mean_body = docs.iter().map(|d| d.before.len() + d.ucr.len() + d.after.len() + 4).sum::<usize>() as f64 / docs.len() as f64;
    let bytes = (b.bytes as f64 - a.bytes as f64) / docs_between;
    println!(
        "per document: **{:.0} allocations**, {:.0} KB allocated ({:.1} times the mean body of {:.1} KB)",
        (b.calls as f64 - a.calls as f64) / docs_between,
        bytes / 1e3,
        bytes / mean_body,
        mean_body / 1e3
    );
    // heaptrack's allocation stacks of the difference between the runs, demangled.
    let stacks = dir.path().join("stacks");
    let out = Command::new("heaptrack_print").arg("-f").arg(large).arg("-d").arg(small).args(["-a", "0", "-p", "0", "-T", "0", "--flamegraph-cost-type", "allocations", "-F"]).arg(&stacks).output().expect("heaptrack_print runs");
    assert!(out.status.success(), "heaptrack_print -F failed: {}", String::from_utf8_lossy(&out.stderr));
    let demangled = Command::new("c++filt").stdin(std::fs::File::open(&stacks).unwrap()).output().map(|o| o.stdout).unwrap_or_default();
    let (by_part, by_function) = allocation_sites(&String::from_utf8_lossy(&demangled));
    println!("\nby part (the innermost library frame of each allocation's stack):");
    for (part, count) in by_part.iter().take(10) {
        println!("- {part}: {:.0} per document", *count as f64 / docs_between);
    }
    println!("\nby the gateway's function nearest each allocation (the 15 that allocate most):");
    for (function, count) in by_function.iter().take(15) {
        println!("- {:.1} per document: {function}", *count as f64 / docs_between);
    }
    if std::env::var_os("VENTANILLA_BENCH_KEEP").is_some() {
        let _ = dir.keep();
    }
}

/// A stack frame's name without Rust's legacy escapes and hash.
fn frame_name(frame: &str) -> String {
    let mut f = frame.replace("$LT$", "<").replace("$GT$", ">").replace("$u20$", " ").replace("$RF$", "&").replace("$C$", ",").replace("$u7b$", "{").replace("$u7d$", "}").replace("..", "::");
    while let Some(at) = f.find("::h").filter(|at| f[at + 3..].chars().take(16).filter(char::is_ascii_hexdigit).count() == 16) {
        f.replace_range(at..at + 19, "");
    }
    // v0 names carry their crate's disambiguator: `alloc[fdfd2bd8633a6659]::...`.
    let mut clean = String::with_capacity(f.len());
    let mut skip = false;
    for c in f.chars() {
        match c {
            '[' => skip = true,
            ']' if skip => skip = false,
            _ if !skip => clean.push(c),
            _ => {}
        }
    }
    clean.chars().take(150).collect()
}

/// Allocations of flame-graph stacks (`frame;frame;...;frame COUNT`, the root first), counted
/// by the part of the program that made them (the innermost frame of a known library, or the
/// gateway itself) and by the gateway's own function nearest the allocation; each list the
/// largest first.
fn allocation_sites(stacks: &str) -> (Vec<(String, u64)>, Vec<(String, u64)>) {
    const PARTS: [(&str, &str); 12] = [
        ("sqlite3", "SQLite"),
        ("rd_kafka", "librdkafka"),
        ("LZ4", "librdkafka (LZ4)"),
        ("jsonschema", "jsonschema (validation)"),
        ("serde_json::ser", "serde_json (writing)"),
        ("serde_json", "serde_json (parsing, Value)"),
        ("referencing", "jsonschema (validation)"),
        ("ed25519", "receipt signing"),
        ("actix_http", "actix-web (HTTP)"),
        ("actix_web", "actix-web (HTTP)"),
        ("rusqlite", "SQLite (rusqlite)"),
        ("tracing", "tracing (logs)"),
    ];
    let mut parts: HashMap<String, u64> = HashMap::new();
    let mut functions: HashMap<String, u64> = HashMap::new();
    for line in stacks.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else { continue };
        let Ok(count) = count.parse::<u64>() else { continue };
        let frames: Vec<&str> = stack.split(';').collect();
        let part = frames
            .iter()
            .rev()
            .find_map(|f| PARTS.iter().find(|(needle, _)| f.contains(needle)).map(|(_, part)| *part).or_else(|| f.contains("ventanilla").then_some("the gateway's own code")))
            .unwrap_or("other (std, tokio, libc)");
        *parts.entry(part.to_owned()).or_default() += count;
        if let Some(f) = frames.iter().rev().find(|f| f.contains("ventanilla::") || f.contains("ventanilla<")) {
            *functions.entry(frame_name(f)).or_default() += count;
        }
    }
    let sorted = |m: HashMap<String, u64>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1));
        v
    };
    (sorted(parts), sorted(functions))
}

fn deliveries_per_doc(docs: &[Doc]) -> f64 {
    docs.iter().map(|d| d.deliveries.len()).sum::<usize>() as f64 / docs.len() as f64
}

// ------------------------------------------------------------------ release-time indicators ----

/// The indicators run: `n` consignments' release-time facts written straight into a fresh
/// SQLite store through the store's own `save_release_times` (what every change writes), a
/// gateway started on it, then the figures asked for again and again with varied intervals,
/// segments, trends and readers, each request timed from the client. The first request waits
/// for the gateway's index (loading since the start) and is reported apart.
async fn indicators(n: usize, o: &Options) {
    use ventanilla::store::{AgencyReleaseTimes, ConsignmentReleaseTimes, DocumentDims, Store};
    const HOUR: i64 = 3_600_000;
    println!("\n## Release-time indicators over {n} consignments");
    let data = tempfile::tempdir().unwrap();
    let t = Instant::now();
    {
        let store: Arc<dyn Store> = Arc::new(ventanilla::store::sqlite::SqliteStore::open(data.path()).unwrap());
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let corridors = [("AR", "BR", "BRURG"), ("BR", "AR", "ARPSL"), ("UY", "AR", "ARCOL"), ("AR", "UY", "UYFMO"), ("BR", "UY", "UYRVY")];
        let modes = ["road", "road", "sea", "rail", "air"];
        let chapters = ["02", "10", "84", "87", "30", "47"];
        let channels = ["without", "without", "without", "with-hold", "with-query"];
        let kinds = ["customs", "sanitary", "border"];
        let end = ventanilla::clock::now_millis();
        let mut written = 0;
        while written < n {
            let chunk = 20_000.min(n - written);
            let mut rows = Vec::with_capacity(chunk);
            for i in written..written + chunk {
                let (origin, destination, post) = corridors[(next() % 5) as usize];
                let lodged = end - (next() % (30 * 24 * HOUR as u64)) as i64;
                let arrived = lodged - 8 * HOUR + (next() % (24 * HOUR as u64)) as i64;
                let released = (next() % 10 != 0).then(|| lodged.max(arrived) + (next() % (48 * HOUR as u64)) as i64);
                let owner = if next() % 50 == 0 { "demo-trader".to_owned() } else { format!("trader-{:03}", next() % 300) };
                let c = ConsignmentReleaseTimes {
                    ucr: ventanilla::domain::Ucr::parse(&format!("BENCH-{i:08}")).unwrap(),
                    owner,
                    lodged_at: lodged,
                    arrived_at: Some(arrived),
                    released_at: released,
                    decided_at: released,
                    outcome: if released.is_some() { "released".into() } else { "open".into() },
                    document_type: "customsDeclaration".into(),
                    origin: origin.into(),
                    destination: destination.into(),
                    dims: DocumentDims {
                        transport_mode: Some(modes[(next() % 5) as usize].into()),
                        hs_chapter: Some(chapters[(next() % 6) as usize].into()),
                        border_post: Some(post.into()),
                    },
                    channel: channels[(next() % 5) as usize].into(),
                    hold_ms: (next() % 3 == 0) as i64 * (next() % (6 * HOUR as u64)) as i64,
                    query_trader_ms: (next() % 10 == 0) as i64 * (next() % (4 * HOUR as u64)) as i64,
                    query_agency_ms: (next() % 10 == 0) as i64 * (next() % (3 * HOUR as u64)) as i64,
                    risk_channel: ["green", "green", "green", "yellow", "red", "unselected"][(next() % 6) as usize].into(),
                };
                let parts: Vec<AgencyReleaseTimes> = kinds
                    .iter()
                    .map(|kind| {
                        let country = destination.to_lowercase();
                        let first = lodged + (next() % (2 * HOUR as u64)) as i64;
                        AgencyReleaseTimes {
                            agency: ventanilla::domain::AgencyId::parse(&format!("{country}-{kind}")).unwrap(),
                            routed_at: lodged,
                            first_answer_at: Some(first),
                            decided_at: released.map(|r| r.min(first + (next() % (24 * HOUR as u64)) as i64)),
                            decision: released.map(|_| "released".to_owned()),
                            hold_ms: 0,
                            query_trader_ms: 0,
                            query_agency_ms: 0,
                        }
                    })
                    .collect();
                rows.push((c, parts));
            }
            store
                .write_with(Vec::new(), move |l| {
                    for (c, parts) in &rows {
                        l.save_release_times(c, parts)?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
            written += chunk;
        }
    }
    println!("facts of {n} consignments (3 agencies each) written in {:.1} s", t.elapsed().as_secs_f64());
    let gw = Gateway::start_on(data, None, "bench.", None).await;
    let client = reqwest::Client::new();
    let ask = |query: String, token: &'static str| {
        let (client, address) = (client.clone(), gw.address.clone());
        async move {
            let start = Instant::now();
            let r = client.get(format!("{address}/v1/indicators/release-times?{query}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{query}");
            let body: Value = r.json().await.unwrap();
            (start.elapsed(), body)
        }
    };
    let (load, first) = ask("interval=arrival-to-release".into(), "demo-operator").await;
    let (rss, peak) = rss_mib(&gw.pid());
    println!("first request (waits for the gateway's index of {} consignments, loading since the start): {:.0} ms; gateway memory {rss:.0} MiB (peak {peak:.0} MiB)",
        first["overall"]["count"], load.as_secs_f64() * 1000.0);
    let from = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 31 * 24 * HOUR);
    let week = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 7 * 24 * HOUR);
    let asks: Vec<(&str, String, &'static str)> = vec![
        ("all, arrival to release", format!("from={from}"), "demo-operator"),
        ("by corridor and mode", format!("from={from}&groupBy=corridor,transportMode"), "demo-operator"),
        ("by agency, decision", format!("from={from}&interval=agency-decision&groupBy=agency"), "demo-operator"),
        ("by 4 segments", format!("from={from}&interval=lodgement-to-release&groupBy=corridor,hsChapter,channel,preArrival"), "demo-operator"),
        ("trend per day by mode", format!("from={from}&groupBy=transportMode&trend=day"), "demo-operator"),
        ("last week, by border post", format!("from={week}&groupBy=borderPost"), "demo-operator"),
        ("a trader's own", format!("from={from}&groupBy=corridor"), "demo-trader"),
        ("an agency's own part", format!("from={from}&interval=agency-first-answer&groupBy=agencyKind"), "demo-br-customs"),
    ];
    let rounds = (o.seconds as usize * 3).max(10);
    let mut all = Latencies::default();
    println!("\n| request | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|");
    for (name, query, token) in &asks {
        let mut l = Latencies::default();
        for _ in 0..rounds {
            let (took, _) = ask(query.clone(), token).await;
            l.push(took);
            all.push(took);
        }
        println!("| {name} | {:.0} | {:.0} | {:.0} |", millis(l.percentile(0.5)), millis(l.percentile(0.95)), millis(l.percentile(1.0)));
    }
    let p95 = all.percentile(0.95);
    println!("\nall {} requests: p50 {:.0} ms, p95 {:.0} ms (target 200 ms: {:.2} of it), max {:.0} ms",
        all.len(), millis(all.percentile(0.5)), millis(p95), millis(p95) / 200.0, millis(all.percentile(1.0)));
    gw.stop();
}

/// Request latencies of the indicators run.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    /// Nearest rank.
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.0.get(i).copied().unwrap_or_default()
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Risk profiling's CPU per document, alone: the same work `Gateway::prepare` adds (the facts,
/// then each routed agency's selection, serialized), over the corpus, on this thread.
fn risk_cost(docs: &[Doc], seconds: u64) {
    let text = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    let region: ventanilla::config::RegionConfig = toml::from_str(&text).unwrap();
    let risk = ventanilla::risk::Risk::new(&region).expect("the shipped risk settings compile");
    let agencies: Vec<Vec<ventanilla::domain::AgencyId>> = docs
        .iter()
        .map(|d| d.deliveries.iter().filter_map(|(t, _)| t.strip_prefix("agency.").and_then(|a| ventanilla::domain::AgencyId::parse(a).ok())).collect())
        .collect();
    println!("\n## risk profiling's cost (the shipped rules and budgets, {} rules)", risk.profile().rules().len());
    selection_cost(&risk, docs, &agencies, seconds, "rules alone");
    // With a live model, trained on 50,000 planted findings (its histories: 200 sellers).
    let planted = ventanilla::risk::model::planted(50_000, 7);
    let examples: Vec<ventanilla::risk::model::Example> =
        planted.iter().map(|(f, y, at)| ventanilla::risk::model::Example { facts: f, irregular: *y, at: *at }).collect();
    let (model, histories) = ventanilla::risk::model::train(&examples, 0.1, None).expect("a model trains on planted findings");
    risk.put_model(Some((std::sync::Arc::new(model), 1)), histories);
    selection_cost(&risk, docs, &agencies, seconds, "rules and a live model");
}

/// Runs `risk`'s facts and selections over `docs` for `seconds`, and prints their CPU cost.
fn selection_cost(risk: &ventanilla::risk::Risk, docs: &[Doc], agencies: &[Vec<ventanilla::domain::AgencyId>], seconds: u64, label: &str) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (mut documents, mut selections, mut selected) = (0u64, 0u64, 0u64);
    let (cpu0, started) = (cpu_seconds("self"), Instant::now());
    while started.elapsed() < Duration::from_secs(seconds) {
        for (d, agencies) in docs.iter().zip(agencies) {
            let e = &d.envelope;
            let facts = risk.facts(&d.document_type, &text(&e["origin"]), &text(&e["destination"]), &e["payload"]);
            for a in agencies {
                let s = risk.select(a, &facts);
                selected += u64::from(s.channel != ventanilla::risk::Channel::Green);
                std::hint::black_box(serde_json::to_string(&s).unwrap());
                selections += 1;
            }
            documents += 1;
        }
    }
    let cpu = cpu_seconds("self") - cpu0;
    println!(
        "{label}: {documents} documents, {selections} selections ({:.1}% not green) in {:.1} s of CPU: **{:.1} µs of CPU per document** ({:.1} per selection); target at most 50",
        100.0 * selected as f64 / selections.max(1) as f64,
        cpu,
        1e6 * cpu / documents.max(1) as f64,
        1e6 * cpu / selections.max(1) as f64
    );
}

/// Trains on `n` planted findings (`ventanilla::risk::model::planted`): the product's logistic
/// regression, a decision tree and gradient-boosted trees (smartcore's regression trees fitted
/// round after round to the log loss's gradient: smartcore has no boosting of its own) on the
/// same features, each judged on the most recent fifth at a 5% budget. smartcore's random forest
/// gives no probabilities, so it cannot rank documents within a budget: it is timed, not judged.
fn risk_training(n: usize) {
    use smartcore::linalg::basic::arrays::Array;
    use smartcore::linalg::basic::matrix::DenseMatrix;
    use ventanilla::risk::model;
    println!("\n## risk model training on {n} planted findings (one seller in ten undervalues and is found irregular half the time)");
    let planted = model::planted(n, 11);
    let examples: Vec<model::Example> = planted.iter().map(|(f, y, at)| model::Example { facts: f, irregular: *y, at: *at }).collect();
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let (m, _) = model::train(&examples, 0.05, None).expect("trains");
    println!(
        "logistic regression (the product's, features included): {:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3} on {} held back, base rate {:.3} ({:.1}x); target under 60 s",
        t0.elapsed().as_secs_f64(), cpu_seconds("self") - cpu0, m.validation.precision_at_budget, m.validation.held_back, m.validation.base_rate,
        m.validation.precision_at_budget / m.validation.base_rate.max(1e-9)
    );
    let (x, y, _) = model::online_features(&examples);
    let split = (x.len() as f64 * (1.0 - model::HELD_BACK)).round() as usize;
    let rows = |r: &[[f64; 8]]| DenseMatrix::from_2d_vec(&r.iter().map(|v| v.to_vec()).collect::<Vec<_>>()).unwrap();
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let tree = smartcore::tree::decision_tree_classifier::DecisionTreeClassifier::fit(
        &rows(&x[..split]),
        &y[..split].to_vec(),
        smartcore::tree::decision_tree_classifier::DecisionTreeClassifierParameters::default().with_max_depth(8),
    )
    .unwrap();
    let fitted = t0.elapsed().as_secs_f64();
    let p = tree.predict_proba(&rows(&x[split..])).unwrap();
    let scored: Vec<(f64, u32)> = (0..x.len() - split).map(|i| (*p.get((i, 1)), y[split + i])).collect();
    println!(
        "decision tree, depth 8 (the same features): {fitted:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3}",
        cpu_seconds("self") - cpu0,
        model::precision_of_ranking(scored, 0.05)
    );
    // Gradient boosting on the log loss: each round fits a shallow regression tree to the
    // residuals y - p of the score so far, and adds a share of it.
    let (rounds, depth, rate) = (50, 3u16, 0.3);
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let train = rows(&x[..split]);
    let labels: Vec<f64> = y[..split].iter().map(|&v| f64::from(v)).collect();
    let base = labels.iter().sum::<f64>() / labels.len().max(1) as f64;
    let prior = (base / (1.0 - base)).ln();
    let mut score = vec![prior; split];
    let mut trees = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let residuals: Vec<f64> = score.iter().zip(&labels).map(|(s, l)| l - 1.0 / (1.0 + (-s).exp())).collect();
        let tree = smartcore::tree::decision_tree_regressor::DecisionTreeRegressor::fit(
            &train,
            &residuals,
            smartcore::tree::decision_tree_regressor::DecisionTreeRegressorParameters::default().with_max_depth(depth).with_min_samples_leaf(50),
        )
        .unwrap();
        for (s, step) in score.iter_mut().zip(tree.predict(&train).unwrap()) {
            *s += rate * step;
        }
        trees.push(tree);
    }
    let fitted = t0.elapsed().as_secs_f64();
    let held = rows(&x[split..]);
    let mut held_score = vec![prior; x.len() - split];
    for tree in &trees {
        for (s, step) in held_score.iter_mut().zip(tree.predict(&held).unwrap()) {
            *s += rate * step;
        }
    }
    let scored: Vec<(f64, u32)> = held_score.into_iter().zip(y[split..].iter().copied()).collect();
    println!(
        "gradient-boosted trees, {rounds} rounds of depth {depth}, learning rate {rate} (the same features): {fitted:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3}",
        cpu_seconds("self") - cpu0,
        model::precision_of_ranking(scored, 0.05)
    );
    let k = split.min(200_000);
    let t0 = Instant::now();
    let _forest = smartcore::ensemble::random_forest_classifier::RandomForestClassifier::fit(
        &rows(&x[..k]),
        &y[..k].to_vec(),
        smartcore::ensemble::random_forest_classifier::RandomForestClassifierParameters::default().with_n_trees(50).with_max_depth(8),
    )
    .unwrap();
    println!("random forest, 50 trees of depth 8, on the first {k}: {:.1} s (classes only: no ranking within a budget)", t0.elapsed().as_secs_f64());
}

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
