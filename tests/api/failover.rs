//! Three `ventanilla serve` processes on one PostgreSQL database and one Kafka broker, a client
//! spreading submissions and answers over them, one gateway SIGKILLed mid-stream and started
//! again later: every 202 reaches every agency topic its receipt named (duplicates allowed and
//! counted, each with its `ce_id`), an Idempotency-Key sent again to another gateway never gets
//! a second document, every answered consignment ends in the state its answers imply, and the
//! audit log verifies.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{await_deliveries, example, postgres_database, spawn_binary_on_store, test_brokers};

/// What the client saw, per Idempotency-Key (one per document it meant to send).
#[derive(Default)]
struct Seen {
    /// Key -> every documentId a 202 answered for it (one, if the gateways agree).
    receipts: HashMap<String, HashSet<String>>,
    /// Key -> the agency topics of its receipt.
    topics: HashMap<String, Vec<String>>,
    /// Requests that did not reach a gateway or got no answer (sent again elsewhere).
    retried: usize,
}

/// Every document accepted, with its topics, after checking that no key got two documents; and
/// how many requests were sent again to another gateway.
fn accepted_once(seen: &Mutex<Seen>) -> (Vec<crate::helpers::Accepted>, usize) {
    let s = seen.lock().unwrap();
    for (key, ids) in &s.receipts {
        assert_eq!(ids.len(), 1, "the key {key} got {} documents: {ids:?}", ids.len());
    }
    let accepted = s.receipts.iter().map(|(key, ids)| (ids.iter().next().unwrap().clone(), s.topics[key].clone())).collect();
    (accepted, s.retried)
}

/// Sends each document, with its Idempotency-Key, to the gateways in turn; on a refused
/// connection or a broken answer, the same document and key go to the next gateway.
fn client(addresses: Arc<Mutex<Vec<String>>>, worker: usize, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let template = example("commercialInvoice/valid/beef-road-AR-BR.json");
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build().unwrap();
        let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
        let mut turn = worker;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let key = format!("FO-{}-{worker}-{n:05}", &run[run.len() - 6..]);
            let mut body = template.clone();
            body["ucr"] = json!(key);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(tokio::time::Instant::now() < deadline, "no gateway took {key} within 60 s");
                turn += 1;
                let address = { let a = addresses.lock().unwrap(); a[turn % a.len()].clone() };
                let sent = http.post(format!("{address}/v1/documents")).bearer_auth("demo-trader").header("Idempotency-Key", &key).json(&body).send().await;
                let answer = match sent {
                    Ok(r) if r.status() == 202 => r.json::<Value>().await.ok(),
                    Ok(r) => panic!("a submission was refused: {} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(_) => None,
                };
                match answer {
                    Some(receipt) => {
                        let mut s = seen.lock().unwrap();
                        s.receipts.entry(key.clone()).or_default().insert(receipt["documentId"].as_str().unwrap().to_owned());
                        let topics = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
                        s.topics.insert(key.clone(), topics);
                        break;
                    }
                    None => {
                        seen.lock().unwrap().retried += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    })
}

/// Three gateway processes on one fresh PostgreSQL database and the test broker, under the load
/// of four clients; the processes are killed however the test ends (a failed assertion included).
struct UnderLoad {
    store: String,
    brokers: String,
    prefix: String,
    gateways: Vec<(std::process::Child, String, std::sync::mpsc::Receiver<String>)>,
    /// Where the clients send: a restarted gateway's new address replaces the old one.
    addresses: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl UnderLoad {
    async fn start(label: &str) -> UnderLoad {
        let (store, brokers) = (postgres_database().await, test_brokers());
        let prefix = format!("{label}{}.", uuid::Uuid::now_v7().simple());
        let gateways: Vec<_> = (0..3).map(|_| spawn_binary_on_store(&store, &prefix, &brokers)).collect();
        let addresses = Arc::new(Mutex::new(gateways.iter().map(|g| g.1.clone()).collect::<Vec<_>>()));
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Seen::default())));
        let clients = (0..4).map(|w| client(addresses.clone(), w, stop.clone(), seen.clone())).collect();
        UnderLoad { store, brokers, prefix, gateways, addresses, stop, seen, clients }
    }

    /// Starts gateway `i` again on the same store: a new process, as its service manager would.
    fn restart(&mut self, i: usize) {
        let restarted = spawn_binary_on_store(&self.store, &self.prefix, &self.brokers);
        self.addresses.lock().unwrap()[i] = restarted.1.clone();
        self.gateways[i] = restarted;
    }

    /// Stops the load and waits for its clients (each panics on a refused submission); every
    /// document accepted, once, and the requests sent again to another gateway.
    async fn finish(&mut self) -> (Vec<crate::helpers::Accepted>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for c in std::mem::take(&mut self.clients) {
            c.await.expect("no submission was refused or lost");
        }
        accepted_once(&self.seen)
    }
}

