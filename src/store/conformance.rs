//! The conformance suite: the same cases against every store, through the contract only
//! ([`Store`] and [`Ledger`], with the rules of the domain modules on top). A store's test module
//! runs it with `crate::conformance_suite!(open)`, where `async fn open()` gives a fresh, empty
//! store and whatever keeps it alive.

use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::acknowledgment;
use crate::clock::now_millis;
use crate::outbox;
use crate::acknowledgment::AckRefused;
use crate::submission::{self, Refused};

/// A commercial invoice for `ucr` routed to `agencies`.
pub fn doc(ucr: &str, agencies: &[&str]) -> NewDocument {
    NewDocument {
        id: Uuid::now_v7(),
        ucr: Ucr::parse(ucr).unwrap(),
        document_type: DocumentType::parse("commercialInvoice").unwrap(),
        schema_version: SchemaVersion::parse("1.0.0").unwrap(),
        schema_id: "x".into(),
        origin: CountryCode::parse("AR").unwrap(),
        destination: CountryCode::parse("BR").unwrap(),
        sender: "demo-trader".into(),
        payload: "{}".into(),
        idempotency_key: None,
        body_sha256: format!("hash-of-{ucr}"),
        submitted_at: now_millis(),
        version: 1,
        amends: None,
        rules: Default::default(),
        dims: DocumentDims::default(),
        seal: Default::default(),
        deliveries: agencies
            .iter()
            .map(|a| PlannedDelivery { agency: AgencyId::parse(a).unwrap(), topic: format!("t.{a}"), rule: "rule".into(), selection: None })
            .collect(),
        risk: None,
        broker_available: true,
        backlog_full: false,
    }
}

pub fn ack(doc: Uuid, agency: &str, status: AckStatus) -> AckRecord {
    AckRecord {
        inspection: None,
        finding_facts: None,
        document_id: doc,
        agency: AgencyId::parse(agency).unwrap(),
        status,
        reason: None,
        source: "http",
        by: format!("demo-{agency}"),
        at: now_millis(),
    }
}

async fn due(store: &dyn Store, limit: usize, now: Millis) -> Vec<OutboundDelivery> {
    store.read_with(move |l| l.due_deliveries("gw-test", limit, now)).await.unwrap()
}

async fn view(store: &dyn Store, ucr: &str) -> Option<ConsignmentView> {
    let ucr = Ucr::parse(ucr).unwrap();
    store.read_with(move |l| crate::tracking::consignment_view(l, &ucr)).await.unwrap()
}

