//! The agencies' HTTP stream: Server-Sent Events resumable by `Last-Event-ID` through a
//! restarted gateway, every delivery exactly once and in order per UCR; the long-poll form;
//! per-agency authorization; and a stop that does not wait on open streams.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app_on, test_brokers, TestApp};

/// Reads SSE events from `r` until `want` have arrived: (cursor, event) pairs.
async fn read_events(r: &mut reqwest::Response, want: usize) -> Vec<(i64, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < want {
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk())
            .await
            .expect("events keep coming")
            .expect("the stream reads")
            .expect("the stream is open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: ")).map(|v| v.parse::<i64>().unwrap());
            // An event's data may span `data:` lines (a payload as sent, over several lines):
            // joined with line breaks, as an EventSource joins them.
            let lines: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            let data = (!lines.is_empty()).then(|| serde_json::from_str::<Value>(&lines.join("\n")).unwrap());
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id, data));
            }
        }
    }
    events
}

async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let mut req = app.client.get(format!("{}/v1/agencies/br-customs/documents", app.address)).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r
}

/// Submits a declaration and an invoice (both routed to br-customs) for each UCR, in that order.
async fn submit_pairs(app: &TestApp, ucrs: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for ucr in ucrs {
        for path in ["customsDeclaration/valid/export-beef-road-AR-BR.json", "commercialInvoice/valid/beef-road-AR-BR.json"] {
            let mut d = example(path);
            d["ucr"] = json!(ucr);
            let r: Value = app.submit(&d).await.json().await.unwrap();
            ids.push(r["documentId"].as_str().expect("accepted").to_owned());
        }
    }
    ids
}

