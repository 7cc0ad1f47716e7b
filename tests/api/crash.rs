//! SIGKILL in the middle of a stream of submissions, then a restart on the same store: every
//! document that got a 202 reaches every agency topic it was routed to. Duplicates (a record
//! published but not yet marked when the process died) are counted and carry the same `ce_id`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

use crate::helpers::{consumer, example, spawn_binary, test_brokers};

/// A document id that got a 202, and the agency topics its receipt named.
type Accepted = (String, Vec<String>);

#[tokio::test]
async fn sigkill_mid_stream_loses_no_accepted_document() {
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("k{}.", uuid::Uuid::now_v7().simple());
    let brokers = test_brokers();
    let (mut child, address, _logs) = spawn_binary(data.path(), &prefix, &brokers);

    let accepted: Arc<Mutex<Vec<Accepted>>> = Arc::default();
    let template = example("commercialInvoice/valid/beef-road-AR-BR.json");
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (accepted, address, template) = (accepted.clone(), address.clone(), template.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..10_000 {
                let mut body = template.clone();
                body["ucr"] = json!(format!("CRASH-{worker}-{i:05}"));
                let Ok(r) = client.post(format!("{address}/v1/documents")).bearer_auth("demo-trader").json(&body).send().await else {
                    break; // the gateway is gone
                };
                if r.status() != 202 {
                    continue;
                }
                let Ok(receipt) = r.json::<Value>().await else { break };
                let topics = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
                accepted.lock().unwrap().push((receipt["documentId"].as_str().unwrap().to_owned(), topics));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() > 10, "documents were accepted before the crash ({})", accepted.len());

    // Restart on the same store: it re-publishes what was not confirmed.
    let (mut child, _address, _logs) = spawn_binary(data.path(), &prefix, &brokers);

    let mut expected: HashSet<(String, String)> =
        accepted.iter().flat_map(|(d, ts)| ts.iter().map(move |t| (t.clone(), d.clone()))).collect();
    let total = expected.len();
    let topics: HashSet<String> = expected.iter().map(|(t, _)| t.clone()).collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let c = consumer(&brokers, &topic_refs);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !expected.is_empty() {
        let m = match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(m) => m.unwrap(),
            Err(_) => panic!("{} of {total} deliveries never arrived after the restart", expected.len()),
        };
        let ce_id = m.headers().and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value))
            .map(|v| String::from_utf8_lossy(v).into_owned()).expect("every record has ce_id");
        let key = (m.topic().to_owned(), ce_id);
        expected.remove(&key);
        *seen.entry(key).or_default() += 1;
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    println!("crash: {} documents accepted, {total} deliveries expected, all delivered; {duplicates} duplicate records (same ce_id)", accepted.len());
    let _ = child.kill();
    let _ = child.wait();
}
