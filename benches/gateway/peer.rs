//! The Java peer (`../shared/peers/`) against the gateway on the same machine, broker and
//! documents: closed loop, and open loop at half the maximum rate.

use super::*;

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
pub(super) async fn peer_comparison(o: &Options, kafka: &Kafka, run: &str) {
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
