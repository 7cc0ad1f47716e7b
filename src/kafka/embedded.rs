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
                let created = {
                    let _wake = Waker::start(&cluster.bootstrap_servers());
                    topics.iter().try_for_each(|t| cluster.create_topic(t, partitions, 1).map_err(|e| format!("topic {t}: {e}")))
                };
                if let Err(e) = created {
                    let _ = ready_tx.send(Err(e));
                    return;
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

/// Keeps the mock cluster's thread awake while topics are created. librdkafka's mock cluster
/// can miss the signal of a request queued just as it reads the previous one's, and then serves
/// it only at its next one-second tick: creating the topics one by one took 1 to 5 s in one
/// start out of three. Any connection to its broker wakes the thread, which then serves every
/// queued request first; this one connects every few milliseconds until it is dropped.
struct Waker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Waker {
    fn start(bootstrap: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let address = bootstrap.split(',').next().and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        let thread = address.and_then(|address| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("embedded-kafka-waker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_millis(100));
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                })
                .ok()
        });
        Waker { stop, thread }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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

