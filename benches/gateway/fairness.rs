//! `--fairness`: an honest participant's latency while another floods the gateway with large
//! documents, held connections and slow bodies.

use super::*;

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
pub(super) async fn fairness(o: &Options, docs: Arc<Vec<Doc>>) {
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
