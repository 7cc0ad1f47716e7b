//! The default run: the parse-only ceiling, then each broker's (embedded and Apache Kafka)
//! throughput and latency, closed loop, open loop and batches, with the producer's ceiling.

use super::*;

/// Records the producer-alone ceiling keeps unconfirmed at most: a few seconds of a slow
/// broker's pace, far below the 30 s after which librdkafka gives a record up.
const MAX_IN_FLIGHT: usize = 5_000;

/// rdkafka's producer alone, with the gateway's settings: every delivery of every document,
/// with the same key, payload and CloudEvents headers. (Documents/s, cores of this process.)
async fn producer_ceiling(brokers: &str, prefix: &str, docs: &[Doc], seconds: u64, create_topics: bool) -> (f64, f64) {
    use rdkafka::producer::FutureRecord;
    if create_topics {
        create_kafka_topics(brokers, &topics_of(docs, prefix)).await;
    }
    let producer = ventanilla::kafka::producer(brokers, &ventanilla::config::KafkaSecurity::default(), 1_064_960).expect("producer");
    let cpu0 = cpu_seconds("self");
    let start = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    let mut sent_docs = 0u64;
    let mut confirmed = 0u64;
    'outer: for round in 0.. {
        for d in docs {
            if start.elapsed() >= Duration::from_secs(seconds) {
                break 'outer;
            }
            for (topic, payload) in &d.deliveries {
                let delivery = ventanilla::store::OutboundDelivery {
                    delivery_id: 0,
                    document_id: uuid::Uuid::now_v7(),
                    agency: ventanilla::domain::AgencyId::parse(topic.rsplit('.').next().unwrap_or("xx-x")).unwrap_or_else(|_| ventanilla::domain::AgencyId::parse("xx-unknown").unwrap()),
                    topic: format!("{prefix}{topic}"),
                    ucr: ventanilla::domain::Ucr::parse(&format!("{}-{round}", d.ucr)).unwrap(),
                    document_type: ventanilla::domain::DocumentType::parse(&d.document_type).unwrap(),
                    schema_version: "1.0.0".into(),
                    schema_id: String::new(),
                    origin: String::new(),
                    destination: String::new(),
                    sender: "demo-trader".into(),
                    submitted_at: 0,
                    payload: String::new(),
                    version: 1,
                    amends: None,
                    notice: None,
                    attempts: 0,
                    position: 0,
                    // A green channel's selection, as most records carry.
                    selection: Some(r#"{"channel":"green","score":0.0,"source":"none","reasons":[]}"#.into()),
                };
                let mut record = FutureRecord::to(&delivery.topic)
                    .key(delivery.ucr.as_str())
                    .payload(payload.as_str())
                    .headers(ventanilla::kafka::cloudevents::delivery_headers(&delivery));
                // A closed loop against the broker: at most MAX_IN_FLIGHT records unconfirmed, so
                // a slow broker sets the pace instead of timing records out.
                while in_flight.len() >= MAX_IN_FLIGHT {
                    if let Some(f) = in_flight.pop_front() {
                        if matches!(f.await, Ok(Ok(_))) {
                            confirmed += 1;
                        }
                    }
                }
                loop {
                    match producer.send_result(record) {
                        Ok(f) => {
                            in_flight.push_back(f);
                            break;
                        }
                        Err((_, r)) => {
                            record = r;
                            if let Some(f) = in_flight.pop_front() {
                                if matches!(f.await, Ok(Ok(_))) {
                                    confirmed += 1;
                                }
                            } else {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                }
            }
            sent_docs += 1;
        }
    }
    for f in in_flight {
        if matches!(f.await, Ok(Ok(_))) {
            confirmed += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let records = sent_docs as f64 * deliveries_per_doc(docs);
    if (confirmed as f64) < records * 0.999 {
        println!("  producer alone: {confirmed} of about {records:.0} records confirmed");
    }
    // Records the broker confirmed, in documents (at the corpus's deliveries per document), per
    // second until the last confirmation.
    (confirmed as f64 / deliveries_per_doc(docs) / elapsed, (cpu_seconds("self") - cpu0) / elapsed)
}

/// The HTTP ceiling's server: reads and parses the body with the gateway's own bounded parser,
/// answers 202. Nothing else. Runs as a separate process, like the gateway. Batches are split
/// into their documents and each parsed, as the gateway does, and answered 200 with the count.
pub(super) fn parse_only_server(port: u16) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let limits = ventanilla::config::GatewayConfig::default().json_limits();
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(web::PayloadConfig::new(64 << 20))
                .route(
                    "/v1/documents",
                    web::post().to(move |body: web::Bytes| async move {
                        match ventanilla::json::parse_bounded(&body, &limits) {
                            Ok(v) => HttpResponse::Accepted().json(json!({ "parsed": v.is_object() })),
                            Err(_) => HttpResponse::BadRequest().finish(),
                        }
                    }),
                )
                .route(
                    "/v1/documents:batch",
                    web::post().to(move |body: web::Bytes| async move {
                        let Ok(texts) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&body) else {
                            return HttpResponse::BadRequest().finish();
                        };
                        let parsed = texts.iter().filter(|t| ventanilla::json::parse_bounded(t.get().as_bytes(), &limits).is_ok()).count();
                        HttpResponse::Ok().json(json!({ "accepted": parsed }))
                    }),
                )
        })
        .bind(("127.0.0.1", port))
        .expect("bind")
        .run()
        .await
        .expect("serve")
    });
}

