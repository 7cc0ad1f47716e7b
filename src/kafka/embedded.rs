//! The embedded default: librdkafka's in-process mock cluster, on a loopback port, for running
//! the gateway with no Kafka at all. It keeps nothing across restarts; the store does. Its own
//! port changes at every start; a fixed loopback port (`--embedded-kafka-port`, 9092 by
//! default) forwards to it, so clients bootstrap at the same address every time (the broker's
//! metadata then gives them its own port, on the same loopback).

use std::sync::mpsc;

use rdkafka::mocking::MockCluster;

use super::BrokerError;

/// A running mock cluster. It lives on its own thread (the handle is not `Send`) and stops,
/// with its fixed-port forwarder, when this value is dropped.
pub struct EmbeddedCluster {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The fixed port's accept loop, stopped with the cluster so the port is free for the
    /// next start (in a test, or a gateway restarted in the same process).
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl EmbeddedCluster {
    /// Starts a one-broker mock cluster with `topics` created.
    pub fn start(topics: Vec<String>, partitions: i32) -> Result<Self, BrokerError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                for t in &topics {
                    if let Err(e) = cluster.create_topic(t, partitions, 1) {
                        let _ = ready_tx.send(Err(format!("topic {t}: {e}")));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| BrokerError::Embedded(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| BrokerError::Embedded("the mock cluster thread stopped".into()))?
            .map_err(BrokerError::Embedded)?;
        Ok(EmbeddedCluster { bootstrap, stop: Some(stop_tx), thread: Some(thread), forwarder: None })
    }

    /// The broker's own bootstrap address (a port that changes at every start): the gateway's
    /// own producer and consumer connect here, without the forwarder's extra hop.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Listens on `127.0.0.1:port` and forwards every connection to the broker, until the
    /// cluster is dropped. Returns the fixed address for outside clients (kcat, an agency's
    /// consumer); the broker's metadata then gives them its own port, on the same loopback.
    pub async fn forward_from(&mut self, port: u16) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let to = self.bootstrap.split(',').next().unwrap_or_default().to_owned();
        if let Some(old) = self.forwarder.take() {
            old.abort();
        }
        self.forwarder = Some(tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let to = to.clone();
                tokio::spawn(async move {
                    if let Ok(mut broker) = tokio::net::TcpStream::connect(&to).await {
                        // Kafka's requests are small and answered one by one: no Nagle delay.
                        let _ = (client.set_nodelay(true), broker.set_nodelay(true));
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
            }
        }));
        Ok(format!("127.0.0.1:{port}"))
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

