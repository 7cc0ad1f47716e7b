//! Trader webhooks, against a real HTTP receiver (an actix-web server in the test): status
//! changes arrive signed with HMAC-SHA256, in order, retried with backoff after refusals, only
//! for the caller's own consignments, and registration is checked and private to its owner.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, eventually, example, spawn_app_configured, test_brokers, TestApp};

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    at: Instant,
    event_id: String,
    signature: String,
    pub(crate) body: Vec<u8>,
    answered: u16,
}

/// An HTTP server that refuses its first `refuse_first` requests with 503, then takes them,
/// each after `delay`.
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests that arrived, answered or not yet.
    arrived: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub(crate) fn start(refuse_first: usize, delay: Duration) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let arrived: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let count = arrived.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/hooks/ventanilla", listener.local_addr().unwrap().port());
        let log = received.clone();
        let server = HttpServer::new(move || {
            let (log, count) = (log.clone(), count.clone());
            App::new().route(
                "/hooks/ventanilla",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let log = log.clone();
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut log = log.lock().unwrap();
                        let answered = if log.len() < refuse_first { 503 } else { 200 };
                        let header = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                        log.push(Received {
                            at: Instant::now(),
                            event_id: header("ventanilla-event-id"),
                            signature: header("ventanilla-signature"),
                            body: body.to_vec(),
                            answered,
                        });
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap()).finish()
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Receiver { url, received, arrived }
    }

    /// Requests that arrived, including one not answered yet.
    pub(crate) fn arrivals(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn taken(&self) -> Vec<Received> {
        self.received.lock().unwrap().iter().filter(|r| r.answered == 200).cloned().collect()
    }
}

/// Checks `Ventanilla-Signature` as a receiver would: HMAC-SHA256 over `<t>.<body>`.
fn verify(secret: &str, signature: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = signature.strip_prefix("t=").and_then(|s| s.split_once(",v1=")) else { return false };
    let Ok(t) = t.parse::<u64>() else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    hex == v1
}

/// Backoff starts well above the dispatcher's 500 ms polling, so the delays measured are the
/// backoff's, not the polling's.
pub(crate) async fn app_with_webhooks(allow_insecure: bool) -> TestApp {
    spawn_app_configured(Some(test_brokers()), |s| {
        s.region.webhooks.allow_insecure_urls = allow_insecure;
        s.region.webhooks.initial_backoff_ms = 1_500;
        s.region.webhooks.max_backoff_ms = 3_000;
        s.region.webhooks.max_per_participant = 2;
    })
    .await
}

async fn register(app: &TestApp, token: &str, url: &str) -> reqwest::Response {
    app.post_json("/v1/webhooks", Some(token), &json!({ "url": url }).to_string()).await
}

#[tokio::test]
async fn status_changes_are_posted_signed_in_order_and_retried_until_taken() {
    let app = app_with_webhooks(true).await;
    let receiver = Receiver::start(2, Duration::ZERO);
    let r = register(&app, "demo-trader", &receiver.url).await;
    assert_eq!(r.status(), 201);
    let registered: Value = r.json().await.unwrap();
    let secret = registered["secret"].as_str().unwrap().to_owned();
    let webhook_id = registered["id"].as_str().unwrap().to_owned();

    // The trader's consignment: submitted, then on hold, then refused.
    let receipt: Value = app.submit(&example("commercialInvoice/valid/cars-sea-BR-UY.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap(), receipt["ucr"].as_str().unwrap().to_owned());
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap();
    for status in ["hold", "rejected"] {
        let ack = json!({"documentId": doc, "agency": agency, "status": status});
        let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await;
        assert_eq!(r.status(), 200);
    }
    app.wait_for_state(&ucr, "refused").await;
    // Another trader's consignment, which must not reach this webhook (under a UCR of its own
    // seller's: the example's names demo-trader's client).
    let mut other = example("commercialInvoice/valid/cars-sea-BR-UY.json");
    other["ucr"] = json!("5AR20111111112-V0042");
    other["payload"]["seller"]["identifier"] = json!({"scheme": "AR-CUIT", "value": "20111111112"});
    let r = app.post_json("/v1/documents", Some("demo-trader-2"), &other.to_string()).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // What the trader's own stream says happened, in order.
    let page: Value = app.get("/v1/consignments/events?wait=1s", Some("demo-trader")).await.json().await.unwrap();
    let expected: Vec<Value> = page["events"].as_array().unwrap().clone();
    assert!(expected.len() >= 3, "submitted, on hold, refused: {page:#}");
    eventually(Duration::from_secs(30), "every event taken by the receiver", || async { (receiver.taken().len() >= expected.len()).then_some(()) }).await;
    // The other trader's events are past this webhook's cursor: had the dispatcher meant to
    // send them here, it would have by now (it sends a webhook's events in order).
    let theirs: Value = app.get("/v1/consignments/events?wait=1s", Some("demo-trader-2")).await.json().await.unwrap();
    assert!(!theirs["events"].as_array().unwrap().is_empty(), "the other trader's consignment has events: {theirs:#}");
    // The page's cursor: its last event's id.
    let their_last = theirs["cursor"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "the webhook's cursor past the other trader's events", || async {
        let list: Value = app.get("/v1/webhooks", Some("demo-trader")).await.json().await.unwrap();
        (list["webhooks"][0]["deliveredThrough"].as_i64()? >= their_last).then_some(())
    })
    .await;
    let all = receiver.received.lock().unwrap().clone();
    let taken = receiver.taken();
    let bodies: Vec<Value> = taken.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert_eq!(bodies, expected, "every state change, in order, once taken");
    assert!(bodies.iter().all(|b| b["ucr"] == ucr.as_str()), "only the caller's consignment");
    // The first event was refused twice and sent again, after growing delays.
    assert!(all.len() >= expected.len() + 2);
    assert_eq!(all[0].answered, 503);
    assert_eq!(all[1].answered, 503);
    assert_eq!(all[0].event_id, all[1].event_id);
    assert_eq!(all[1].event_id, all[2].event_id);
    // Delays drawn from the upper half of 1.5 s, then of 3 s.
    assert!(all[1].at - all[0].at >= Duration::from_millis(750), "backoff: {:?}", all[1].at - all[0].at);
    assert!(all[2].at - all[1].at >= Duration::from_millis(1500), "backoff doubles: {:?}", all[2].at - all[1].at);
    // Ids increase; every POST is signed with the secret, and a wrong secret does not verify.
    let ids: Vec<i64> = taken.iter().map(|r| r.event_id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for r in &all {
        assert!(verify(&secret, &r.signature, &r.body), "signature {} verifies", r.signature);
        assert!(!verify("whsec_wrong", &r.signature, &r.body));
    }
    let mut tampered = taken[0].body.clone();
    tampered.push(b' ');
    assert!(!verify(&secret, &taken[0].signature, &tampered));

    // The owner sees how its webhook stands, without the secret.
    let list: Value = app.get("/v1/webhooks", Some("demo-trader")).await.json().await.unwrap();
    let hook = &list["webhooks"][0];
    assert_eq!(hook["id"], webhook_id.as_str());
    // At least its last event; past it when later events were others' (the cursor skips them).
    assert!(hook["deliveredThrough"].as_i64().unwrap() >= *ids.last().unwrap(), "{hook:#}");
    assert_eq!(hook["failedAttempts"], 0);
    assert!(hook.get("secret").is_none() && !list.to_string().contains(&secret));
}

#[tokio::test]
async fn a_webhook_deleted_while_busy_is_sent_nothing_after_the_post_in_flight() {
    let app = app_with_webhooks(true).await;
    // A slow receiver: each POST takes 700 ms. And a witness, the same trader's other webhook,
    // which is never deleted.
    let receiver = Receiver::start(0, Duration::from_millis(700));
    let witness = Receiver::start(0, Duration::ZERO);
    let r: Value = register(&app, "demo-trader", &receiver.url).await.json().await.unwrap();
    let webhook_id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(register(&app, "demo-trader", &witness.url).await.status(), 201);
    // Five consignments: five events queued for each webhook.
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let submit = |i: usize| {
        let mut d = example("commercialInvoice/valid/cars-sea-BR-UY.json");
        d["ucr"] = json!(format!("WD-{}-{i}", &run[20..]));
        let app = &app;
        async move { app.submit(&d).await.status() }
    };
    for i in 0..5 {
        assert_eq!(submit(i).await, 202);
    }
    // Delete while the next POST is in flight.
    eventually(Duration::from_secs(10), "the first POST to reach the receiver", || async {
        (!receiver.received.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let r = app.client.delete(format!("{}/v1/webhooks/{webhook_id}", app.address)).bearer_auth("demo-trader").send().await.unwrap();
    assert_eq!(r.status(), 204);
    let at_delete = receiver.received.lock().unwrap().len();
    // The POST in flight at the delete, if one was, is answered.
    eventually(Duration::from_secs(10), "the POST in flight at the delete to be answered", || async {
        (receiver.arrivals() == receiver.received.lock().unwrap().len()).then_some(())
    })
    .await;
    // A sixth event, committed only now, reaches the witness: the dispatcher has served the
    // trader's webhooks since. A dispatcher that went on with the deleted webhook would have
    // sent it its next POST at once, long before a new event is committed, claimed and sent.
    assert_eq!(submit(5).await, 202);
    let sixth = format!("WD-{}-5", &run[20..]);
    eventually(Duration::from_secs(30), "the sixth event to reach the witness", || async {
        witness.taken().iter().any(|r| String::from_utf8_lossy(&r.body).contains(&sixth)).then_some(())
    })
    .await;
    let after = receiver.arrivals();
    assert!(after <= at_delete + 1, "only the POST in flight may finish: {at_delete} answered before the delete, {after} arrived by now");
    assert!(after < 5, "the five events were not all sent");
}

#[tokio::test]
async fn registration_is_checked_and_private_to_its_owner() {
    let app = app_with_webhooks(false).await;
    for url in ["http://trader.example/hook", "https://127.0.0.1/hook", "https://10.0.0.8/hook", "https://localhost/hook", "not a url"] {
        let body = assert_problem(register(&app, "demo-trader", url).await, 422, "invalid-webhook").await;
        assert!(body["detail"].as_str().unwrap().len() > 20, "{body:#}");
    }
    let r = app.post_json("/v1/webhooks", Some("demo-trader"), &json!({"url": "https://trader.example/h", "events": "all"}).to_string()).await;
    assert_problem(r, 422, "invalid-webhook").await;
    for token in ["demo-br-customs", "demo-operator"] {
        assert_problem(register(&app, token, "https://agency.example/hook").await, 403, "forbidden").await;
    }
    let r = register(&app, "demo-trader", "https://trader.example/hook").await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    assert!(first["secret"].as_str().unwrap().len() >= 64, "{first:#}");
    assert_eq!(register(&app, "demo-trader", "https://trader.example/other").await.status(), 201);
    // At most webhooks.max_per_participant (2 here).
    assert_problem(register(&app, "demo-trader", "https://trader.example/third").await, 422, "invalid-webhook").await;
    // Another trader sees none of them, and cannot remove them.
    let list: Value = app.get("/v1/webhooks", Some("demo-trader-2")).await.json().await.unwrap();
    assert_eq!(list["webhooks"], json!([]));
    let delete = |token: &'static str, id: String| app.client.delete(format!("{}/v1/webhooks/{id}", app.address)).bearer_auth(token).send();
    assert_problem(delete("demo-trader-2", id.clone()).await.unwrap(), 404, "not-found").await;
    let list: Value = app.get("/v1/webhooks", Some("demo-trader")).await.json().await.unwrap();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 2);
    assert_eq!(delete("demo-trader", id.clone()).await.unwrap().status(), 204);
    assert_problem(delete("demo-trader", id).await.unwrap(), 404, "not-found").await;
    let list: Value = app.get("/v1/webhooks", Some("demo-trader")).await.json().await.unwrap();
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
}

/// A document's life reaches the trader's webhook and the status topic, in order, whatever the
/// consignment's state: the agency's query with its reason, the trader's response, the
/// amendment and the withdrawal.
#[tokio::test]
async fn a_query_a_response_an_amendment_and_a_withdrawal_reach_the_webhook_and_the_status_topic() {
    use rdkafka::Message;
    let app = app_with_webhooks(true).await;
    let receiver = Receiver::start(0, Duration::ZERO);
    assert_eq!(register(&app, "demo-trader", &receiver.url).await.status(), 201);
    let invoice = example("commercialInvoice/valid/cars-sea-BR-UY.json");
    let receipt: Value = app.submit(&invoice).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let query = json!({"documentId": doc, "agency": agency, "status": "query", "reason": "which port of discharge?"});
    assert_eq!(app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &query.to_string()).await.status(), 200);
    let response = json!({"text": "Montevideo"});
    assert_eq!(app.post_json(&format!("/v1/documents/{doc}/responses"), Some("demo-trader"), &response.to_string()).await.status(), 202);
    let mut amended = invoice.clone();
    amended["payload"]["incoterm"] = json!("FOB");
    let amendment = json!({"reason": "incoterm corrected", "document": amended});
    let r = app.post_json(&format!("/v1/documents/{doc}/amendments"), Some("demo-trader"), &amendment.to_string()).await;
    assert_eq!(r.status(), 202);
    let v2: Value = r.json().await.unwrap();
    let withdrawal = json!({"reason": "the sale was cancelled"});
    let r = app.post_json(&format!("/v1/documents/{}/withdrawal", v2["documentId"].as_str().unwrap()), Some("demo-trader"), &withdrawal.to_string()).await;
    assert_eq!(r.status(), 202);

    let expected = ["created", "acknowledgment", "query-answered", "amended", "withdrawn"];
    eventually(Duration::from_secs(30), "the five events taken by the receiver", || async { (receiver.taken().len() >= expected.len()).then_some(()) }).await;
    let bodies: Vec<Value> = receiver.taken().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["cause"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, expected, "{bodies:#?}");
    assert_eq!(bodies[1]["cause"]["reason"], "which port of discharge?");
    assert_eq!(bodies[3]["cause"]["reason"], "incoterm corrected");
    assert_eq!(bodies[4]["state"], "withdrawn");

    // The status topic carries the same events, keyed by the UCR.
    let status = crate::helpers::consumer(&app.brokers, &[&app.topic("status")]);
    let mut published = Vec::new();
    while published.len() < expected.len() {
        let m = tokio::time::timeout(Duration::from_secs(30), status.recv()).await.expect("status events within 30 s").unwrap();
        assert_eq!(m.key(), Some(ucr.as_bytes()));
        published.push(serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap()["cause"]["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(published, expected);
}

/// Issue 31: trying webhooks with a receiver on one's own machine meant copying `config/` to set
/// `webhooks.allow_insecure_urls`. `VENTANILLA_ALLOW_INSECURE_WEBHOOK_URLS` (or
/// `--allow-insecure-webhook-urls`) sets it for a gateway on loopback, and is refused on any
/// other address before anything starts.
#[tokio::test]
async fn insecure_webhook_urls_are_allowed_by_a_flag_on_loopback_only() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    let prefix = format!("wi{}.", uuid::Uuid::now_v7().simple());
    let serve = |allow: bool| {
        let mut command = crate::support::cli();
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--topic-prefix", &prefix, "--kafka-brokers", &test_brokers()])
            .arg("--data-dir").arg(data.path())
            .env("RUST_LOG", "info,rdkafka=off,librdkafka=off")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped());
        if allow {
            command.env("VENTANILLA_ALLOW_INSECURE_WEBHOOK_URLS", "true");
        }
        let mut child = command.spawn().expect("the binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
        let address = lines
            .by_ref()
            .filter_map(|l| l.find("listening on http://").map(|i| l[i + "listening on ".len()..].split_whitespace().next().unwrap_or_default().to_owned()))
            .next()
            .expect("the gateway logs its address");
        // Its log is read on to the end: a gateway whose standard error is closed cannot log.
        std::thread::spawn(move || lines.for_each(drop));
        (child, address)
    };
    let hook = json!({ "url": "http://127.0.0.1:9/hook" }).to_string();
    let client = reqwest::Client::new();
    let register = |address: String| {
        let (client, hook) = (client.clone(), hook.clone());
        async move {
            client.post(format!("{address}/v1/webhooks")).bearer_auth("demo-trader").header("content-type", "application/json").body(hook).send().await.unwrap()
        }
    };

    // The gateway is a process of its own: waiting for its address here blocks nothing it needs.
    let (mut child, address) = serve(false);
    let refused = register(address).await;
    assert_eq!(refused.status(), 422, "plain http to loopback, by default");
    let _ = (child.kill(), child.wait());

    let (mut child, address) = serve(true);
    assert_eq!(register(address).await.status(), 201, "allowed by the variable, on loopback");
    let _ = (child.kill(), child.wait());

    // On an address others reach: refused before anything starts, saying what to do.
    let out = crate::support::run_cli(["serve", "--bind", "0.0.0.0:0", "--allow-insecure-webhook-urls", "--kafka-brokers", "127.0.0.1:1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("webhooks.allow_insecure_urls"), "{stderr}");
}