/// The parse-only server's rate for single documents and for batches.
pub(super) async fn parse_only_ceiling(single: Bodies, batches: Bodies, o: &Options) -> (Outcome, Outcome) {
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap()).args(["--parse-only-server", &port.to_string()]).spawn().expect("parse-only server");
    let address = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let single = measured(&pid, closed_loop(&address, "/v1/documents", single, o.concurrency, o.seconds, 202, one)).await;
    let batches = measured(&pid, closed_loop(&address, "/v1/documents:batch", batches, batch_concurrency(o), o.seconds, 200, accepted)).await;
    let _ = child.kill();
    let _ = child.wait();
    (single, batches)
}

/// Batches in flight: an eighth of the single documents', at least 2.
fn batch_concurrency(o: &Options) -> usize {
    (o.concurrency / 8).max(2)
}

// ------------------------------------------------------------------ report -----------------

pub(super) async fn run_broker(kind: &str, o: &Options, docs: Arc<Vec<Doc>>, (parse_ceiling, parse_batch_ceiling): (f64, f64)) {
    println!("\n## broker: {kind}");
    let mut kafka = match kind {
        "kafka" => match Kafka::start() {
            Some(k) => Some(k),
            None => return,
        },
        _ => None,
    };
    let run = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("bench{}.", &run[20..]);
    *BROKER_PID.lock().unwrap() = kafka.as_ref().and_then(Kafka::pid);
    let admin = POSTGRES_ADMIN.lock().unwrap().clone();
    let store = match admin {
        Some(admin) => Some(postgres_database(&admin).await),
        None => None,
    };
    let gateway = Gateway::start(kafka.as_ref().map(|k| k.address.as_str()), &prefix, store.as_deref()).await;
    let pid = gateway.pid();
    println!("gateway {} (pid {pid}), broker {}", gateway.address, gateway.brokers);
    let status = reqwest::Client::new();

    let of = |phase: &'static str| -> Bodies {
        let docs = docs.clone();
        Arc::new(move |i| body(&docs, phase, i))
    };
    let perf = profile(o.perf.as_ref(), &pid, &format!("{kind}-single"));
    let single = measured(&pid, closed_loop(&gateway.address, "/v1/documents", of("S"), o.concurrency, o.seconds, 202, one)).await;
    end_profile(perf);
    let drain_single = gateway.drain(&status).await;
    let max = single.rate();
    println!("single documents, closed loop ({} in flight): {:.0} documents/s{}", o.concurrency, max, others(&single));
    println!("  {}", share(&single));
    let delivered = single.ok as f64 / (single.elapsed + drain_single).as_secs_f64();
    println!("  outbox drained {} after the phase: {delivered:.0} documents/s accepted and delivered", ms(drain_single));

    let mut open = measured(&pid, open_loop(&gateway.address, of("O"), max / 2.0, o.seconds)).await;
    gateway.drain(&status).await;
    println!(
        "single documents, open loop at {:.0}/s (half the maximum): p50 {}  p99 {}  p99.9 {}  max {}  (of the {} answered 202){}",
        max / 2.0,
        ms(open.percentile(0.50)),
        ms(open.percentile(0.99)),
        ms(open.percentile(0.999)),
        ms(open.percentile(1.0)),
        open.ok,
        others(&open)
    );
    println!("  {}", share(&open));

    let batches: Bodies = {
        let (docs, size) = (docs.clone(), o.batch_size);
        Arc::new(move |i| batch(&docs, "B", size, i))
    };
    let batch_concurrency = batch_concurrency(o);
    let perf = profile(o.perf.as_ref(), &pid, &format!("{kind}-batch"));
    let batch = measured(&pid, closed_loop(&gateway.address, "/v1/documents:batch", batches, batch_concurrency, o.seconds, 200, accepted)).await;
    end_profile(perf);
    let drain_batch = gateway.drain(&status).await;
    println!("batches of {} ({batch_concurrency} in flight): {:.0} documents/s{}", o.batch_size, batch.rate(), others(&batch));
    println!("  {}", share(&batch));
    let batch_delivered = batch.ok as f64 / (batch.elapsed + drain_batch).as_secs_f64();
    println!("  outbox drained {} after the phase: {batch_delivered:.0} documents/s accepted and delivered", ms(drain_batch));

    if let Some(soak) = o.soak {
        let rate = o.soak_rate.unwrap_or(max / 2.0);
        println!("soak: {soak} s at {rate:.0} documents/s, resident memory every 30 s:");
        let sampler = {
            let pid = pid.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                for _ in 0..(soak / 30 + 1) {
                    samples.push(rss_mib(&pid).0);
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                samples
            })
        };
        let soaked = open_loop(&gateway.address, of("K"), rate, soak).await;
        let samples = sampler.await.unwrap();
        println!("  {} answered 202{}; RSS MiB: {}", soaked.ok, others(&soaked), samples.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(" "));
    }
    // Delivered means confirmed by the broker: none may have failed instead.
    let failed: Value = status.get(format!("{}/v1/deliveries/failed", gateway.address)).bearer_auth("demo-operator").send().await.unwrap().json().await.unwrap();
    let failed = failed["deliveries"].as_array().map_or(0, Vec::len);
    assert_eq!(failed, 0, "{failed} deliveries failed: the delivered figures above would be wrong");
    let (rss, peak) = rss_mib(&pid);
    let producer = if kind == "embedded" {
        gateway.stop();
        // A mock cluster like the gateway's, in this process, for the producer alone.
        let cluster = ventanilla::kafka::embedded::EmbeddedCluster::start(topics_of(&docs, &format!("c{prefix}")), 3).expect("mock cluster");
        let r = producer_ceiling(cluster.bootstrap_servers(), &format!("c{prefix}"), &docs, o.seconds, false).await;
        drop(cluster);
        r
    } else {
        gateway.stop();
        // A fresh broker, not the one the gateway has just filled.
        *BROKER_PID.lock().unwrap() = None;
        drop(kafka.take());
        let fresh = Kafka::start().expect("Apache Kafka started above");
        producer_ceiling(&fresh.address, &format!("c{prefix}"), &docs, o.seconds, true).await
    };
    println!("gateway resident memory: {rss:.0} MiB at the end, {peak:.0} MiB at its peak");
    println!("ceiling, rdkafka producer alone (same settings, payloads, headers; {:.2} deliveries per document): {:.0} documents/s ({:.2} cores)", deliveries_per_doc(&docs), producer.0, producer.1);
    println!("ceiling, HTTP server that only parses the body: {parse_ceiling:.0} documents/s; batches: {parse_batch_ceiling:.0} documents/s");
    println!("ratios: single {:.0}% of parse-only, {:.0}% of producer ({:.0}% counting the drain); batch {:.0}% of parse-only, {:.0}% of producer ({:.0}% counting the drain)",
        100.0 * max / parse_ceiling, 100.0 * max / producer.0, 100.0 * delivered / producer.0,
        100.0 * batch.rate() / parse_batch_ceiling, 100.0 * batch.rate() / producer.0, 100.0 * batch_delivered / producer.0);
    drop(kafka);
}
