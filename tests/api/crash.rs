//! SIGKILL in the middle of a stream of submissions, then a restart on the same store: every
//! document that got a 202 reaches every agency topic it was routed to. Duplicates (a record
//! published but not yet marked when the process died) are counted and carry the same `ce_id`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{await_deliveries, spawn_binary, submission_stream, test_brokers};

#[tokio::test]
async fn sigkill_mid_stream_loses_no_accepted_document() {
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("k{}.", uuid::Uuid::now_v7().simple());
    let brokers = test_brokers();
    let (mut child, address, _logs) = spawn_binary(data.path(), &prefix, &brokers);

    let (log, senders) = submission_stream(&address, "CRASH", 4, true, Arc::new(AtomicBool::new(false)));
    crate::helpers::until_accepted(&log, 11).await;
    child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    child.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let accepted = log.lock().unwrap().accepted.clone();
    assert!(accepted.len() > 10, "documents were accepted before the crash ({})", accepted.len());

    // Restart on the same store: it re-publishes what was not confirmed.
    let (mut child, _address, _logs) = spawn_binary(data.path(), &prefix, &brokers);
    let (deliveries, duplicates) = await_deliveries(&brokers, &accepted, Duration::from_secs(90)).await;
    println!(
        "crash: {} documents accepted, {deliveries} deliveries expected, all delivered, 0 lost; \
         {duplicates} duplicate records (same ce_id)",
        accepted.len()
    );
    let _ = child.kill();
    let _ = child.wait();
}
