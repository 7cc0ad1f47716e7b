//! Bounds: a slow client is cut off with 408, and past `max_concurrent_writes` the answer is
//! 503 with `Retry-After` rather than an unbounded queue.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_problem, example, spawn_app_configured, test_brokers};

/// Opens a submission that announces a body and sends only part of it.
async fn slow_submission(address: &str) -> TcpStream {
    let host = address.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /v1/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer demo-trader\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"documentType\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_a_saturated_gateway_says_retry_later() {
    let app = spawn_app_configured(Some(test_brokers()), |s| {
        s.region.gateway.max_concurrent_writes = 1;
        s.region.gateway.client_timeout_ms = 1500;
    })
    .await;
    let mut slow = slow_submission(&app.address).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The slow one holds the only write permit.
    let r = app.submit(&example("packingList/valid/wine-road-AR-UY.json")).await;
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("1"));
    assert_problem(r, 503, "overloaded").await;

    // Then it is cut off with 408.
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_string(&mut answer))
        .await
        .expect("the gateway answers the slow client")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");

    // And the permit is free again.
    let r = app.submit(&example("packingList/valid/wine-road-AR-UY.json")).await;
    assert_eq!(r.status(), 202);
}