async fn status_states(store: &dyn Store) -> Vec<String> {
    store
        .read_with(|l| l.unpublished_status_events("gw-test", 100, now_millis()))
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["state"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn a_consignment_walks_to_release(store: Arc<dyn Store>) {
    let store = &*store;
    let d = doc("UCR-1", &["br-customs", "br-sanitary"]);
    let Acceptance::New(receipt) = submission::accept(store, d.clone()).await.unwrap().unwrap() else { panic!("new") };
    assert_eq!(receipt.consignment_state, ConsignmentState::Submitted);
    let pending = due(store, 10, now_millis()).await;
    assert_eq!(pending.len(), 2);
    outbox::confirmed(store, pending.iter().map(|p| (p.delivery_id, p.ucr.clone())).collect(), now_millis()).await.unwrap();
    assert!(due(store, 10, now_millis()).await.is_empty());

    let a = acknowledgment::apply(store, ack(d.id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    assert_eq!(a.consignment_state, ConsignmentState::InReview);
    let again = acknowledgment::apply(store, ack(d.id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    assert_eq!(again.outcome, AckOutcome::Duplicate);
    let b = acknowledgment::apply(store, ack(d.id, "br-sanitary", AckStatus::Released)).await.unwrap().unwrap();
    assert_eq!(b.consignment_state, ConsignmentState::Released);

    let v = view(store, "UCR-1").await.unwrap();
    assert_eq!(v.state, ConsignmentState::Released);
    assert!(v.time_release.submission_to_release_ms.is_some());
    assert_eq!(v.documents[0].deliveries[0].history.len(), 4, "pending, dispatched, released, duplicate");
    assert_eq!(status_states(store).await, vec!["submitted", "in_review", "released"]);
    let records = store.read_with(|l| l.audit_records()).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["submission.accepted", "delivery.published", "acknowledgment.recorded", "acknowledgment.recorded",
         "acknowledgment.recorded"]
    );
    let ids: Vec<String> = pending.iter().map(|p| p.delivery_id.to_string()).collect();
    assert_eq!(records[1].subject, format!("deliveries:{}", ids.join(",")), "the confirmations received together, one record");
    let named: Vec<i64> = serde_json::from_str::<serde_json::Value>(&records[1].detail).unwrap()["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deliveryId"].as_i64().unwrap())
        .collect();
    assert_eq!(named, pending.iter().map(|p| p.delivery_id).collect::<Vec<_>>());
    assert!(crate::audit::verify(records).is_ok(), "the chain verifies");
}

pub async fn acknowledgments_for_unknown_or_unrouted_documents_change_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let d = doc("UCR-2", &["br-customs"]);
    submission::accept(store, d.clone()).await.unwrap().unwrap();
    let unknown = acknowledgment::apply(store, ack(Uuid::now_v7(), "br-customs", AckStatus::Accepted)).await;
    assert!(matches!(unknown, Ok(Err(AckRefused::UnknownDocument(_)))));
    let foreign = acknowledgment::apply(store, ack(d.id, "uy-customs", AckStatus::Accepted)).await;
    assert!(matches!(foreign, Ok(Err(AckRefused::NotRouted { .. }))));
    let v = view(store, "UCR-2").await.unwrap();
    assert_eq!(v.documents[0].deliveries[0].history.len(), 1);
    assert_eq!(v.state, ConsignmentState::Submitted);
}

pub async fn a_repeated_document_gets_its_first_receipt_and_a_different_one_a_conflict(store: Arc<dyn Store>) {
    let store = &*store;
    let mut first = doc("UCR-3", &["br-customs"]);
    first.idempotency_key = Some("key-1".into());
    let Acceptance::New(receipt) = submission::accept(store, first.clone()).await.unwrap().unwrap() else { panic!("new") };

    // Same key, same body, new id: the first receipt, nothing written.
    let mut again = first.clone();
    again.id = Uuid::now_v7();
    match submission::accept(store, again.clone()).await.unwrap().unwrap() {
        Acceptance::Replayed(r) => assert_eq!(r["documentId"], receipt.document_id.to_string()),
        other => panic!("expected a replay, got {other:?}"),
    }
    // Same key, different body: conflict.
    again.body_sha256 = "other".into();
    assert!(matches!(submission::accept(store, again.clone()).await, Ok(Err(Refused::Conflict { .. }))));
    // No key, same identity and body: the first receipt; different body: conflict.
    let mut nokey = first.clone();
    nokey.id = Uuid::now_v7();
    nokey.idempotency_key = None;
    assert!(matches!(submission::accept(store, nokey.clone()).await.unwrap().unwrap(), Acceptance::Replayed(_)));
    nokey.body_sha256 = "amended".into();
    assert!(matches!(submission::accept(store, nokey).await, Ok(Err(Refused::Conflict { .. }))));
    assert_eq!(due(store, 10, now_millis()).await.len(), 1, "one document, one delivery");
}

pub async fn a_batch_commits_in_order_and_a_refused_document_leaves_the_others(store: Arc<dyn Store>) {
    let store = &*store;
    let mut foreign = doc("UCR-B0", &["br-customs"]);
    foreign.sender = "another-trader".into();
    submission::accept(store, foreign).await.unwrap().unwrap();
    let first = doc("UCR-B1", &["br-customs", "ar-customs"]);
    let mut taken = doc("UCR-B0", &["br-customs"]);
    taken.sender = "demo-trader".into();
    let results = submission::accept_all(store, vec![first.clone(), taken, doc("UCR-B2", &["br-customs"]), first.clone()])
        .await
        .unwrap();
    assert!(matches!(&results[0], Ok(Acceptance::New(r)) if r.document_id == first.id && r.deliveries.len() == 2));
    assert!(matches!(&results[1], Err(Refused::ConsignmentOfAnother(u)) if u.as_str() == "UCR-B0"), "{:?}", results[1]);
    assert!(matches!(&results[2], Ok(Acceptance::New(_))));
    // The repeat, in the same commit, is answered with the first receipt.
    assert!(matches!(&results[3], Ok(Acceptance::Replayed(r)) if r["documentId"] == first.id.to_string()));
    // The refused document left nothing; the others' deliveries are in the outbox, in order.
    let pending = due(store, 100, now_millis()).await;
    let ucrs: Vec<&str> = pending.iter().map(|d| d.ucr.as_str()).collect();
    assert_eq!(ucrs, ["UCR-B0", "UCR-B1", "UCR-B1", "UCR-B2"]);
    assert_eq!(view(store, "UCR-B2").await.unwrap().state, ConsignmentState::Submitted);
    assert_eq!(status_states(store).await.len(), 3, "one status event per opened consignment");
}

pub async fn a_document_failing_part_way_leaves_nothing_and_spoils_its_batch(store: Arc<dyn Store>) {
    let store = &*store;
    // Two deliveries to one agency break a constraint after the consignment, the document
    // and the first delivery are written: not a refusal, so nothing of it is committed.
    let broken = doc("UCR-P1", &["br-customs", "br-customs"]);
    let e = submission::accept(store, broken.clone()).await.unwrap_err();
    assert!(matches!(e, StoreError::Database(_)), "{e:?}");
    let good = doc("UCR-P2", &["br-customs"]);
    let e = submission::accept_all(store, vec![good.clone(), broken]).await.unwrap_err();
    assert!(matches!(e, StoreError::Database(_)), "{e:?}");
    for ucr in ["UCR-P1", "UCR-P2"] {
        assert!(view(store, ucr).await.is_none(), "{ucr} was not committed");
    }
    assert!(due(store, 10, now_millis()).await.is_empty());
    // The store goes on: the good document alone is committed.
    assert!(matches!(submission::accept(store, good).await, Ok(Ok(Acceptance::New(_)))));
    assert_eq!(store.read_with(|l| l.audit_records()).await.unwrap().len(), 1, "only the committed document is audited");
}

pub async fn a_rule_that_panics_fails_its_own_write_and_the_writer_goes_on(store: Arc<dyn Store>) {
    // A panicking work among documents of the same commit: it alone fails, what it wrote before
    // panicking is undone, and the documents around it are committed.
    let before = doc("UCR-PANIC-1", &["br-customs"]);
    let after = doc("UCR-PANIC-3", &["br-customs"]);
    let half = doc("UCR-PANIC-2", &["br-customs"]);
    let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
    let (a, b, c) = tokio::join!(
        async move { submission::accept(&*s1, before).await },
        async move {
            s2.write_with(Vec::new(), move |l| -> Result<(), StoreError> {
                submission::accept_in(l, &half)?.expect("a new document");
                panic!("a defect in a rule");
            })
            .await
        },
        async move { submission::accept(&*s3, after).await },
    );
    assert!(matches!(a, Ok(Ok(Acceptance::New(_)))), "{a:?}");
    assert!(matches!(&b, Err(StoreError::Unavailable(m)) if m.contains("a defect in a rule")), "{b:?}");
    assert!(matches!(c, Ok(Ok(Acceptance::New(_)))), "{c:?}");
    assert!(view(&*store, "UCR-PANIC-2").await.is_none(), "what the panicking work wrote was undone");
    // The writer is still there.
    assert!(matches!(submission::accept(&*store, doc("UCR-PANIC-4", &["br-customs"])).await, Ok(Ok(Acceptance::New(_)))));
    let ucrs: Vec<String> = due(&*store, 10, now_millis()).await.iter().map(|d| d.ucr.to_string()).collect();
    assert_eq!(ucrs, ["UCR-PANIC-1", "UCR-PANIC-3", "UCR-PANIC-4"]);
    let records = store.read_with(|l| l.audit_records()).await.unwrap();
    assert_eq!(records.len(), 3, "the undone document left no audit record");
    assert!(crate::audit::verify(records).is_ok(), "the chain is unbroken across the undone record");
}

pub async fn a_write_the_database_refuses_fails_alone(store: Arc<dyn Store>) {
    // A notice of a document that does not exist breaks a reference: that work fails with the
    // database's error, and the documents of the same commit are committed.
    let (before, after) = (doc("UCR-FK-1", &["br-customs"]), doc("UCR-FK-2", &["br-customs"]));
    let (s1, s2, s3) = (store.clone(), store.clone(), store.clone());
    let (a, b, c) = tokio::join!(
        async move { submission::accept(&*s1, before).await },
        async move {
            s2.write_with(Vec::new(), |l| l.insert_notice(Uuid::now_v7(), Uuid::now_v7(), NoticeKind::Withdrawn, "{}", now_millis())).await
        },
        async move { submission::accept(&*s3, after).await },
    );
    assert!(matches!(a, Ok(Ok(Acceptance::New(_)))), "{a:?}");
    assert!(matches!(b, Err(StoreError::Database(_))), "{b:?}");
    let said = b.as_ref().map(|_| String::new()).unwrap_or_else(|e| e.to_string());
    assert!(said.to_lowercase().contains("foreign key"), "the error says what the database said: {said}");
    assert!(matches!(c, Ok(Ok(Acceptance::New(_)))), "{c:?}");
    let ucrs: Vec<String> = due(&*store, 10, now_millis()).await.iter().map(|d| d.ucr.to_string()).collect();
    assert_eq!(ucrs, ["UCR-FK-1", "UCR-FK-2"]);
}

pub async fn a_delivery_keeps_its_selection_for_the_outbox_the_stream_and_the_view(store: Arc<dyn Store>) {
    let mut d = doc("UCR-SEL", &["br-customs", "br-sanitary"]);
    let selected = r#"{"channel":"red","score":40.0,"source":"rule","reasons":[]}"#;
    d.deliveries[0].selection = Some(selected.into());
    submission::accept(&*store, d.clone()).await.unwrap().unwrap();
    let mut due = due(&*store, 10, now_millis()).await;
    due.sort_by_key(|o| o.agency.to_string());
    assert_eq!(due.iter().map(|o| o.selection.as_deref()).collect::<Vec<_>>(), [Some(selected), None]);
    let customs = AgencyId::parse("br-customs").unwrap();
    let id = d.id;
    let (stream, recorded) = store
        .read_with(move |l| Ok((l.agency_deliveries(&customs, 0, 10, usize::MAX)?, l.deliveries_of(id)?)))
        .await
        .unwrap();
    assert_eq!(stream.iter().map(|o| o.selection.as_deref()).collect::<Vec<_>>(), [Some(selected)]);
    assert_eq!(recorded.iter().map(|r| r.selection.as_deref()).collect::<Vec<_>>(), [Some(selected), None]);

    // The consignment's release-time facts take its strictest channel: as it is opened, and as
    // they are computed again from the rows after an answer.
    let risk_channel = |store: Arc<dyn Store>| async move {
        let all = ReleaseTimesQuery { from: Millis::MIN, to: Millis::MAX, owner: None, agency: None };
        let facts = store.read_with(move |l| l.release_times(&all)).await.unwrap();
        facts.into_iter().find(|c| c.ucr.as_str() == "UCR-SEL").map(|c| c.risk_channel)
    };
    assert_eq!(risk_channel(store.clone()).await.as_deref(), Some("red"));
    acknowledgment::apply(&*store, ack(d.id, "br-sanitary", AckStatus::Accepted)).await.unwrap().unwrap();
    assert_eq!(risk_channel(store.clone()).await.as_deref(), Some("red"), "recomputed from the rows");

    // For risk's figures: the deliveries of a period with a selection, and what was found.
    let found = Inspection { performed: true, finding: Some(Finding::Irregularity), revenue: Some(310.0), code: None };
    let a = AckRecord { inspection: Some(found), ..ack(d.id, "br-customs", AckStatus::Released) };
    acknowledgment::apply(&*store, a).await.unwrap().unwrap();
    let at = d.submitted_at;
    let outcomes = store.read_with(move |l| l.selection_outcomes(at, at + 1, None, 10)).await.unwrap();
    assert_eq!(outcomes.len(), 1, "the delivery without a selection is not among them");
    assert_eq!((outcomes[0].agency.as_str(), outcomes[0].selection.as_str()), ("br-customs", selected));
    assert_eq!((outcomes[0].finding, outcomes[0].revenue), (Some(Finding::Irregularity), Some(310.0)));
    let sanitary = AgencyId::parse("br-sanitary").unwrap();
    assert!(store.read_with(move |l| l.selection_outcomes(at, at + 1, Some(&sanitary), 10)).await.unwrap().is_empty());
    assert!(store.read_with(move |l| l.selection_outcomes(at - 10, at, None, 10)).await.unwrap().is_empty(), "the period's end is not in it");
}

pub async fn an_inspection_finding_is_kept_with_its_delivery_the_latest_answers(store: Arc<dyn Store>) {
    let d = doc("UCR-INSP", &["br-customs"]);
    submission::accept(&*store, d.clone()).await.unwrap().unwrap();
    let found = Inspection { performed: true, finding: Some(Finding::Irregularity), revenue: Some(1200.5), code: Some("UNDERVAL".into()) };
    let with = |status, inspection: &Inspection| AckRecord { inspection: Some(inspection.clone()), ..ack(d.id, "br-customs", status) };
    acknowledgment::apply(&*store, with(AckStatus::Hold, &found)).await.unwrap().unwrap();
    let id = d.id;
    let kept = store.read_with(move |l| l.deliveries_of(id)).await.unwrap();
    assert_eq!(kept[0].inspection.as_ref(), Some(&found));
    // A later answer's finding replaces it; an answer without one leaves it.
    let cleared = Inspection { performed: true, finding: Some(Finding::None), revenue: None, code: None };
    acknowledgment::apply(&*store, with(AckStatus::Released, &cleared)).await.unwrap().unwrap();
    acknowledgment::apply(&*store, ack(d.id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    let kept = store.read_with(move |l| l.deliveries_of(id)).await.unwrap();
    assert_eq!(kept[0].inspection.as_ref(), Some(&cleared));
    let records = store.read_with(|l| l.audit_records()).await.unwrap();
    assert!(records.iter().any(|r| r.action == "acknowledgment.recorded" && r.detail.contains("UNDERVAL")), "the finding is audited");
}

pub async fn risk_rule_sets_are_kept_in_turn_and_the_latest_read_back(store: Arc<dyn Store>) {
    assert!(store.read_with(|l| l.latest_risk_rules()).await.unwrap().is_none(), "none before the first change");
    // Put at once from eight tasks: each takes its own version, none is lost.
    let puts: Vec<_> = (0..8i64)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.write_with(vec![Subject::RiskRules], move |l| l.save_risk_rules(1_000 + i, "demo-operator", &format!("change {i}"), &format!("[{i}]")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for p in puts {
        versions.push(p.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    let latest = store.read_with(|l| l.latest_risk_rules()).await.unwrap().unwrap();
    assert_eq!(latest.version, 8);
    assert_eq!(latest.changed_by, "demo-operator");
    assert_eq!(latest.rules, format!("[{}]", latest.at - 1_000), "the set, its time and its reason kept together");
    assert_eq!(latest.reason, format!("change {}", latest.at - 1_000));
}

pub async fn findings_are_kept_with_their_facts_read_in_time_order_and_one_model_is_live(store: Arc<dyn Store>) {
    let t0 = now_millis();
    let mut ids = Vec::new();
    for (i, finding) in [Finding::Irregularity, Finding::None, Finding::None].into_iter().enumerate() {
        let d = doc(&format!("UCR-FIND-{i}"), &["br-customs"]);
        submission::accept(&*store, d.clone()).await.unwrap().unwrap();
        let inspection = Inspection { performed: true, finding: Some(finding), revenue: None, code: None };
        let facts = format!("{{\"route\":\"AR-BR\",\"parties\":[\"AR-CUIT:{i}\"]}}");
        let a = AckRecord { inspection: Some(inspection), finding_facts: Some(facts), at: t0 + 10 - i as Millis, ..ack(d.id, "br-customs", AckStatus::Released) };
        acknowledgment::apply(&*store, a).await.unwrap().unwrap();
        ids.push(d.id);
    }
    // Performed without a finding, or without facts: not learned from.
    let d = doc("UCR-FIND-3", &["br-customs"]);
    submission::accept(&*store, d.clone()).await.unwrap().unwrap();
    let a = AckRecord { inspection: Some(Inspection { performed: false, finding: None, revenue: None, code: None }), ..ack(d.id, "br-customs", AckStatus::Released) };
    acknowledgment::apply(&*store, a).await.unwrap().unwrap();

    // In time order (the last answered first here), a page at a time.
    let first = store.read_with(|l| l.findings_after((Millis::MIN, i64::MIN), 2)).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].at, first[0].irregular), (t0 + 8, false));
    assert!(first[0].facts.contains("AR-CUIT:2"));
    let after = (first[1].at, first[1].delivery_id);
    let rest = store.read_with(move |l| l.findings_after(after, 2)).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].irregular && rest[0].facts.contains("AR-CUIT:0"));

    // A submitter's findings, answered in a period: its own documents' only.
    let of = |sender: Option<&'static str>, from: Millis, to: Millis| {
        let s = store.clone();
        async move { s.read_with(move |l| l.findings_of_sender(sender, from, to, 10)).await.unwrap() }
    };
    let own = of(Some("demo-trader"), t0, t0 + 11).await;
    assert_eq!(own.iter().map(|f| f.at).collect::<Vec<_>>(), [t0 + 8, t0 + 9, t0 + 10], "in time order");
    assert!(of(Some("demo-trader-2"), t0, t0 + 11).await.is_empty(), "another submitter's: none");
    assert_eq!(of(None, t0, t0 + 11).await.len(), 3, "anyone's");
    assert_eq!(of(Some("demo-trader"), t0 + 9, t0 + 10).await.len(), 1, "the period's only");

    // Models: the next version each; one live at most, a live one replacing it.
    assert!(store.read_with(|l| l.live_risk_model()).await.unwrap().is_none());
    let save = |live: bool, text: &'static str| {
        let s = store.clone();
        async move { s.write_with(vec![Subject::RiskModels], move |l| l.save_risk_model(t0, "demo-operator", live, text)).await.unwrap() }
    };
    assert_eq!(save(true, "{\"m\":1}").await, 1);
    assert_eq!(save(false, "{\"m\":2}").await, 2);
    let live = store.read_with(|l| l.live_risk_model()).await.unwrap().unwrap();
    assert_eq!((live.version, live.live, live.model.as_str()), (1, true, "{\"m\":1}"), "a model that did not beat it leaves it live");
    assert_eq!(save(true, "{\"m\":3}").await, 3);
    let live = store.read_with(|l| l.live_risk_model()).await.unwrap().unwrap();
    assert_eq!((live.version, live.trained_by.as_str()), (3, "demo-operator"));
}

pub async fn a_standing_instructions_answer_leaves_its_delivery_to_be_published(store: Arc<dyn Store>) {
    let d = doc("UCR-STANDING", &["br-customs", "br-sanitary"]);
    submission::accept(&*store, d.clone()).await.unwrap().unwrap();
    let standing = AckRecord { source: crate::acknowledgment::STANDING_INSTRUCTION, ..ack(d.id, "br-customs", AckStatus::Released) };
    acknowledgment::apply(&*store, standing).await.unwrap().unwrap();
    // The agency's own answer shows it has the document; the standing instruction's does not.
    acknowledgment::apply(&*store, ack(d.id, "br-sanitary", AckStatus::Released)).await.unwrap().unwrap();
    let waiting: Vec<String> = due(&*store, 10, now_millis()).await.iter().filter(|o| o.document_id == d.id).map(|o| o.agency.to_string()).collect();
    assert_eq!(waiting, ["br-customs"]);
    let id = d.id;
    let kept = store.read_with(move |l| l.deliveries_of(id)).await.unwrap();
    assert!(kept.iter().all(|r| r.status == DeliveryStatus::Answered(AckStatus::Released)), "both decided: {kept:?}");
    // The broker refusing it to the end: it leaves the outbox for the failed list, still
    // released; sent again, it is due again, still released.
    let customs = kept.iter().find(|r| r.agency.as_str() == "br-customs").unwrap().id;
    assert!(store.write_with(Vec::new(), move |l| l.mark_failed(customs, now_millis(), "refused")).await.unwrap());
    assert!(due(&*store, 10, now_millis()).await.iter().all(|o| o.document_id != d.id), "out of the outbox");
    let failed = store.read_with(|l| l.failed_deliveries(None)).await.unwrap();
    assert!(failed.iter().any(|f| f.delivery_id == customs), "on the failed list");
    assert!(store.write_with(Vec::new(), move |l| l.requeue_failed(customs)).await.unwrap());
    assert_eq!(due(&*store, 10, now_millis()).await.iter().filter(|o| o.document_id == d.id).count(), 1);
    let kept = store.read_with(move |l| l.deliveries_of(id)).await.unwrap();
    assert!(kept.iter().all(|r| r.status == DeliveryStatus::Answered(AckStatus::Released)), "the decision stands: {kept:?}");
}

/// A parcel that opens its consignment and that agencies' standing instructions release as it
/// is accepted is released in the same transaction without reading back its own rows
/// (`acknowledgment::release_at_opening`): it must leave what the same answers applied as any
/// answer leave. For each case, two consignments whose deliveries are selected alike: one
/// released at acceptance, the other accepted pending, then given the same answers through
/// `apply_in`. Their deliveries, histories, states, status events, release-time facts and audit
/// records are the same. The cases: every agency released; and one agency held back (a red
/// selection) on a document that names a border post (its first answer is the goods' arrival).
pub async fn a_standing_release_at_acceptance_leaves_what_the_same_answers_would(store: Arc<dyn Store>) {
    standing_release_case(&store, "ALL", &["uy-customs", "uy-sanitary"], None).await;
    standing_release_case(&store, "SOME", &["uy-customs", "uy-sanitary", "uy-border"], Some("UYMVD")).await;
}

/// One case of [`a_standing_release_at_acceptance_leaves_what_the_same_answers_would`]: the
/// last of `agencies` is held back (red) when there are three.
async fn standing_release_case(store: &Arc<dyn Store>, case: &str, agencies: &[&str], border_post: Option<&str>) {
    let mut region: crate::config::RegionConfig =
        toml::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap()).unwrap();
    // No rule and no budget: every agency's channel is green, and the parcel is under UY's
    // de minimis.
    region.risk.rules.clear();
    region.risk.budgets.clear();
    let risk = Arc::new(crate::risk::Risk::new(&region).unwrap());
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ecommerceShipment/valid/air-yerba-mate-AR-UY.json")).unwrap();
    let payload = serde_json::from_str::<serde_json::Value>(&text).unwrap()["payload"].clone();
    let facts = risk.facts("ecommerceShipment", "AR", "UY", &payload);
    let plan = crate::risk::RiskPlan::new(risk.clone(), facts.clone());
    let red = r#"{"channel":"red","score":100.0,"source":"mandatory","reasons":[]}"#.to_owned();
    let held = (agencies.len() == 3).then(|| agencies[2]);
    let at = now_millis();
    let prepared = |ucr: &str| {
        let mut d = doc(ucr, agencies);
        d.submitted_at = at;
        d.dims.border_post = border_post.map(str::to_owned);
        for planned in &mut d.deliveries {
            if Some(planned.agency.as_str()) == held {
                planned.selection = Some(red.clone());
            }
        }
        d
    };
    let mut fast = prepared(&format!("UCR-DEMINIMIS-FAST-{case}"));
    fast.risk = Some(crate::risk::RiskPlan::new(risk, facts));
    let mut slow = prepared(&format!("UCR-DEMINIMIS-SLOW-{case}"));
    let mut answers = Vec::new();
    for d in slow.deliveries.iter_mut().filter(|d| d.selection.is_none()) {
        let (selection, why) = plan.select(&d.agency);
        d.selection = selection;
        answers.push(AckRecord {
            reason: Some(why.expect("a green parcel under the de minimis")),
            source: acknowledgment::STANDING_INSTRUCTION,
            by: format!("standing-instruction:{}", d.agency),
            at,
            ..ack(slow.id, d.agency.as_str(), AckStatus::Released)
        });
    }
    let Acceptance::New(receipt) = submission::accept(&**store, fast.clone()).await.unwrap().unwrap() else { panic!("a new document") };
    let released = receipt.deliveries.iter().filter(|d| d.status == DeliveryStatus::Answered(AckStatus::Released)).count();
    assert_eq!(released, answers.len(), "{case}: {:?}", receipt.deliveries);
    submission::accept(&**store, slow.clone()).await.unwrap().unwrap();
    let slow_ucr = slow.ucr.clone();
    store
        .write_with(vec![Subject::Consignment(slow_ucr)], move |l| {
            for a in &answers {
                acknowledgment::apply_in(l, a)?.expect("applied");
            }
            Ok(())
        })
        .await
        .unwrap();

    // What each consignment left, its own ids and UCR written as ID, D0, D1... and UCR.
    let left = |d: &NewDocument| {
        let (id, ucr) = (d.id, d.ucr.clone());
        let store = store.clone();
        async move {
            store
                .read_with(move |l| {
                    let records = l.deliveries_of(id)?;
                    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
                    let plain = |text: &str| -> serde_json::Value {
                        let mut v: serde_json::Value = serde_json::from_str(&text.replace(&id.to_string(), "ID").replace(ucr.as_str(), "UCR")).unwrap();
                        if let Some(k) = v["deliveryId"].as_i64().and_then(|d| ids.iter().position(|i| *i == d)) {
                            v["deliveryId"] = serde_json::json!(format!("D{k}"));
                        }
                        v
                    };
                    let mut deliveries = Vec::new();
                    for r in records.iter() {
                        let history: Vec<_> = l.history_of(r.id)?.into_iter().map(|h| (h.status, h.at_ms, h.source, h.reason, h.outcome)).collect();
                        deliveries.push((r.agency.clone(), r.status, r.first_answer_at, r.dispatched_at, r.selection.clone(), history));
                    }
                    let c = l.consignment(&ucr)?.unwrap();
                    let (facts, parts) = l.release_times_of(Some(std::slice::from_ref(&ucr)))?;
                    let facts: Vec<_> = facts.into_iter().map(|f| ConsignmentReleaseTimes { ucr: Ucr::parse("X").unwrap(), ..f }).collect();
                    let mut parts: Vec<_> = parts.into_iter().map(|(_, p)| p).collect();
                    parts.sort_by(|a, b| a.agency.cmp(&b.agency));
                    let audit: Vec<_> = l
                        .audit_records()?
                        .into_iter()
                        .filter(|r| r.subject == id.to_string())
                        .map(|r| (r.action, r.participant, r.at, plain(&r.detail)))
                        .collect();
                    let events: Vec<_> = l
                        .unpublished_status_events("gw-test", 1000, now_millis())?
                        .into_iter()
                        .filter(|e| e.ucr == ucr)
                        .map(|e| plain(&e.body))
                        .collect();
                    let changes = l.release_time_changes_after(0, 100_000)?.into_iter().filter(|(_, u)| *u == ucr).count();
                    Ok((deliveries, (c.state, c.released_at), facts, parts, audit, events, changes))
                })
                .await
                .unwrap()
        }
    };
    let (fast_left, slow_left) = (left(&fast).await, left(&slow).await);
    assert_eq!(fast_left.0, slow_left.0, "{case}: deliveries and their histories");
    assert_eq!(fast_left.1, slow_left.1, "{case}: the consignment's state");
    assert_eq!(fast_left.2, slow_left.2, "{case}: the release-time facts");
    assert_eq!(fast_left.3, slow_left.3, "{case}: the agencies' release-time facts");
    assert_eq!(fast_left.4, slow_left.4, "{case}: the audit records");
    assert_eq!(fast_left.5, slow_left.5, "{case}: the status events");
    assert!(fast_left.5.len() >= 2, "{case}: opened, then changed: {:?}", fast_left.5);
    // The fast path was taken: its facts were written once, where the answers applied one by
    // one wrote them at the opening and again at each answer.
    assert_eq!((fast_left.6, slow_left.6), (1, 1 + released), "{case}: release-time changes noted");
    // Every delivery still to be published to its agency.
    let waiting = due(&**store, 100, now_millis()).await;
    for d in [&fast, &slow] {
        assert_eq!(waiting.iter().filter(|o| o.document_id == d.id).count(), agencies.len(), "{case}");
    }
}

pub async fn concurrent_submissions_all_land(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move { submission::accept(&*s, doc(&format!("UCR-C{i}"), &["br-customs"])).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap().expect("accepted");
    }
    assert_eq!(due(&*store, 1000, now_millis()).await.len(), 200);
    let records = store.read_with(|l| l.audit_records()).await.unwrap();
    assert_eq!(records.len(), 200);
    assert!(crate::audit::verify(records).is_ok(), "one unbroken chain");
}

pub async fn a_refused_delivery_waits_holds_back_its_ucr_fails_and_is_sent_again(store: Arc<dyn Store>) {
    let store = &*store;
    let first = doc("UCR-R", &["br-customs"]);
    let mut second = doc("UCR-R", &["br-customs"]);
    second.document_type = DocumentType::parse("packingList").unwrap();
    let other = doc("UCR-S", &["br-customs"]);
    for d in [&first, &second, &other] {
        submission::accept(store, d.clone()).await.unwrap().unwrap();
    }
    let backlog = || store.read_with(|l| l.outbox_backlog());
    let now = now_millis();
    let all = due(store, 10, now).await;
    assert_eq!(all.len(), 3);
    let (refused, refused_ucr) = (all[0].delivery_id, all[0].ucr.clone());
    assert_eq!(backlog().await.unwrap(), 3);

    // Refused once, due again in a minute: it and the later record of its UCR wait; the other
    // consignment goes on.
    outbox::refused(store, refused, refused_ucr.clone(), now, "too large".into(), now + 60_000).await.unwrap();
    let d = due(store, 10, now).await;
    assert_eq!(d.iter().map(|d| d.ucr.as_str()).collect::<Vec<_>>(), vec!["UCR-S"]);
    let later = due(store, 10, now + 60_000).await;
    assert_eq!(later.len(), 3, "due again after the delay, still first");
    assert_eq!(later[0].delivery_id, refused);
    assert_eq!(later[0].attempts, 1);

    // The last attempt: failed, out of the outbox, and the consignment says so.
    outbox::failed(store, refused, refused_ucr, now + 60_000, "too large".into()).await.unwrap();
    assert_eq!(backlog().await.unwrap(), 2);
    let d = due(store, 10, now + 120_000).await;
    assert_eq!(d.iter().map(|d| d.ucr.as_str()).collect::<Vec<_>>(), vec!["UCR-S"], "the failed one holds back its UCR");
    let failed = store.read_with(|l| l.failed_deliveries(None)).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].delivery_id, failed[0].attempts), (refused, 2));
    let ar = AgencyId::parse("ar-customs").unwrap();
    assert!(store.read_with(move |l| l.failed_deliveries(Some(&ar))).await.unwrap().is_empty());
    let v = view(store, "UCR-R").await.unwrap();
    assert_eq!(v.state, ConsignmentState::DeliveryFailed);
    assert_eq!(v.documents[0].deliveries[0].status, DeliveryStatus::Failed);
    assert_eq!(v.documents[0].deliveries[0].last_error.as_deref(), Some("too large"));

    // An operator sends it again: back in the outbox with fresh attempts.
    let out = outbox::retry(store, RetrySelection::Deliveries(vec![refused, all[2].delivery_id, 999]), "ops".into(), now)
        .await
        .unwrap();
    assert_eq!((out.retried, out.not_failed, out.unknown), (vec![refused], vec![all[2].delivery_id], vec![999]));
    let v = view(store, "UCR-R").await.unwrap();
    assert_eq!(v.state, ConsignmentState::Submitted);
    let d = &v.documents[0].deliveries[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(d.history.last().unwrap().reason.as_deref(), Some("sent again by ops"));
    assert_eq!(due(store, 10, now).await.len(), 3);
    assert!(store.read_with(|l| l.failed_deliveries(None)).await.unwrap().is_empty());
}