impl Drop for UnderLoad {
    fn drop(&mut self) {
        for g in &mut self.gateways {
            let _ = g.0.kill();
            let _ = g.0.wait();
        }
    }
}

#[tokio::test]
async fn a_gateway_of_three_killed_mid_stream_loses_nothing_and_no_key_gets_two_documents() {
    let mut load = UnderLoad::start("f").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = load.seen.lock().unwrap().receipts.len();
    load.gateways[1].0.kill().expect("SIGKILL");
    load.gateways[1].0.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.restart(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (accepted, retried) = load.finish().await;
    assert!(before > 0 && accepted.len() > before, "documents were accepted before ({before}) and after the kill ({})", accepted.len());

    // Every document reaches its agencies' topics, those the killed gateway had claimed once its
    // leases ran out (45 s). Only then do the agencies answer, as they would: an answer to a
    // delivery still in the outbox takes it out (the agency has the document, `outbox.rs`), so
    // answering from the receipts first would keep records off the topics by design.
    eprintln!("failover: {} documents accepted; waiting for the deliveries", accepted.len());
    let (deliveries, duplicates) = await_deliveries(&load.brokers, &accepted, Duration::from_secs(120)).await;

    // Answers over the three gateways: every fifth consignment released by each agency.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let addresses = load.addresses.lock().unwrap().clone();
    let mut released = Vec::new();
    for (i, (doc, topics)) in accepted.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        for topic in topics {
            let agency = topic.rsplit('.').next().unwrap();
            let ack = json!({"documentId": doc, "agency": agency, "status": "released"});
            let r = http.post(format!("{}/v1/acknowledgments", addresses[i % 3])).bearer_auth(format!("demo-{agency}")).json(&ack).send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        }
        released.push(doc.clone());
    }


    // Each consignment's state, as any gateway tells it.
    let mut states: HashMap<String, usize> = HashMap::new();
    for (i, (doc, _)) in accepted.iter().enumerate() {
        let ucr = load.seen.lock().unwrap().receipts.iter().find(|(_, ids)| ids.contains(doc)).map(|(k, _)| k.clone()).unwrap();
        let view: Value = http.get(format!("{}/v1/consignments/{ucr}", addresses[i % 3])).bearer_auth("demo-operator").send().await.unwrap().json().await.unwrap();
        let state = view["state"].as_str().unwrap().to_owned();
        let expected = if released.contains(doc) { "released" } else { "submitted" };
        assert_eq!(state, expected, "{ucr}: {view:#}");
        *states.entry(state).or_default() += 1;
    }

    let out = crate::support::cli().args(["audit", "verify", "--store", &load.store]).output().unwrap();
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(out.status.success(), "audit verify: {verdict} {}", String::from_utf8_lossy(&out.stderr));
    println!(
        "failover: {} documents accepted by three gateways ({before} before the kill), {retried} requests sent again to \
         another gateway, 0 keys with two documents; {deliveries} deliveries, all delivered, {duplicates} duplicate records \
         (same ce_id); states {states:?}; {verdict}",
        accepted.len()
    );
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_no_request_and_each_gateway_stops_promptly() {
    let mut load = UnderLoad::start("r").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // SIGTERM each gateway in turn under load, as a rolling upgrade does, and start it again.
    let mut stops = Vec::new();
    for i in 0..3 {
        let pid = load.gateways[i].0.id().to_string();
        let asked = std::time::Instant::now();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let child = &mut load.gateways[i].0;
        let exited = loop {
            if let Some(code) = child.try_wait().unwrap() {
                break code;
            }
            assert!(asked.elapsed() < Duration::from_secs(30), "gateway {i} still running 30 s after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(exited.success(), "a SIGTERM is an orderly stop: {exited:?}");
        stops.push(asked.elapsed());
        assert!(asked.elapsed() < Duration::from_secs(5), "gateway {i} took {:?} to stop under load (the bound is 5 s)", asked.elapsed());
        if std::env::var_os("VENTANILLA_TEST_STOP_LOG").is_some() {
            for line in load.gateways[i].2.try_iter() {
                println!("gateway {i}: {line}");
            }
        }
        load.restart(i);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (accepted, retried) = load.finish().await;
    let (deliveries, duplicates) = await_deliveries(&load.brokers, &accepted, Duration::from_secs(120)).await;
    println!(
        "rolling restart: {} documents accepted while each of three gateways was stopped (SIGTERM) and started again; \
         {retried} requests sent again to another gateway; {deliveries} deliveries, all delivered, {duplicates} duplicate \
         records; SIGTERM to exit: {}",
        accepted.len(),
        stops.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );
}
