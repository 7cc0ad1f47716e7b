//! The acknowledgment consumer when the store cannot take an answer: it applies the same answer
//! again until the store can, and only then moves on, so later answers of the partition are
//! applied after it and no offset is stored past an answer never applied.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::helpers::{eventually, example, spawn_app};

#[tokio::test]
async fn an_answer_the_store_cannot_take_is_applied_once_it_can_and_before_the_next() {
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("spsCertificate/valid/phyto-pears-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    app.wait_for_state(&ucr, "submitted").await;

    // Another connection to the real SQLite file holds its write lock for longer than the
    // gateway's busy timeout (5 s): the gateway's writes fail meanwhile.
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let topic = app.topic("acks.br-customs");
    for (status, reason) in [("hold", "seal number differs"), ("released", "seal checked")] {
        let answer = json!({"documentId": doc, "agency": "br-customs", "status": status, "reason": reason}).to_string();
        producer.send(FutureRecord::to(&topic).key(&ucr).payload(&answer), Duration::from_secs(10)).await.expect("answer sent");
    }
    // The consumer has read an answer and met the locked store, and met it again: it is
    // trying while the lock holds (the order of what lands, below, shows it held on to the
    // first answer rather than moving on).
    let retries = |text: &str| {
        text.lines().find_map(|l| l.strip_prefix("ventanilla_ack_store_retries_total{agency=\"br-customs\"} ")).and_then(|n| n.parse::<u64>().ok())
    };
    eventually(Duration::from_secs(60), "the ack consumer to meet the locked store twice", || async {
        let text = app.get("/metrics", Some("demo-operator")).await.text().await.unwrap();
        retries(&text).filter(|n| *n >= 2)
    })
    .await;
    // Nothing was applied while the store was locked.
    let blocked: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(blocked["state"], "submitted", "{blocked:#}");
    db.execute_batch("ROLLBACK").unwrap();

    // Both answers land, in the order they were sent: the first was not skipped.
    let customs = eventually(Duration::from_secs(30), "br-customs's delivery released", || async {
        let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
        let customs = view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-customs").unwrap().clone();
        (customs["status"] == "released").then_some(customs)
    })
    .await;
    let answers: Vec<(&str, &str)> = customs["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["source"] == "kafka")
        .map(|h| (h["status"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(answers, vec![("hold", "applied"), ("released", "applied")], "{customs:#}");
}

/// A refused answer on an agency's ack topic reaches that agency, on its own refused-answers
/// topic: the refused record's place and key, the problem code, and each violation's pointer.
/// An answer taken but that changed nothing (here `accepted` after `released`: late) is told
/// there too, as `org.ventanilla.acknowledgment.unchanged` (issue 31: the README's kcat answer
/// was late and nothing said so but the log).
#[tokio::test]
async fn refused_answers_on_the_ack_topic_are_told_to_the_agency() {
    use rdkafka::message::{Headers, Message};
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("spsCertificate/valid/phyto-pears-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let topic = app.topic("acks.br-customs");
    let not_json = "released, please".to_owned();
    let bad_status = json!({"documentId": doc, "agency": "br-customs", "status": "approved"}).to_string();
    let other_agency = json!({"documentId": doc, "agency": "br-sanitary", "status": "released"}).to_string();
    let good = json!({"documentId": doc, "agency": "br-customs", "status": "accepted"}).to_string();
    let released = json!({"documentId": doc, "agency": "br-customs", "status": "released"}).to_string();
    let mut sent = Vec::new();
    for answer in [&not_json, &bad_status, &other_agency, &good, &released, &good] {
        let delivered =
            producer.send(FutureRecord::to(&topic).key(&ucr).payload(answer.as_str()), Duration::from_secs(10)).await.expect("answer sent");
        sent.push((delivered.partition, delivered.offset));
    }

    let refused = crate::helpers::consumer(&app.brokers, &[&app.topic("acks.br-customs.refused")]);
    let mut told = Vec::new();
    let mut types = Vec::new();
    while told.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(30), refused.recv()).await.expect("a refusal within 30 s").unwrap();
        let headers: std::collections::BTreeMap<String, String> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        types.push((headers["ce_type"].clone(), headers["content-type"].clone()));
        assert_eq!(m.key(), Some(ucr.as_bytes()), "keyed as the answer's record");
        told.push(serde_json::from_slice::<Value>(m.payload().unwrap()).unwrap());
    }
    let refused = ("org.ventanilla.acknowledgment.refused".to_owned(), "application/problem+json".to_owned());
    let unchanged = ("org.ventanilla.acknowledgment.unchanged".to_owned(), "application/json".to_owned());
    assert_eq!(types, [refused.clone(), refused.clone(), refused, unchanged], "{told:#?}");
    // The late answer: what it found, why, and where it was.
    let late = told.pop().unwrap();
    assert_eq!((late["outcome"].as_str(), late["deliveryStatus"].as_str()), (Some("late"), Some("released")), "{late:#}");
    assert_eq!((late["documentId"].as_str(), late["agency"].as_str()), (Some(doc.as_str()), Some("br-customs")));
    assert!(late["detail"].as_str().unwrap().contains("already had a final answer"), "{late:#}");
    assert_eq!((late["answer"]["partition"].as_i64(), late["answer"]["offset"].as_i64()), (Some(i64::from(sent[5].0)), Some(sent[5].1)));
    let codes: Vec<&str> = told.iter().map(|t| t["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["malformed-json", "invalid-acknowledgment", "forbidden"], "{told:#?}");
    for (t, (partition, offset)) in told.iter().zip(&sent) {
        assert_eq!((t["refused"]["topic"].as_str(), t["refused"]["partition"].as_i64(), t["refused"]["offset"].as_i64()),
            (Some(topic.as_str()), Some(i64::from(*partition)), Some(*offset)));
        assert_eq!(t["refused"]["key"], ucr);
    }
    assert_eq!(told[1]["errors"][0]["pointer"], "/status", "{:#}", told[1]);
    // The good answers after them were applied: the refusals held nothing up.
    assert_eq!(delivery_status(&app, &ucr, "br-customs").await["status"], "released");
}

/// The state of `agency`'s delivery of the consignment's first document, as the operator sees it.
async fn delivery_status(app: &crate::helpers::TestApp, ucr: &str, agency: &str) -> Value {
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == agency).cloned().unwrap_or(Value::Null)
}

/// Waits up to `within` for `agency`'s delivery to reach `status`; the delivery then.
async fn until_status(app: &crate::helpers::TestApp, ucr: &str, agency: &str, status: &str, within: Duration) -> Value {
    eventually(within, &format!("{agency}'s delivery of {ucr} to be {status}"), || async {
        Some(delivery_status(app, ucr, agency).await).filter(|d| d["status"] == status)
    })
    .await
}

/// Issue 26, item 1: a record on one agency's ack topic with a 600 KB key and a body that is not
/// JSON. Its refusal notice once repeated the key twice, was too large for the broker, was
/// retried for ever, and the one consumer of every agency's answers never moved past it. Now the
/// notice cuts the key (and says so), and another agency's answer sent afterwards is applied.
#[tokio::test]
async fn a_record_with_a_huge_key_holds_up_no_agency_and_its_notice_fits() {
    use rdkafka::message::Message;
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("customsDeclaration/valid/export-beef-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    app.wait_for_state(&ucr, "submitted").await;

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &app.brokers).set("message.max.bytes", "2000000").create().unwrap();
    let huge_key = vec![b'K'; 600 * 1024];
    let hostile = producer
        .send(FutureRecord::to(&app.topic("acks.br-customs")).key(&huge_key).payload("this is not JSON"), Duration::from_secs(10))
        .await
        .expect("the hostile record is taken by the broker");
    // The gateway has read it and told br-customs (before the fix, it was stuck retrying its
    // refusal notice).
    crate::support::eventually(Duration::from_secs(30), "the hostile record's refusal told", || async {
        let text = app.get("/metrics", Some("demo-operator")).await.text().await.unwrap();
        text.contains("ventanilla_ack_refusal_notices_total{agency=\"br-customs\"").then_some(())
    })
    .await;
    let answer = json!({"documentId": doc, "agency": "br-sanitary", "status": "released", "reason": "certificate checked"}).to_string();
    producer
        .send(FutureRecord::to(&app.topic("acks.br-sanitary")).key(&ucr).payload(&answer), Duration::from_secs(10))
        .await
        .expect("answer sent");

    // Another agency's answer, on its own topic, is applied.
    let sanitary = until_status(&app, &ucr, "br-sanitary", "released", Duration::from_secs(30)).await;
    assert_eq!(sanitary["status"], "released", "{sanitary:#}");

    // The refusal reached br-customs, in a notice that fits: the key cut, and said to be.
    let refused = crate::helpers::consumer(&app.brokers, &[&app.topic("acks.br-customs.refused")]);
    let m = tokio::time::timeout(Duration::from_secs(30), refused.recv()).await.expect("a refusal within 30 s").unwrap();
    let notice: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
    assert_eq!(notice["code"], "malformed-json", "{notice:#}");
    assert_eq!((notice["refused"]["partition"].as_i64(), notice["refused"]["offset"].as_i64()),
        (Some(i64::from(hostile.partition)), Some(hostile.offset)));
    assert_eq!(notice["refused"]["keyTruncated"], true, "{notice:#}");
    assert_eq!(notice["refused"]["keyBytes"], 600 * 1024);
    assert_eq!(notice["refused"]["key"].as_str().map(str::len), Some(256));
    assert_eq!(m.key().map(<[u8]>::len), Some(256), "the notice's own key is cut too");
    assert!(m.payload().unwrap().len() <= 64 * 1024);

    // And br-customs' own topic moved on: its next answer is applied too.
    let customs = json!({"documentId": doc, "agency": "br-customs", "status": "released"}).to_string();
    producer.send(FutureRecord::to(&app.topic("acks.br-customs")).key(&ucr).payload(&customs), Duration::from_secs(10)).await.unwrap();
    let delivery = until_status(&app, &ucr, "br-customs", "released", Duration::from_secs(30)).await;
    assert_eq!(delivery["status"], "released", "{delivery:#}");
}

/// Issue 26, item 1: a refusal notice the broker will not take (here its topic was changed to take
/// no record of that size) is tried a bounded number of times, then dead-lettered without its echo
/// and counted in `/metrics`; the agency's next answer is applied.
#[tokio::test]
async fn a_notice_the_broker_refuses_is_dead_lettered_and_the_topic_moves_on() {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::message::Message;
    let app = spawn_app().await;
    let receipt: Value = app.submit(&example("spsCertificate/valid/phyto-pears-road-AR-BR.json")).await.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    app.wait_for_state(&ucr, "submitted").await;

    let admin: AdminClient<_> = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    let refused_topic = app.topic("acks.br-customs.refused");
    let change = AlterConfig::new(ResourceSpecifier::Topic(&refused_topic)).set("max.message.bytes", "64");
    let done = admin.alter_configs([&change], &AdminOptions::new()).await.expect("alter configs");
    assert!(done.iter().all(Result::is_ok), "{done:?}");

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &app.brokers).create().unwrap();
    // The broker applies the change a moment later: until a record of a notice's size is refused
    // there, the refusal below could still be published.
    let filler = "p".repeat(300);
    eventually(Duration::from_secs(20), "the refused-answers topic to refuse 300-byte records", || async {
        let probe = FutureRecord::<str, str>::to(&refused_topic).payload(&filler);
        producer.send(probe, Duration::from_secs(10)).await.is_err().then_some(())
    })
    .await;
    let topic = app.topic("acks.br-customs");
    let bad = producer.send(FutureRecord::to(&topic).key(&ucr).payload("not JSON"), Duration::from_secs(10)).await.unwrap();
    let good = json!({"documentId": doc, "agency": "br-customs", "status": "released"}).to_string();
    producer.send(FutureRecord::to(&topic).key(&ucr).payload(&good), Duration::from_secs(10)).await.unwrap();

    let delivery = until_status(&app, &ucr, "br-customs", "released", Duration::from_secs(60)).await;
    assert_eq!(delivery["status"], "released", "the answer after the unpublishable notice was applied: {delivery:#}");

    let dead = crate::helpers::consumer(&app.brokers, &[&app.topic("deadletter")]);
    let mut found = Value::Null;
    while found.is_null() {
        let m = tokio::time::timeout(Duration::from_secs(30), dead.recv()).await.expect("a dead letter within 30 s").unwrap();
        let v: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null);
        if v["type"] == "org.ventanilla.acknowledgment.refused" {
            found = v;
        }
    }
    assert_eq!(found["agency"], "br-customs");
    assert_eq!(found["code"], "malformed-json");
    assert_eq!((found["refused"]["offset"].as_i64(), found["refused"]["topic"].as_str()), (Some(bad.offset), Some(topic.as_str())));

    let metrics = app.get("/metrics", Some("demo-operator")).await.text().await.unwrap();
    assert!(metrics.contains("ventanilla_ack_refusal_notices_total{agency=\"br-customs\",outcome=\"dead_lettered\"} 1"), "{metrics}");
}

/// Each agency's answers are read in a consumer group of the agency's own
/// (`<consumer_group>.<agency>`), so no agency's topic shares a rebalance with another's. A
/// gateway upgraded from the one shared group carries that group's committed offsets over to
/// each agency's group at its first start: the answers it had applied are not read again.
#[tokio::test]
async fn each_agency_has_a_group_of_its_own_and_the_shared_groups_offsets_carry_over() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let brokers = crate::helpers::test_brokers();
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let group = format!("gw-{}", uuid::Uuid::now_v7().simple());
    let topic = format!("{prefix}acks.br-customs");

    // The former gateway: its shared group had read two records of br-customs' ack topic.
    let admin: AdminClient<_> = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let new = NewTopic::new(&topic, 3, TopicReplication::Fixed(1)).set("max.message.bytes", "1064960");
    admin.create_topics([&new], &AdminOptions::new()).await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    for _ in 0..2 {
        let record = FutureRecord::<str, str>::to(&topic).partition(0).payload("answered long ago");
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
    let former: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", &group).create().unwrap();
    let mut read = TopicPartitionList::new();
    read.add_partition_offset(&topic, 0, Offset::Offset(2)).unwrap();
    former.commit(&read, CommitMode::Sync).unwrap();

    let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = crate::helpers::spawn_app_on(data, prefix.clone(), Some(brokers.clone()), |s| s.region.kafka.consumer_group = group.clone()).await;
    // The agency's own group starts where the shared one was.
    let own: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", format!("{group}.br-customs")).create().unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    // (Carried over as the consumer starts, just after the gateway listens: asked until it shows.)
    let committed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let committed = own.committed_offsets(wanted.clone(), Duration::from_secs(10)).unwrap();
            if committed.elements()[0].offset() != Offset::Invalid || std::time::Instant::now() > deadline {
                return committed;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(2), "{committed:?}");
    // Nothing of what the former group had read was refused again: a record sent now, after
    // them on the same partition, is refused, and its notice is the only one (the consumer
    // tells each refusal before it reads the next record, so the two earlier ones, read
    // again, would have been told before it).
    let record = FutureRecord::<str, str>::to(&topic).partition(0).payload("sent after the upgrade");
    producer.send(record, Duration::from_secs(10)).await.unwrap();
    let refused_topic = app.topic("acks.br-customs.refused");
    let notices = crate::helpers::consumer(&brokers, &[&refused_topic]);
    let mut offsets = Vec::new();
    while !offsets.contains(&2) {
        let m = tokio::time::timeout(Duration::from_secs(30), notices.recv()).await.expect("the refusal of the record sent after the upgrade").unwrap();
        let notice: Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
        offsets.push(notice["refused"]["offset"].as_i64().unwrap());
    }
    // Once offset 2's notice is there, any notice of offsets 0 and 1 is too.
    let watermark = move || {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", "watermarks").create().unwrap();
        (0..3).map(|p| c.fetch_watermarks(&refused_topic, p, Duration::from_secs(10)).unwrap().1).sum::<i64>()
    };
    let told = tokio::task::spawn_blocking(watermark).await.unwrap();
    assert_eq!((offsets, told), (vec![2], 1), "the records the former group had read were not read again");
}