pub async fn cursors_see_events_in_commit_order_and_webhooks_start_from_now(store: Arc<dyn Store>) {
    let s = &*store;
    submission::accept(s, doc("UCR-W1", &["br-customs"])).await.unwrap().unwrap();
    let hook = crate::webhooks::register(s, "demo-trader".into(), "https://example.org/h".into(), "k".into(), 1, now_millis())
        .await
        .unwrap()
        .expect("the first webhook is registered");
    assert_eq!(hook.delivered_through, s.read_with(|l| l.latest_status_event()).await.unwrap(), "from the events committed from now on");
    let second = crate::webhooks::register(s, "demo-trader".into(), "https://example.org/2".into(), "k".into(), 1, now_millis()).await.unwrap();
    assert!(second.is_none(), "the limit of one holds");
    let mut other = doc("UCR-W2", &["br-customs"]);
    other.sender = "another-trader".into();
    submission::accept(s, other).await.unwrap().unwrap();
    submission::accept(s, doc("UCR-W3", &["br-customs"])).await.unwrap().unwrap();
    let mine = s.read_with(|l| l.status_events_after(Some("demo-trader"), 0, 10)).await.unwrap();
    assert_eq!(mine.iter().map(|e| e.ucr.as_str()).collect::<Vec<_>>(), ["UCR-W1", "UCR-W3"], "own events only, in order");
    assert!(mine.windows(2).all(|w| w[0].position < w[1].position));
    let after = s.read_with(move |l| l.status_events_after(None, hook.delivered_through, 10)).await.unwrap();
    assert_eq!(after.iter().map(|e| e.ucr.as_str()).collect::<Vec<_>>(), ["UCR-W2", "UCR-W3"]);
    assert!(crate::webhooks::delete(s, "another-trader".into(), hook.id, now_millis()).await.map(|removed| !removed).unwrap(), "not another's");
    assert!(crate::webhooks::delete(s, "demo-trader".into(), hook.id, now_millis()).await.unwrap());
    assert!(crate::webhooks::list(s, "demo-trader".into()).await.unwrap().is_empty());
}

