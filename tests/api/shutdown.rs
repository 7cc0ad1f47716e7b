//! Graceful shutdown of the real binary under load: on SIGTERM it stops taking connections,
//! answers the requests it has started, lets the relay finish the batch in hand, flushes the
//! producer, hands its claims back and exits 0, without draining the outbox: what it had not
//! published yet waits in the store, and its next start publishes it.

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{await_deliveries, spawn_binary, submission_stream, test_brokers};

#[tokio::test]
async fn sigterm_during_load_answers_in_flight_requests_and_publishes_everything_accepted() {
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("s{}.", uuid::Uuid::now_v7().simple());
    let brokers = test_brokers();
    let (mut child, address, rx) = spawn_binary(data.path(), &prefix, &brokers);

    let (log, senders) = submission_stream(&address, "TERM", 4, true, Arc::new(AtomicBool::new(false)));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let pid = child.id().to_string();
    let asked = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    let stopped_in = asked.elapsed();
    assert!(status.success(), "exit status {status:?}");
    for s in senders {
        let _ = s.await;
    }
    let logs: Vec<String> = rx.try_iter().collect();
    let stopping: Vec<&String> = logs.iter().skip_while(|l| !l.contains("stop signal received")).filter(|l| !l.contains("document accepted")).collect();
    assert!(stopped_in < Duration::from_secs(5), "{stopped_in:?} from SIGTERM to exit under load (the bound is 5 s): {stopping:#?}");
    assert!(logs.iter().any(|l| l.contains("producer flushed")), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("claims handed back")), "{logs:#?}");

    let log = log.lock().unwrap().clone();
    assert!(log.accepted.len() > 10, "documents were accepted before SIGTERM ({})", log.accepted.len());
    assert!(log.refused.is_empty(), "answers other than 202: {:?}", log.refused);
    // Every submission the gateway accepted (its log says so) reached its client as a 202:
    // no request it took was cut off. Requests still in the kernel's accept queue when the
    // listener closed are reset without being read; those clients see an error and nothing
    // of theirs was stored.
    let gateway_accepted: HashSet<String> = logs
        .iter()
        .filter(|l| l.contains("document accepted"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("document=")).map(str::to_owned))
        .collect();
    let client_accepted: HashSet<String> = log.accepted.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(gateway_accepted, client_accepted, "every accepted document's 202 reached its client");

    // Every accepted document reaches its agency topics: published before the exit, or by the
    // next start on the same store.
    let (mut again, _address, _logs) = spawn_binary(data.path(), &prefix, &brokers);
    let (deliveries, duplicates) = await_deliveries(&brokers, &log.accepted, Duration::from_secs(60)).await;
    let _ = again.kill();
    let _ = again.wait();
    println!(
        "sigterm: exit {:.2} s after the signal; {} documents accepted, {deliveries} deliveries, all published \
         (before the exit or by the next start), 0 lost; {duplicates} duplicates; {} requests found the listener \
         closed, {} were reset unread",
        stopped_in.as_secs_f64(),
        log.accepted.len(),
        log.unconnected,
        log.broken.len()
    );
}
