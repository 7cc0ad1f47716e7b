//! Kafka's own security, enforced by an Apache Kafka broker with SASL/SCRAM and the
//! StandardAuthorizer (no ACL, no access): the ACLs are the security guide's (docs/security.md) `kafka-acls` lines, run as
//! written. The gateway works with its least-privilege principal; an agency's principal reads
//! its own topic and answers on its own ack topic, and the broker itself refuses it another
//! agency's topics; the agency's principal cannot stand in for the gateway.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use ventanilla::config::{KafkaSecurity, Secret, Settings};

use crate::helpers::{example, kafka_script, repo, settings_for, spawn_app_on, OwnCluster};

/// The `kafka-acls` commands of the security guide (`docs/security.md`), continuation lines
/// joined, without the command's name.
fn guide_acl_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("docs/security.md")).expect("docs/security.md");
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in readme.lines().map(str::trim_end) {
        if current.is_empty() && !line.starts_with("kafka-acls ") {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                commands.push(current.split_whitespace().skip(1).map(str::to_owned).collect());
                current.clear();
            }
        }
    }
    commands
}

fn sasl(user: &str, password: &str) -> KafkaSecurity {
    KafkaSecurity {
        protocol: Some("sasl_plaintext".into()),
        sasl_mechanism: Some("SCRAM-SHA-256".into()),
        sasl_username: Some(user.into()),
        sasl_password: Some(Secret::new(password.into())),
        ..Default::default()
    }
}

/// An agency's own client, as its IT team would configure it.
fn agency_client(cluster: &OwnCluster, user: &str, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cluster.address)
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// The security guide's names: the default prefix and consumer group, on a cluster of this test's own.
fn readme_names(s: &mut Settings, security: KafkaSecurity) {
    s.region.kafka.topic_prefix = "ventanilla.".into();
    s.region.kafka.consumer_group = "ventanilla-gateway".into();
    s.region.kafka.security = security;
}

#[tokio::test]
async fn agencies_are_held_to_their_own_topics_by_the_broker_and_the_gateway_works_with_least_privilege() {
    let secret = |who: &str| format!("{who}-{}", uuid::Uuid::new_v4().simple());
    let (gateway_pw, customs_pw, sanitary_pw) = (secret("gw"), secret("bc"), secret("bs"));
    let cluster = OwnCluster::start_with(
        1,
        &[
            "--sasl",
            "--user", &format!("ventanilla={gateway_pw}"),
            "--user", &format!("br-customs={customs_pw}"),
            "--user", &format!("br-sanitary={sanitary_pw}"),
        ],
    )
    .await;

    // The security guide's ACLs as written; the agency lines, written for br-customs, also for br-sanitary.
    let mut commands = guide_acl_commands();
    assert!(commands.len() >= 6, "docs/security.md lists the gateway's and an agency's ACLs: {commands:?}");
    let sanitary: Vec<Vec<String>> = commands
        .iter()
        .filter(|c| c.iter().any(|a| a == "User:br-customs"))
        .map(|c| c.iter().map(|a| a.replace("br-customs", "br-sanitary")).collect())
        .collect();
    commands.extend(sanitary);
    let dir = cluster.dir.path().display().to_string();
    let runs = commands.into_iter().map(|c| {
        let mut args = vec!["kafka-acls".to_owned(), dir.clone()];
        args.extend(c);
        tokio::spawn(kafka_script(args))
    });
    for run in futures_util::future::join_all(runs).await {
        run.expect("kafka-acls ran");
    }

    // An agency's principal cannot stand in for the gateway: the broker refuses it the topics.
    let data = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut impostor = settings_for(&data, "ventanilla.", Some(cluster.address.clone()));
    readme_names(&mut impostor, sasl("br-customs", &customs_pw));
    let refused = match ventanilla::startup::Application::build(impostor).await {
        Ok(_) => panic!("a gateway with an agency's principal must not start"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("cannot create topic") && refused.to_lowercase().contains("authoriz"), "{refused}");

    // The gateway with its own, least-privilege principal.
    let security = sasl("ventanilla", &gateway_pw);
    let app = spawn_app_on(data, "ventanilla.".into(), Some(cluster.address.clone()), |s| readme_names(s, security)).await;
    let ready: Value = app.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(ready["broker"], "ok", "{ready:#}");
    let body = example("spsCertificate/valid/phyto-pears-road-AR-BR.json");
    let r = app.submit(&body).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    let topics: Vec<&str> = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap()).collect();
    assert!(topics.contains(&"ventanilla.agency.br-customs") && topics.contains(&"ventanilla.agency.br-sanitary"), "{receipt:#}");

    // br-customs reads its own topic, in a consumer group of its own prefix.
    let own: StreamConsumer = agency_client(&cluster, "br-customs", &customs_pw)
        .set("group.id", "br-customs-inspection")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    own.subscribe(&["ventanilla.agency.br-customs"]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(60), own.recv())
        .await
        .expect("br-customs receives the document")
        .expect("br-customs may read its topic");
    assert_eq!(m.key(), Some(ucr.as_bytes()));
    let ce_id = m.headers().unwrap().iter().find(|h| h.key == "ce_id").and_then(|h| h.value).unwrap();
    assert_eq!(ce_id, doc.as_bytes());

    // The broker refuses br-customs the sanitary agency's topic: metadata and fetch alike.
    let spy: StreamConsumer = agency_client(&cluster, "br-customs", &customs_pw)
        .set("group.id", "br-customs-spy")
        .create()
        .unwrap();
    let metadata = spy.fetch_metadata(Some("ventanilla.agency.br-sanitary"), Duration::from_secs(10)).unwrap();
    assert_eq!(metadata.topics()[0].error(), Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
    spy.subscribe(&["ventanilla.agency.br-sanitary"]).unwrap();
    match tokio::time::timeout(Duration::from_secs(30), spy.recv()).await {
        Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::TopicAuthorizationFailed))) => {}
        other => panic!("reading another agency's topic must be refused by the broker, got {other:?}"),
    }

    // Nor may br-customs answer for the sanitary agency, or write the status topic.
    let producer: FutureProducer = agency_client(&cluster, "br-customs", &customs_pw)
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let forged = json!({"documentId": doc, "agency": "br-sanitary", "status": "released"}).to_string();
    for topic in ["ventanilla.acks.br-sanitary", "ventanilla.status"] {
        let sent = producer.send(FutureRecord::to(topic).key(&ucr).payload(&forged), Duration::from_secs(20)).await;
        match sent {
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed), _)) => {}
            other => panic!("writing {topic} as br-customs must be refused by the broker, got {other:?}"),
        }
    }

    // br-customs answers on its own ack topic, and the gateway, as `ventanilla`, applies it.
    let answer = json!({"documentId": doc, "agency": "br-customs", "status": "hold", "reason": "documents checked at the border"});
    producer
        .send(FutureRecord::to("ventanilla.acks.br-customs").key(&ucr).payload(&answer.to_string()), Duration::from_secs(20))
        .await
        .expect("br-customs may write its own ack topic");
    let view = app.wait_for_state(&ucr, "on_hold").await;
    let customs = view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-customs").unwrap().clone();
    assert!(customs["history"].as_array().unwrap().iter().any(|h| h["source"] == "kafka" && h["status"] == "hold"), "{customs:#}");
    let sanitary = view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-sanitary").unwrap().clone();
    assert_eq!(sanitary["status"], "dispatched", "the forged answer changed nothing: {sanitary:#}");
    std::mem::forget(own);
    std::mem::forget(spy);
}