pub async fn a_consignment_is_published_by_one_gateway_at_a_time(store: Arc<dyn Store>) {
    let s = &*store;
    for ucr in ["UCR-K1", "UCR-K2"] {
        submission::accept(s, doc(ucr, &["br-customs", "ar-customs"])).await.unwrap().unwrap();
    }
    let ucrs = |batch: &[OutboundDelivery]| batch.iter().map(|d| d.ucr.as_str().to_owned()).collect::<Vec<_>>();
    let now = now_millis();
    let a = outbox::claim_due_deliveries(s, "gw-a", 10, now).await.unwrap();
    assert_eq!(ucrs(&a), ["UCR-K1", "UCR-K1", "UCR-K2", "UCR-K2"], "gateway a claims both consignments");
    assert!(outbox::claim_due_deliveries(s, "gw-b", 10, now).await.unwrap().is_empty(), "b gets nothing a holds");
    assert!(outbox::claim_status_events(s, "gw-b", 10, now).await.unwrap().is_empty(), "nor their status events");
    assert_eq!(outbox::claim_status_events(s, "gw-a", 10, now).await.unwrap().len(), 2);
    assert_eq!(s.read_with(move |l| l.claims_held("gw-a", now)).await.unwrap(), 2);

    // a publishes UCR-K1's records; then it dies: once its leases ran out, b takes over what is
    // left, in order.
    outbox::confirmed(s, a.iter().filter(|d| d.ucr.as_str() == "UCR-K1").map(|d| (d.delivery_id, d.ucr.clone())).collect(), now).await.unwrap();
    let later = now + outbox::CLAIM_LEASE_MS + 1;
    let b = outbox::claim_due_deliveries(s, "gw-b", 10, later).await.unwrap();
    assert_eq!(ucrs(&b), ["UCR-K2", "UCR-K2"]);
    assert!(outbox::claim_due_deliveries(s, "gw-a", 10, later).await.unwrap().is_empty(), "a lost them to b");

    // b stops and hands its claims back: a takes them at once.
    assert_eq!(outbox::release_claims(s, "gw-b").await.unwrap(), 1);
    assert_eq!(ucrs(&outbox::claim_due_deliveries(s, "gw-a", 10, later).await.unwrap()), ["UCR-K2", "UCR-K2"]);
}