#[tokio::test]
async fn an_agency_resumes_its_stream_through_a_restarted_gateway_and_gets_each_delivery_once_in_order() {
    let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let prefix = format!("e{}.", uuid::Uuid::now_v7().simple());
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let ucrs: Vec<String> = (0..5).map(|i| format!("SSE-{i}-{}", &run[24..])).collect();

    let app = spawn_app_on(data.clone(), prefix.clone(), Some(test_brokers()), |_| {}).await;
    let mut expected = submit_pairs(&app, &ucrs[..3]).await;
    let mut stream = open(&app, "demo-br-customs", None).await;
    let mut got = read_events(&mut stream, 4).await;
    drop(stream); // mid-stream: 2 of the first 6 not read yet

    // A stop does not wait on an open stream.
    let _open = open(&app, "demo-br-customs", None).await;
    tokio::time::timeout(Duration::from_secs(10), app.stop()).await.expect("the gateway stops promptly with a stream open");

    let app = spawn_app_on(data, prefix, Some(test_brokers()), |_| {}).await;
    expected.extend(submit_pairs(&app, &ucrs[3..]).await);
    let last = got.last().unwrap().0;
    let mut stream = open(&app, "demo-br-customs", Some(last)).await;
    got.extend(read_events(&mut stream, expected.len() - got.len()).await);

    let documents: Vec<String> = got.iter().map(|(_, e)| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(documents, expected, "every delivery exactly once, in commit order (so in order per UCR)");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "cursors increase");
    let e = &got[0].1;
    assert_eq!((e["specversion"].as_str(), e["agency"].as_str(), e["subject"].as_str()), (Some("1.0"), Some("br-customs"), Some(ucrs[0].as_str())));
    assert_eq!(e["type"], "org.ventanilla.document.customsDeclaration");
    assert_eq!(e["data"], example("customsDeclaration/valid/export-beef-road-AR-BR.json")["payload"]);

    // Long poll: empty after the wait when nothing is new...
    let cursor = got.last().unwrap().0;
    let url = |after: i64, wait: &str| format!("{}/v1/agencies/br-customs/documents?after={after}&wait={wait}", app.address);
    let started = std::time::Instant::now();
    let page: Value = app.client.get(url(cursor, "1s")).bearer_auth("demo-br-customs").send().await.unwrap().json().await.unwrap();
    assert_eq!((page["events"].as_array().unwrap().len(), page["cursor"].as_i64()), (0, Some(cursor)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    // ...and answered as soon as a delivery arrives.
    let (client, poll_url) = (app.client.clone(), url(cursor, "20s"));
    let poll = tokio::spawn(async move { client.get(poll_url).bearer_auth("demo-br-customs").send().await.unwrap().json::<Value>().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let newest = submit_pairs(&app, &[format!("SSE-9-{}", &run[24..])]).await;
    let page = tokio::time::timeout(Duration::from_secs(10), poll).await.unwrap().unwrap();
    assert_eq!(page["events"][0]["id"], newest[0]);
    assert!(page["cursor"].as_i64().unwrap() > cursor);

    // Only br-customs (and operators) read br-customs' stream; a bad cursor is a 400.
    for (token, status) in [("demo-ar-customs", 404), ("demo-trader", 404), ("demo-operator", 200)] {
        let r = app.client.get(url(0, "0s")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), status, "{token}");
    }
    let r = app.client.get(url(0, "0s").replace("after=0", "after=abc")).bearer_auth("demo-br-customs").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn traders_follow_the_state_of_their_own_consignments_only() {
    let app = crate::helpers::spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let (mine, theirs) = (format!("EV-T-{}", &run[24..]), format!("EV-N-{}", &run[24..]));
    let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    d["ucr"] = json!(mine);
    let receipt: Value = app.submit(&d).await.json().await.unwrap();
    d["ucr"] = json!(theirs);
    assert_eq!(app.post_json("/v1/documents", Some("demo-nsw-ar"), &d.to_string()).await.status(), 202);
    let ack = json!({"documentId": receipt["documentId"], "agency": "br-customs", "status": "hold"});
    assert_eq!(app.post_json("/v1/acknowledgments", Some("demo-br-customs"), &ack.to_string()).await.status(), 200);

    let events = |token: &'static str| {
        let url = format!("{}/v1/consignments/events?after=0&wait=0s", app.address);
        let client = app.client.clone();
        async move {
            let page: Value = client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
            page["events"].as_array().unwrap().iter().map(|e| (e["ucr"].as_str().unwrap().to_owned(), e["state"].as_str().unwrap().to_owned())).collect::<Vec<_>>()
        }
    };
    assert_eq!(events("demo-trader").await, [(mine.clone(), "submitted".to_owned()), (mine.clone(), "on_hold".to_owned())]);
    assert_eq!(events("demo-nsw-ar").await, [(theirs.clone(), "submitted".to_owned())]);
    let all = events("demo-operator").await;
    assert!(all.contains(&(mine, "on_hold".into())) && all.contains(&(theirs, "submitted".into())));
    let r = app.client.get(format!("{}/v1/consignments/events?wait=0s", app.address)).bearer_auth("demo-br-customs").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // And as a stream.
    let mut r = app.client.get(format!("{}/v1/consignments/events", app.address)).bearer_auth("demo-trader").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let streamed = read_events(&mut r, 2).await;
    assert_eq!(streamed[1].1["state"], "on_hold");
}

/// Agencies receive the payload exactly as the trader sent it (its key order, spacing, line
/// breaks and number forms), on their topic and on the HTTP stream, so a signature the trader
/// made over those bytes still checks; validation parses it as usual.
#[tokio::test]
async fn agencies_receive_the_payload_exactly_as_the_trader_sent_it() {
    use rdkafka::message::{Headers, Message};
    let brokers = test_brokers();
    let app = crate::helpers::spawn_app_configured(Some(brokers.clone()), |_| {}).await;
    let mut doc = example("packingList/valid/milk-powder-road-UY-BR.json");
    doc["ucr"] = json!(format!("RAW{}", &uuid::Uuid::now_v7().simple().to_string()[20..].to_uppercase()));
    // The members in reverse order, indented, one per line, masses as exponents.
    let members: Vec<String> = doc["payload"].as_object().unwrap().iter().rev().map(|(k, v)| format!("\"{k}\" :  {v}")).collect();
    let payload = format!("{{\n  {}\n}}", members.join(",\n  ")).replace("25000", "2.5e4");
    assert!(payload.contains("2.5e4") && payload.contains('\n'));
    let mut envelope = String::from("{");
    for k in ["documentType", "ucr", "origin", "destination"] {
        envelope.push_str(&format!("\"{k}\":{},", doc[k]));
    }
    let body = format!("{envelope}\"payload\":{payload}}}");
    let r = app.post_json("/v1/documents", Some("demo-trader"), &body).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let receipt: Value = r.json().await.unwrap();
    let document = receipt["documentId"].as_str().unwrap().to_owned();
    let topic = receipt["deliveries"][0]["topic"].as_str().unwrap().to_owned();
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();

    // On the topic: the record's value is the payload's bytes as sent.
    let c = crate::helpers::consumer(&brokers, &[&topic]);
    let value = loop {
        let m = tokio::time::timeout(Duration::from_secs(30), c.recv()).await.expect("the record arrives").unwrap();
        let id = m.headers().and_then(|h| h.iter().find(|h| h.key == "ce_id").and_then(|h| h.value)).map(|v| String::from_utf8_lossy(v).into_owned());
        if id.as_deref() == Some(document.as_str()) {
            break m.payload().unwrap().to_vec();
        }
    };
    assert_eq!(String::from_utf8(value).unwrap(), payload, "the bytes as sent");

    // On the long poll: the event's data is the same text.
    let page = app.get(&format!("/v1/agencies/{agency}/documents?after=0&wait=5s"), Some(&format!("demo-{agency}"))).await.text().await.unwrap();
    assert!(page.contains(&format!("\"data\":{payload}")), "{page}");
    let parsed: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(parsed["events"][0]["data"]["totalNetMass"], json!(25000.0), "and it parses as the document");

    // On the SSE stream: one `data:` line per line of the event, joined again by the reader.
    let mut sse = app.client.get(format!("{}/v1/agencies/{agency}/documents", app.address)).bearer_auth(format!("demo-{agency}")).send().await.unwrap();
    let mut text = String::new();
    while !text.contains("\n\n") || !text.contains("event: document") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), sse.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let block = &text[text.find("id: ").unwrap()..];
    let block = &block[..block.find("\n\n").unwrap()];
    let joined: Vec<&str> = block.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert!(joined.join("\n").contains(&payload), "{block}");
    drop(sse);
    app.stop().await;
}

/// Issue 31: the stream opened with a block holding `retry:` alone, which some clients hand over
/// as an empty event. It now opens with a comment (no client dispatches one) that says the
/// events are named, and `retry:` comes with the first event.
#[tokio::test]
async fn the_stream_opens_with_a_comment_and_sends_retry_with_its_first_event() {
    let app = crate::helpers::spawn_app().await;
    app.submit(&example("customsDeclaration/valid/export-beef-road-AR-BR.json")).await;
    let mut r = open(&app, "demo-br-customs", None).await;
    let mut text = String::new();
    while text.matches("\n\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk()).await.expect("an event within 30 s").unwrap().expect("the stream is open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let blocks: Vec<&str> = text.split("\n\n").collect();
    assert!(blocks[0].starts_with(": ") && blocks[0].contains("addEventListener"), "a comment first: {text}");
    let first = blocks[1];
    assert!(first.starts_with("retry: 1000\nid: ") && first.contains("\nevent: document\ndata: "), "retry with the first event: {text}");
    assert!(!blocks.iter().any(|b| b.trim() == "retry: 1000"), "no block of retry alone: {text}");
    app.stop().await;
}
