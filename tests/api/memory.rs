//! Issue 26, item 2: what one participant sends within its quota cannot swell the gateway. A
//! body of many small values (`{"":0}` is 7 bytes of text and about 650 of parsed tree) was
//! counted by its length only: 24 parallel validations by one trader took the gateway from
//! 161 MB to 1.9 GB, and two 15.7 MB batches to 3.0 GB. Now the tree's size is estimated before
//! parsing, bounded per body (`max_json_nodes`, `max_json_parsed_bytes`) and counted among the
//! sender's bytes in flight and the gateway's pool; a batch is parsed one document at a time;
//! freed memory goes back to the system. Measured on the real binary, from /proc.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{assert_problem, example, spawn_app, spawn_binary, test_brokers};

/// A customs declaration whose payload carries `arrays` arrays of `per_array` `{"":0}` objects.
fn swollen(arrays: usize, per_array: usize) -> String {
    let mut doc = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    let filler = format!("[{}]", vec![r#"{"":0}"#; per_array].join(","));
    doc["payload"]["remarks"] = json!("FILLER");
    let members: Vec<String> = (0..arrays).map(|i| format!("\"k{i}\":{filler}")).collect();
    let body = doc.to_string();
    body.replacen("\"remarks\":\"FILLER\"", &members.join(","), 1)
}

/// A line of /proc/PID/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the gateway's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[tokio::test]
async fn a_body_of_many_small_values_is_refused_before_it_is_built() {
    let app = spawn_app().await;
    // 14 arrays of 10,000: the red team's 980 KB body, about 95 MB once parsed.
    let r = app.post_json("/v1/validate", Some("demo-trader"), &swollen(14, 10_000)).await;
    let problem = assert_problem(r, 422, "json-limit-exceeded").await;
    assert_eq!(problem["bound"], "max_json_nodes", "{problem:#}");
    // Fewer values, still far more tree than text: the memory bound.
    let r = app.post_json("/v1/validate", Some("demo-trader"), &swollen(4, 10_000)).await;
    let problem = assert_problem(r, 422, "json-limit-exceeded").await;
    assert_eq!(problem["bound"], "max_json_parsed_bytes", "{problem:#}");
    assert!(problem["detail"].as_str().unwrap().contains("too many small values"), "{problem:#}");
    // The same in a batch is that item's problem; the good item beside it is accepted.
    let good = example("customsDeclaration/valid/export-beef-road-AR-BR.json").to_string();
    let batch = format!("{}\n{good}\n", swollen(4, 10_000));
    let r = reqwest::Client::new()
        .post(format!("{}/v1/documents:batch", app.address))
        .bearer_auth("demo-trader")
        .header("content-type", "application/x-ndjson")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!((answer["accepted"].as_u64(), answer["refused"].as_u64()), (Some(1), Some(1)), "{answer:#}");
    assert_eq!(answer["results"][0]["problem"]["bound"], "max_json_parsed_bytes");
}

#[tokio::test]
async fn hostile_bodies_within_every_quota_keep_the_gateway_under_500_mb() {
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let (child, address, _log) = spawn_binary(data.path(), &prefix, &test_brokers());
    let pid = child.id();
    // Stopped however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _gateway = Stop(child);
    let before = status_kb(pid, "VmRSS:");

    // Just under each bound: 2 arrays of 10,000 `{"":0}`, about 14 MB of tree from 140 KB.
    let body = swollen(2, 10_000);
    let batch: String = std::iter::repeat_n(body.as_str(), 15_700_000 / (body.len() + 1)).map(|b| format!("{b}\n")).collect();
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for (token, n) in [("demo-trader", 24), ("demo-nsw-ar", 40)] {
        for _ in 0..n {
            let (client, address, body) = (client.clone(), address.clone(), body.clone());
            requests.push(tokio::spawn(async move {
                let r = client.post(format!("{address}/v1/validate")).bearer_auth(token).header("content-type", "application/json").body(body);
                r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
            }));
        }
    }
    for _ in 0..2 {
        let (client, address, batch) = (client.clone(), address.clone(), batch.clone());
        requests.push(tokio::spawn(async move {
            let r = client
                .post(format!("{address}/v1/documents:batch"))
                .bearer_auth("demo-trader-2")
                .header("content-type", "application/x-ndjson")
                .body(batch);
            r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let peak = status_kb(pid, "VmHWM:");
    assert!(peak < 500 * 1024, "peak RSS {peak} kB is above 500 MB");
    // Answered, each: refused by the schema (422), by a quota (429) or by the pool (503), or the
    // batches (200), none dropped.
    assert!(statuses.iter().all(|s| [200, 422, 429, 503].contains(s)), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 422).count() >= 8, "some were parsed and validated: {statuses:?}");
    // And what was freed goes back to the system (the trimmer looks every half second).
    let after = crate::support::eventually(Duration::from_secs(3), "the burst's memory handed back", || async {
        Some(status_kb(pid, "VmRSS:")).filter(|after| *after < before + 100 * 1024)
    })
    .await;
    eprintln!("gateway RSS: {before} kB at start, peak {peak} kB, {after} kB after the burst");
}