pub async fn a_webhook_is_served_by_one_gateway_at_a_time(store: Arc<dyn Store>) {
    let s = &*store;
    let hook = crate::webhooks::register(s, "demo-trader".into(), "https://example.org/h".into(), "k".into(), 2, now_millis())
        .await
        .unwrap()
        .expect("registered");
    let ids = |due: Vec<crate::store::WebhookTarget>| due.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let now = now_millis();
    assert_eq!(ids(crate::webhooks::claim_due(s, "gw-a", now).await.unwrap()), [hook.id]);
    assert!(crate::webhooks::claim_due(s, "gw-b", now).await.unwrap().is_empty(), "b does not send what a holds");
    assert_eq!(ids(crate::webhooks::claim_due(s, "gw-a", now + 1).await.unwrap()), [hook.id], "a renews its lease");
    let later = now + 1 + outbox::CLAIM_LEASE_MS + 1;
    assert_eq!(ids(crate::webhooks::claim_due(s, "gw-b", later).await.unwrap()), [hook.id], "a died: b takes over");
    outbox::release_claims(s, "gw-b").await.unwrap();
    assert_eq!(ids(crate::webhooks::claim_due(s, "gw-a", later).await.unwrap()), [hook.id], "b stopped: a at once");
}

/// The document-type tables the changes read: none, since every change here is its sender's
/// (a trader's rule reads no type; a national single window's is tested through the API).
fn no_types() -> crate::document_types::DocumentTypes {
    crate::document_types::DocumentTypes::default()
}

fn trader(id: &str) -> crate::access::Participant {
    crate::access::Participant::Trader { id: id.into(), acts_for: vec![] }
}

async fn amend(store: &dyn Store, previous: Uuid, mut next: NewDocument, by: &str)
    -> Result<Acceptance, crate::lifecycle::ChangeRefused> {
    next.id = Uuid::now_v7();
    let of = crate::lifecycle::AmendmentOf { previous, reason: "net mass corrected".into(), by: trader(by) };
    let subjects = vec![Subject::Consignment(next.ucr.clone())];
    store.write_with(subjects, move |l| crate::lifecycle::amend_in(l, next, &of, &no_types())).await.unwrap()
}

