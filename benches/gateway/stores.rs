//! `--compare-stores`: SQLite against PostgreSQL, one gateway and two on one PostgreSQL, single
//! documents, batches and de minimis parcels, with what each document cost each store and the
//! targets met or not.

use super::*;

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
///    of each part, and the ratios against the targets;
/// 2. what one document costs the store, with one gateway (`print_costs`);
/// 3. [`PARCELS`] e-commerce parcels in one NDJSON batch, on each store (`parcels_batch`);
/// 4. the reference Java service against the gateway on SQLite, the same document
///    (`peer_comparison`).
pub(super) async fn compare_stores(o: &Options, docs: Arc<Vec<Doc>>) {
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