pub async fn a_document_is_amended_answered_per_version_and_withdrawn(store: Arc<dyn Store>) {
    let s = &*store;
    let v1 = doc("UCR-L1", &["br-customs", "br-sanitary"]);
    submission::accept(s, v1.clone()).await.unwrap().unwrap();
    let first = due(s, 10, now_millis()).await;
    outbox::confirmed(s, first.iter().map(|p| (p.delivery_id, p.ucr.clone())).collect(), now_millis()).await.unwrap();
    acknowledgment::apply(s, ack(v1.id, "br-sanitary", AckStatus::Released)).await.unwrap().unwrap();

    // Nobody but the sender amends it.
    let mut v2 = doc("UCR-L1", &["br-customs"]);
    v2.body_sha256 = "hash-of-v2".into();
    assert!(matches!(amend(s, v1.id, v2.clone(), "someone-else").await, Err(crate::lifecycle::ChangeRefused::UnknownDocument(_))));
    // The same body is no amendment.
    assert!(matches!(amend(s, v1.id, v1.clone(), "demo-trader").await, Err(crate::lifecycle::ChangeRefused::Unchanged { version: 1, .. })));

    // Version 2 is routed to customs only: sanitary is told version 1 is withdrawn.
    let Ok(Acceptance::New(receipt)) = amend(s, v1.id, v2.clone(), "demo-trader").await else { panic!("amended") };
    assert_eq!((receipt.version, receipt.amends), (2, Some(v1.id)));
    let sent = due(s, 10, now_millis()).await;
    let kinds: Vec<(String, Option<&str>, Option<Uuid>)> =
        sent.iter().map(|d| (d.agency.to_string(), d.notice.as_ref().map(|n| n.kind.as_str()), d.amends)).collect();
    assert_eq!(
        kinds,
        [("br-sanitary".to_owned(), Some("withdrawn"), None), ("br-customs".to_owned(), None, Some(v1.id))],
        "the withdrawal notice, then the new version"
    );
    let notice: serde_json::Value = serde_json::from_str(&sent[0].payload).unwrap();
    assert_eq!(notice["supersededBy"], receipt.document_id.to_string());
    // Sent again: its first receipt; amending the superseded version otherwise: refused.
    let Ok(Acceptance::Replayed(again)) = amend(s, v1.id, v2.clone(), "demo-trader").await else { panic!("replayed") };
    assert_eq!(again["documentId"], receipt.document_id.to_string());
    let mut v3 = v2.clone();
    v3.body_sha256 = "hash-of-v3".into();
    assert!(matches!(amend(s, v1.id, v3, "demo-trader").await,
        Err(crate::lifecycle::ChangeRefused::Superseded { latest, .. }) if latest == receipt.document_id));

    // Answers to version 1 are late now; the state follows version 2.
    let late = acknowledgment::apply(s, ack(v1.id, "br-customs", AckStatus::Rejected)).await.unwrap().unwrap();
    assert_eq!((late.outcome, late.consignment_state), (AckOutcome::Late, ConsignmentState::Submitted));
    let released = acknowledgment::apply(s, ack(receipt.document_id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    assert_eq!(released.consignment_state, ConsignmentState::Released, "the released v1 answer of sanitary no longer counts");
    let v = view(s, "UCR-L1").await.unwrap();
    let statuses: Vec<(&str, i64)> = v.documents.iter().map(|d| (d.status, d.version)).collect();
    assert_eq!(statuses, [("superseded", 1), ("current", 2)]);

    // Released: no withdrawal unless the region allows it; then the consignment is withdrawn.
    let by = trader("demo-trader");
    let id = receipt.document_id;
    let (me, ucr) = (by.clone(), Subject::Consignment(receipt.ucr.clone()));
    let refused = s
        .write_with(vec![ucr.clone()], move |l| crate::lifecycle::withdraw_in(l, id, "cancelled", &me, false, now_millis(), &no_types()))
        .await
        .unwrap();
    assert!(matches!(refused, Err(crate::lifecycle::ChangeRefused::Released(_))));
    let withdrawn = s
        .write_with(vec![ucr], move |l| crate::lifecycle::withdraw_in(l, id, "cancelled", &by, true, now_millis(), &no_types()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(withdrawn.consignment_state, ConsignmentState::Withdrawn);
    assert_eq!(view(s, "UCR-L1").await.unwrap().state, ConsignmentState::Withdrawn);
    let after = acknowledgment::apply(s, ack(id, "br-customs", AckStatus::Accepted)).await.unwrap().unwrap();
    assert_eq!(after.outcome, AckOutcome::Late, "answers to a withdrawn document are late");
    let states = status_states(s).await;
    assert_eq!(states.last().map(String::as_str), Some("withdrawn"));
}

pub async fn a_query_is_answered_by_the_trader_and_the_turns_are_recorded(store: Arc<dyn Store>) {
    let s = &*store;
    let d = doc("UCR-Q1", &["br-customs", "br-sanitary"]);
    submission::accept(s, d.clone()).await.unwrap().unwrap();
    let respond = |agency: Option<&str>| {
        let r = crate::lifecycle::Response {
            document_id: d.id,
            text: "the invoice is attached".into(),
            agency: agency.map(|a| AgencyId::parse(a).unwrap()),
            supporting: None,
            by: trader("demo-trader"),
            at: now_millis(),
        };
        let ucr = Subject::Consignment(d.ucr.clone());
        async move { s.write_with(vec![ucr], move |l| crate::lifecycle::respond_in(l, &r, &no_types())).await.unwrap() }
    };
    assert!(matches!(respond(None).await, Err(crate::lifecycle::ChangeRefused::NoOpenQuery { .. })), "no query yet");
    let mut query = ack(d.id, "br-customs", AckStatus::Query);
    query.reason = Some("which invoice?".into());
    acknowledgment::apply(s, query).await.unwrap().unwrap();
    let turn = |v: &ConsignmentView| v.documents[0].deliveries[0].turn;
    assert_eq!(turn(&view(s, "UCR-Q1").await.unwrap()), Some("trader"));
    assert!(matches!(respond(Some("br-sanitary")).await, Err(crate::lifecycle::ChangeRefused::NoOpenQuery { .. })));
    let answered = respond(None).await.unwrap();
    assert_eq!(answered.agencies, [AgencyId::parse("br-customs").unwrap()]);
    assert_eq!(turn(&view(s, "UCR-Q1").await.unwrap()), Some("agency"));
    // One response per turn: another waits for the agency's next query, and writes nothing.
    assert!(matches!(respond(None).await, Err(crate::lifecycle::ChangeRefused::QueryAnswered { agencies, .. }) if agencies.len() == 1));
    assert!(matches!(respond(Some("br-customs")).await, Err(crate::lifecycle::ChangeRefused::QueryAnswered { .. })));
    let notices: Vec<_> = due(s, 10, now_millis()).await.into_iter().filter(|d| d.notice.is_some()).collect();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].notice.as_ref().map(|n| n.id), Some(answered.response_id));
    // Query, then response: both reach the trader's events, with the query's reason.
    let causes: Vec<serde_json::Value> = s
        .read_with(|l| l.unpublished_status_events("gw-test", 100, now_millis()))
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["cause"].clone())
        .collect();
    assert_eq!(causes[1]["reason"], "which invoice?");
    assert_eq!(causes[2]["kind"], "query-answered");
    // Asked again after the answer: a new question, the trader's turn again.
    let again = acknowledgment::apply(s, ack(d.id, "br-customs", AckStatus::Query)).await.unwrap().unwrap();
    assert_eq!(again.outcome, AckOutcome::Applied);
    assert_eq!(turn(&view(s, "UCR-Q1").await.unwrap()), Some("trader"));
    assert!(respond(None).await.is_ok(), "asked again: the trader's turn to answer");
    assert_eq!(turn(&view(s, "UCR-Q1").await.unwrap()), Some("agency"));
    acknowledgment::apply(s, ack(d.id, "br-customs", AckStatus::Query)).await.unwrap().unwrap();
    let twice = acknowledgment::apply(s, ack(d.id, "br-customs", AckStatus::Query)).await.unwrap().unwrap();
    assert_eq!(twice.outcome, AckOutcome::Duplicate, "asked twice before an answer: a duplicate");
    acknowledgment::apply(s, ack(d.id, "br-customs", AckStatus::Accepted)).await.unwrap().unwrap();
    assert_eq!(turn(&view(s, "UCR-Q1").await.unwrap()), None, "answered: no query open");
}

/// Withdraws `id` (of `ucr`) as its sender.
async fn withdraw(s: &dyn Store, ucr: &Ucr, id: Uuid, after_release: bool) -> Result<crate::lifecycle::Withdrawal, crate::lifecycle::ChangeRefused> {
    let by = trader("demo-trader");
    s.write_with(vec![Subject::Consignment(ucr.clone())], move |l| {
        crate::lifecycle::withdraw_in(l, id, "cancelled", &by, after_release, now_millis(), &no_types())
    })
    .await
    .unwrap()
}

pub async fn a_document_history_is_bounded_read_by_index_and_paged(store: Arc<dyn Store>) {
    let s = &*store;
    let rules = ChangeRules { after_release: false, max_versions: 8 };
    let v1 = NewDocument { rules, ..doc("UCR-H1", &["br-customs"]) };
    submission::accept(s, v1.clone()).await.unwrap().unwrap();
    let mut ids = vec![v1.id];
    for v in 2..=8 {
        let next = NewDocument { body_sha256: format!("v{v}"), rules, ..doc("UCR-H1", &["br-customs"]) };
        let Ok(Acceptance::New(r)) = amend(s, *ids.last().unwrap(), next, "demo-trader").await else { panic!("version {v}") };
        assert_eq!(r.version, v);
        ids.push(r.document_id);
    }
    // The ninth is one too many; the refusal wrote nothing.
    let ninth = NewDocument { body_sha256: "v9".into(), rules, ..doc("UCR-H1", &["br-customs"]) };
    assert!(matches!(amend(s, ids[7], ninth.clone(), "demo-trader").await,
        Err(crate::lifecycle::ChangeRefused::TooManyVersions { max: 8, document }) if document == ids[7]));
    // A change to the first version names the latest, found by index.
    assert!(matches!(amend(s, ids[0], ninth, "demo-trader").await,
        Err(crate::lifecycle::ChangeRefused::Superseded { latest, .. }) if latest == ids[7]));
    let ucr = Ucr::parse("UCR-H1").unwrap();
    assert!(matches!(withdraw(s, &ucr, ids[0], false).await, Err(crate::lifecycle::ChangeRefused::Superseded { latest, .. }) if latest == ids[7]));

    // The store's reads: the histories, a page of versions (latest first), the count.
    let (u, first) = (ucr.clone(), ids[0]);
    let (chains, page, count) = s
        .read_with(move |l| {
            let dt = DocumentType::parse("commercialInvoice").unwrap();
            Ok((l.document_chains(&u)?, l.chain_versions(&u, first, 4, 2)?, l.identity_versions("demo-trader", &u, &dt)?))
        })
        .await
        .unwrap();
    assert_eq!(chains, [DocumentChain { chain: ids[0], latest: ids[7], latest_version: 8, versions: 8 }]);
    assert_eq!(page.iter().map(|d| (d.id, d.version, d.chain)).collect::<Vec<_>>(), [(ids[2], 3, ids[0]), (ids[1], 2, ids[0])]);
    assert_eq!(count, 8);

    // The view: the latest versions, the rest paged.
    let v = view(s, "UCR-H1").await.unwrap();
    let shown: Vec<i64> = v.documents.iter().map(|d| d.version).collect();
    assert_eq!(shown, [4, 5, 6, 7, 8]);
    assert_eq!(v.earlier_versions.len(), 1);
    let e = &v.earlier_versions[0];
    assert_eq!((e.document_id, e.latest_document_id, e.versions, e.not_shown), (ids[0], ids[7], 8, 3));
    assert_eq!(e.next, format!("/v1/consignments/UCR-H1?versionsOf={}&before=4", ids[0]));
    assert_eq!(v.time_release.agencies.len(), 1, "the agency's times from every version");
    let u = ucr.clone();
    let page = s
        .read_with(move |l| crate::tracking::consignment_view_page(l, &u, crate::tracking::ViewPage::EarlierVersions { of: first, before: 4 }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.documents.iter().map(|d| d.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(page.earlier_versions.is_empty(), "the last page");
    let unknown = crate::tracking::ViewPage::EarlierVersions { of: Uuid::now_v7(), before: 4 };
    let u = ucr.clone();
    assert!(s.read_with(move |l| crate::tracking::consignment_view_page(l, &u, unknown)).await.unwrap().is_none());

    // Withdrawn, its replacement is a new document of its own history, counted with it.
    withdraw(s, &ucr, ids[7], false).await.unwrap();
    let replacement = NewDocument { body_sha256: "replacement".into(), rules, ..doc("UCR-H1", &["br-customs"]) };
    assert!(matches!(submission::accept(s, replacement).await,
        Ok(Err(Refused::TooManyVersions { max: 8, .. }))), "eight of this document already");
    let roomy = ChangeRules { max_versions: 9, ..rules };
    let replacement = NewDocument { body_sha256: "replacement".into(), rules: roomy, ..doc("UCR-H1", &["br-customs"]) };
    let Acceptance::New(r) = submission::accept(s, replacement.clone()).await.unwrap().unwrap() else { panic!("a new document") };
    assert_eq!((r.version, r.amends, r.consignment_state), (1, None, ConsignmentState::Submitted));
    let u = ucr.clone();
    let chains = s.read_with(move |l| l.document_chains(&u)).await.unwrap();
    assert_eq!(chains.len(), 2);
    assert_eq!((chains[1].chain, chains[1].versions), (replacement.id, 1));
}

pub async fn a_withdrawn_document_is_replaced_by_a_new_one(store: Arc<dyn Store>) {
    let s = &*store;
    let first = doc("UCR-R1", &["br-customs"]);
    submission::accept(s, first.clone()).await.unwrap().unwrap();
    let ucr = first.ucr.clone();
    assert_eq!(withdraw(s, &ucr, first.id, false).await.unwrap().consignment_state, ConsignmentState::Withdrawn);
    // A corrected document for the same UCR and type: new, not a conflict with the withdrawn one.
    let corrected = NewDocument { body_sha256: "corrected".into(), ..doc("UCR-R1", &["br-customs"]) };
    let Acceptance::New(r) = submission::accept(s, corrected.clone()).await.unwrap().unwrap() else { panic!("a new document") };
    assert_eq!((r.document_id, r.consignment_state), (corrected.id, ConsignmentState::Submitted));
    // Now it is the live one: sent again, its receipt; another body, a conflict with it.
    let again = NewDocument { id: Uuid::now_v7(), ..corrected.clone() };
    assert!(matches!(submission::accept(s, again).await.unwrap().unwrap(), Acceptance::Replayed(r) if r["documentId"] == corrected.id.to_string()));
    let other = NewDocument { body_sha256: "other".into(), ..doc("UCR-R1", &["br-customs"]) };
    assert!(matches!(submission::accept(s, other).await, Ok(Err(Refused::Conflict { document, .. })) if document == corrected.id));
    let v = view(s, "UCR-R1").await.unwrap();
    assert_eq!(v.documents.iter().map(|d| d.status).collect::<Vec<_>>(), ["withdrawn", "current"]);
}

pub async fn a_released_consignment_takes_no_new_document_unless_the_region_allows_it(store: Arc<dyn Store>) {
    let s = &*store;
    let declaration = doc("UCR-X1", &["br-customs"]);
    submission::accept(s, declaration.clone()).await.unwrap().unwrap();
    let released = acknowledgment::apply(s, ack(declaration.id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    assert_eq!(released.consignment_state, ConsignmentState::Released);
    // Another document would move it back under review and reopen the released one.
    let invoice = NewDocument { document_type: DocumentType::parse("packingList").unwrap(), body_sha256: "pl".into(), ..doc("UCR-X1", &["br-customs"]) };
    assert!(matches!(submission::accept(s, invoice.clone()).await, Ok(Err(Refused::ConsignmentReleased(u))) if u.as_str() == "UCR-X1"));
    // Nothing was written; the declaration sent again still gets its receipt.
    assert_eq!(view(s, "UCR-X1").await.unwrap().documents.len(), 1);
    let again = NewDocument { id: Uuid::now_v7(), ..declaration.clone() };
    assert!(matches!(submission::accept(s, again).await.unwrap().unwrap(), Acceptance::Replayed(_)));
    let v2 = NewDocument { body_sha256: "v2".into(), ..doc("UCR-X1", &["br-customs"]) };
    assert!(matches!(amend(s, declaration.id, v2, "demo-trader").await, Err(crate::lifecycle::ChangeRefused::Released(_))));
    assert_eq!(view(s, "UCR-X1").await.unwrap().state, ConsignmentState::Released);
    // A region that allows changes after release takes it.
    let allowed = NewDocument { rules: ChangeRules { after_release: true, ..ChangeRules::default() }, ..invoice };
    assert!(matches!(submission::accept(s, allowed).await, Ok(Ok(Acceptance::New(_)))));
}

async fn facts(store: &dyn Store, ucr: &str) -> (ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>) {
    let q = ReleaseTimesQuery { from: 0, to: Millis::MAX, owner: None, agency: None };
    let c = store.read_with(move |l| l.release_times(&q)).await.unwrap().into_iter().find(|c| c.ucr.as_str() == ucr).expect("facts");
    let q = ReleaseTimesQuery { from: 0, to: Millis::MAX, owner: Some("demo-trader".into()), agency: None };
    let a = store.read_with(move |l| l.agency_release_times(&q)).await.unwrap();
    (c, a.into_iter().filter(|(c, _)| c.ucr.as_str() == ucr).map(|(_, a)| a).collect())
}

pub async fn release_times_follow_answers_holds_queries_and_amendments(store: Arc<dyn Store>) {
    let s = &*store;
    let t0 = 1_000_000;
    let mut d = doc("UCR-T1", &["br-customs", "br-sanitary"]);
    d.submitted_at = t0;
    d.dims = DocumentDims { transport_mode: Some("road".into()), hs_chapter: Some("02".into()), border_post: None };
    submission::accept(s, d.clone()).await.unwrap().unwrap();
    let (c, a) = facts(s, "UCR-T1").await;
    assert_eq!((c.outcome.as_str(), c.lodged_at, c.owner.as_str(), c.dims.hs_chapter.as_deref()), ("open", t0, "demo-trader", Some("02")));
    assert_eq!(a.len(), 2, "routed to two agencies, nothing answered yet");

    let at = |agency: &str, status: AckStatus, ms: Millis| AckRecord { at: t0 + ms, ..ack(d.id, agency, status) };
    acknowledgment::apply(s, at("br-sanitary", AckStatus::Hold, 1_000)).await.unwrap().unwrap();
    acknowledgment::apply(s, at("br-sanitary", AckStatus::Hold, 1_500)).await.unwrap().unwrap(); // a duplicate: nothing moves
    acknowledgment::apply(s, at("br-customs", AckStatus::Query, 2_000)).await.unwrap().unwrap();
    acknowledgment::apply(s, at("br-sanitary", AckStatus::Released, 5_000)).await.unwrap().unwrap();
    let r = crate::lifecycle::Response {
        document_id: d.id, text: "here".into(), agency: None, supporting: None, by: trader("demo-trader"), at: t0 + 6_000,
    };
    let subject = vec![Subject::Consignment(d.ucr.clone())];
    s.write_with(subject, move |l| crate::lifecycle::respond_in(l, &r, &no_types())).await.unwrap().unwrap();
    // Version 2 (customs only), then customs releases it; a late answer to version 1 moves nothing.
    let mut v2 = doc("UCR-T1", &["br-customs"]);
    v2.submitted_at = t0 + 9_000;
    v2.body_sha256 = "v2".into();
    let Ok(Acceptance::New(v2)) = amend(s, d.id, v2, "demo-trader").await else { panic!("amended") };
    let released = AckRecord { at: t0 + 12_000, ..ack(v2.document_id, "br-customs", AckStatus::Released) };
    acknowledgment::apply(s, released).await.unwrap().unwrap();
    acknowledgment::apply(s, at("br-customs", AckStatus::Rejected, 13_000)).await.unwrap().unwrap();

    let (c, a) = facts(s, "UCR-T1").await;
    assert_eq!((c.outcome.as_str(), c.released_at, c.decided_at), ("released", Some(t0 + 12_000), Some(t0 + 12_000)));
    assert_eq!(c.channel, "with-hold");
    assert_eq!(c.hold_ms, 4_000, "hold from 1 s to the release at 5 s");
    assert_eq!((c.query_trader_ms, c.query_agency_ms), (4_000, 3_000), "the trader's turn to 6 s, the agency's to the amendment at 9 s");
    let customs = a.iter().find(|x| x.agency.as_str() == "br-customs").unwrap();
    assert_eq!((customs.routed_at, customs.first_answer_at), (t0, Some(t0 + 2_000)), "from version 1's routing");
    assert_eq!((customs.decided_at, customs.decision.as_deref()), (Some(t0 + 12_000), Some("released")), "on the current version");
    let sanitary = a.iter().find(|x| x.agency.as_str() == "br-sanitary").unwrap();
    assert_eq!((sanitary.hold_ms, sanitary.decision.as_deref()), (4_000, None), "no current document is routed to it any more");

    // Every change is positioned, in order, for the gateways' indexes to follow.
    let changes = s.read_with(|l| l.release_time_changes_after(0, 1000)).await.unwrap();
    // Opened, held, queried, released by sanitary, answered, amended, released: 7 (the duplicate
    // and the late answer changed nothing).
    assert_eq!(changes.len(), 7, "one per change: {changes:?}");
    assert!(changes.windows(2).all(|w| w[0].0 < w[1].0) && changes.iter().all(|(_, u)| u.as_str() == "UCR-T1"));
    let latest = s.read_with(|l| l.latest_release_time_change()).await.unwrap();
    assert_eq!(latest, changes.last().unwrap().0);
    let after = changes[changes.len() - 2].0;
    assert_eq!(s.read_with(move |l| l.release_time_changes_after(after, 10)).await.unwrap().len(), 1);
    let one = vec![Ucr::parse("UCR-T1").unwrap()];
    let (cs, parts) = s.read_with(move |l| l.release_times_of(Some(&one))).await.unwrap();
    assert_eq!((cs.len(), parts.len()), (1, 2));
    assert_eq!(cs[0], c);
    assert_eq!(c.formalities, Some(Formalities { documents: 1, amendments: 1, queries: 1, resubmissions: 0 }), "the late rejection is no rejection");
}

pub async fn the_tfa_facts_count_formalities_and_how_risk_management_treated_each_agency(store: Arc<dyn Store>) {
    let s = &*store;
    let selected = |channel: &str, source: &str| Some(format!(r#"{{"channel":"{channel}","score":80.0,"source":"{source}","reasons":[]}}"#));
    let mut d = doc("UCR-TFA", &["br-customs", "br-sanitary"]);
    d.deliveries[0].selection = selected("red", "mandatory");
    d.deliveries[1].selection = selected("yellow", "random");
    submission::accept(s, d.clone()).await.unwrap().unwrap();
    let (c, a) = facts(s, "UCR-TFA").await;
    assert_eq!(c.formalities, Some(Formalities { documents: 1, amendments: 0, queries: 0, resubmissions: 0 }), "as opened");
    let treated = |a: &[AgencyReleaseTimes], agency: &str| a.iter().find(|x| x.agency.as_str() == agency).and_then(|x| x.selectivity);
    assert_eq!(
        treated(&a, "br-customs"),
        Some(AgencySelectivity { channel: "red".into(), source: "mandatory".into(), finding: None, standing_instruction: false })
    );
    // Customs inspects, finds an irregularity and rejects; sanitary queries. The trader amends
    // the rejected version: a resubmission.
    let found = Inspection { performed: true, finding: Some(Finding::Irregularity), revenue: None, code: None };
    acknowledgment::apply(s, AckRecord { inspection: Some(found), ..ack(d.id, "br-customs", AckStatus::Rejected) }).await.unwrap().unwrap();
    acknowledgment::apply(s, ack(d.id, "br-sanitary", AckStatus::Query)).await.unwrap().unwrap();
    let v2 = NewDocument { body_sha256: "v2".into(), ..doc("UCR-TFA", &["br-customs"]) };
    let Ok(Acceptance::New(v2)) = amend(s, d.id, v2, "demo-trader").await else { panic!("amended") };
    // A second document, rejected, withdrawn and replaced by one of its type: a resubmission.
    let origin_type = DocumentType::parse("certificateOfOrigin").unwrap();
    let other = NewDocument { body_sha256: "other".into(), document_type: origin_type.clone(), ..doc("UCR-TFA", &["br-customs"]) };
    submission::accept(s, other.clone()).await.unwrap().unwrap();
    acknowledgment::apply(s, ack(other.id, "br-customs", AckStatus::Rejected)).await.unwrap().unwrap();
    withdraw(s, &other.ucr, other.id, false).await.unwrap();
    let replacement = NewDocument { body_sha256: "replacement".into(), document_type: origin_type, ..doc("UCR-TFA", &["br-customs"]) };
    submission::accept(s, replacement.clone()).await.unwrap().unwrap();
    acknowledgment::apply(s, ack(v2.document_id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    acknowledgment::apply(s, ack(replacement.id, "br-customs", AckStatus::Released)).await.unwrap().unwrap();
    let (c, a) = facts(s, "UCR-TFA").await;
    assert_eq!(c.outcome, "released");
    assert_eq!(c.formalities, Some(Formalities { documents: 3, amendments: 1, queries: 1, resubmissions: 2 }));
    assert_eq!(
        treated(&a, "br-customs"),
        Some(AgencySelectivity { channel: "red".into(), source: "mandatory".into(), finding: Some("irregularity".into()), standing_instruction: false }),
        "the inspection of the version later amended counts"
    );
    assert_eq!(treated(&a, "br-sanitary").map(|t| (t.channel, t.source, t.finding)), Some(("yellow".into(), "random".into(), None)));
    // Sanitary reports its documentary check on the version amended since: a late answer, which
    // changes nothing else, but the check took place.
    let checked = Inspection { performed: true, finding: Some(Finding::None), revenue: None, code: None };
    let late = acknowledgment::apply(s, AckRecord { inspection: Some(checked), ..ack(d.id, "br-sanitary", AckStatus::Released) }).await.unwrap().unwrap();
    assert_eq!(late.outcome, AckOutcome::Late);
    let (_, a) = facts(s, "UCR-TFA").await;
    assert_eq!(treated(&a, "br-sanitary").and_then(|t| t.finding).as_deref(), Some("none"));
}

/// Runs every case of the suite against the store `open()` gives, one fresh store per case.
#[macro_export]
macro_rules! conformance_suite {
    ($open:ident) => {
        $crate::conformance_suite!(@cases $open;
            a_consignment_walks_to_release,
            acknowledgments_for_unknown_or_unrouted_documents_change_nothing,
            a_repeated_document_gets_its_first_receipt_and_a_different_one_a_conflict,
            a_batch_commits_in_order_and_a_refused_document_leaves_the_others,
            a_document_failing_part_way_leaves_nothing_and_spoils_its_batch,
            concurrent_submissions_all_land,
            a_delivery_keeps_its_selection_for_the_outbox_the_stream_and_the_view,
            an_inspection_finding_is_kept_with_its_delivery_the_latest_answers,
            risk_rule_sets_are_kept_in_turn_and_the_latest_read_back,
            findings_are_kept_with_their_facts_read_in_time_order_and_one_model_is_live,
            a_standing_instructions_answer_leaves_its_delivery_to_be_published,
            a_standing_release_at_acceptance_leaves_what_the_same_answers_would,
            a_rule_that_panics_fails_its_own_write_and_the_writer_goes_on,
            a_write_the_database_refuses_fails_alone,
            a_refused_delivery_waits_holds_back_its_ucr_fails_and_is_sent_again,
            cursors_see_events_in_commit_order_and_webhooks_start_from_now,
            a_consignment_is_published_by_one_gateway_at_a_time,
            a_webhook_is_served_by_one_gateway_at_a_time,
            a_document_is_amended_answered_per_version_and_withdrawn,
            a_query_is_answered_by_the_trader_and_the_turns_are_recorded,
            release_times_follow_answers_holds_queries_and_amendments,
            the_tfa_facts_count_formalities_and_how_risk_management_treated_each_agency,
            a_document_history_is_bounded_read_by_index_and_paged,
            a_withdrawn_document_is_replaced_by_a_new_one,
            a_released_consignment_takes_no_new_document_unless_the_region_allows_it,
        );
    };
    (@cases $open:ident; $($case:ident),* $(,)?) => {
        mod conformance_cases {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (store, _keep) = super::$open().await;
                    $crate::store::conformance::$case(store).await;
                }
            )*
        }
    };
}
