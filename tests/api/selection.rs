//! Risk selection as each reader sees it (issue 28): the agency reads its channel, score, source
//! and reasons on its Kafka record and in the consignment view; the trader sees no selection
//! until the agency has answered, then the channel alone.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::message::Headers;
use rdkafka::Message;
use serde_json::{json, Value};

use crate::helpers::{consumer, example, spawn_app};

/// The delivery to `agency` in a consignment view, as `token` reads it.
async fn delivery(app: &crate::helpers::TestApp, ucr: &str, token: &str, agency: &str) -> Value {
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some(token)).await.json().await.unwrap();
    view["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == agency).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_agency_reads_why_it_was_sent_a_document_and_the_trader_only_its_channel_once_answered() {
    let app = spawn_app().await;
    // Bovine meat: the shipped rule `bovine-meat-to-sanitary` sends its documents to the
    // sanitary agency's yellow channel whatever the budget.
    let body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    let r = app.submit(&body).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let (doc, ucr) = (receipt["documentId"].as_str().unwrap().to_owned(), receipt["ucr"].as_str().unwrap().to_owned());
    assert!(!receipt.to_string().contains("selection"), "the receipt says nothing of it: {receipt}");

    // The agency's view: all of it.
    let sanitary = delivery(&app, &ucr, "demo-br-sanitary", "br-sanitary").await;
    let selection = &sanitary["selection"];
    assert_eq!((&selection["channel"], &selection["source"]), (&json!("yellow"), &json!("mandatory")), "{sanitary:#}");
    assert_eq!(selection["reasons"][0]["name"], "bovine-meat-to-sanitary");
    assert!(selection["reasons"][0]["text"].as_str().unwrap().contains("Bovine meat"));
    // Customs of Brazil has a budget: a channel, a score, a source, whatever they are.
    let customs = delivery(&app, &ucr, "demo-br-customs", "br-customs").await;
    assert!(["green", "yellow", "red"].contains(&customs["selection"]["channel"].as_str().unwrap()), "{customs:#}");
    assert!(customs["selection"]["score"].is_number());

    // Its Kafka record names it too (`ce_selection`, JSON text), on its topic alone.
    let topic = app.topic("agency.br-sanitary");
    let c = consumer(&app.brokers, &[&topic]);
    let headers: HashMap<String, String> = loop {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv()).await.expect("the record arrives").unwrap();
        let headers: HashMap<String, String> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        if headers.get("ce_id") == Some(&doc) {
            break headers;
        }
    };
    let on_record: Value = serde_json::from_str(&headers["ce_selection"]).expect("JSON text");
    assert_eq!(&on_record, selection);

    // The trader: nothing before the agency answers, whatever its channel.
    for agency in ["br-sanitary", "br-customs"] {
        let seen = delivery(&app, &ucr, "demo-trader", agency).await;
        assert!(seen.get("selection").is_none(), "{agency}: {seen:#}");
    }
    // An inspection must say what it found.
    let half = json!({"documentId": doc, "agency": "br-sanitary", "status": "hold", "reason": "inspecting", "inspection": {"performed": true}});
    let problem = crate::helpers::assert_problem(app.post_json("/v1/acknowledgments", Some("demo-br-sanitary"), &half.to_string()).await, 422, "invalid-acknowledgment").await;
    assert!(problem.to_string().contains("/inspection"), "{problem:#}");
    let found = json!({"performed": true, "finding": "irregularity", "revenue": 1200.5, "code": "UNDERVAL"});
    let ack = json!({"documentId": doc, "agency": "br-sanitary", "status": "accepted", "inspection": found}).to_string();
    let r = app.post_json("/v1/acknowledgments", Some("demo-br-sanitary"), &ack).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    // The agency reads what it found with its delivery.
    assert_eq!(delivery(&app, &ucr, "demo-br-sanitary", "br-sanitary").await["inspection"], found);
    // Then the channel, and nothing else.
    let seen = delivery(&app, &ucr, "demo-trader", "br-sanitary").await;
    assert_eq!(seen["selection"], json!({"channel": "yellow"}), "{seen:#}");
    let text = serde_json::to_string(&app.get(&format!("/v1/consignments/{ucr}"), Some("demo-trader")).await.json::<Value>().await.unwrap()).unwrap();
    for secret in ["score", "reasons", "mandatory", "bovine-meat-to-sanitary", "inspection", "UNDERVAL"] {
        assert!(!text.contains(secret), "the trader's view holds {secret:?}: {text}");
    }
    // Another agency never reads the sanitary agency's selection (its delivery is not shown).
    assert_eq!(delivery(&app, &ucr, "demo-br-customs", "br-sanitary").await, Value::Null);
}

/// Issue 28, item 2: an operator replaces the risk rules at run time. Each change is checked as
/// the region file's rules are (a rule reading a fact its types lack is refused, named, and
/// nothing changes), kept with who and why in the store and the audit log, selected with from
/// the next document, and still in use after a restart. Nobody else reads or changes them.
#[tokio::test]
async fn an_operator_changes_the_risk_rules_at_run_time_checked_audited_and_kept() {
    let app = spawn_app().await;
    let put = |token: &'static str, body: Value| {
        let (client, url) = (app.client.clone(), format!("{}/v1/risk/rules", app.address));
        async move { client.put(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    for token in ["demo-trader", "demo-br-customs", "demo-nsw-ar"] {
        assert_eq!(app.get("/v1/risk/rules", Some(token)).await.status(), 403, "{token} reads no rule");
        let r = put(token, json!({"reason": "mine", "rules": []})).await;
        crate::helpers::assert_problem(r, 403, "forbidden").await;
    }
    let shipped: Value = app.get("/v1/risk/rules", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!((&shipped["version"], &shipped["source"]), (&json!(0), &json!("region-file")), "{shipped:#}");
    assert!(shipped["rules"].as_array().unwrap().iter().any(|r| r["name"] == "bovine-meat-to-sanitary"));

    // Refused, named, and nothing changes: a fact its type lacks, no reason, an unknown member.
    let lacking = json!({"name": "cheap-crossing", "reason": "Declared under 10.", "document_types": ["borderCrossingNotice"],
                         "value_below": 10.0, "points": 5});
    let r = put("demo-operator", json!({"reason": "undervaluation", "rules": [lacking]})).await;
    let problem = crate::helpers::assert_problem(r, 422, "invalid-risk-rules").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("\"cheap-crossing\"") && detail.contains("risk.value"), "{detail}");
    let beef_red = json!({"name": "beef-outbreak-red", "reason": "Bovine meat: every consignment inspected during the outbreak.",
                          "hs_codes": ["0201-0202"], "agency_kinds": ["sanitary"], "channel": "red"});
    let r = put("demo-operator", json!({"reason": " ", "rules": [beef_red]})).await;
    crate::helpers::assert_problem(r, 422, "invalid-risk-rules").await;
    let r = put("demo-operator", json!({"reason": "x", "rules": [{"name": "a", "reason": "b", "points": 1, "colour": "red"}]})).await;
    crate::helpers::assert_problem(r, 422, "invalid-risk-rules").await;
    let now: Value = app.get("/v1/risk/rules", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(now, shipped, "a refused change changes nothing");

    // Put: the answer is the set in use, with who and why.
    let r = put("demo-operator", json!({"reason": "Sanitary alert 12/2026: bovine meat inspected physically", "rules": [beef_red]})).await;
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!((&changed["version"], &changed["source"], &changed["changedBy"]), (&json!(1), &json!("operator"), &json!("demo-operator")), "{changed:#}");
    assert_eq!(changed["rules"], json!([beef_red]));

    // The next document is selected with it: red, by the new rule; the shipped rule is gone.
    let mut body = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    body["ucr"] = json!("26AR30714255831-RULES1");
    assert_eq!(app.submit(&body).await.status(), 202);
    let sanitary = delivery(&app, "26AR30714255831-RULES1", "demo-br-sanitary", "br-sanitary").await;
    let selection = &sanitary["selection"];
    assert_eq!((&selection["channel"], &selection["source"]), (&json!("red"), &json!("mandatory")), "{sanitary:#}");
    assert_eq!(selection["reasons"][0]["name"], "beef-outbreak-red");
    assert!(!selection.to_string().contains("bovine-meat-to-sanitary"));

    // In the audit log: who, why, the rules before and after.
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let (who, detail): (String, String) = db
        .query_row("SELECT participant, detail FROM audit_log WHERE action = 'risk.rules.changed'", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(who, "demo-operator");
    assert_eq!(detail["reason"], "Sanitary alert 12/2026: bovine meat inspected physically");
    assert_eq!((&detail["rules"], &detail["before"]["version"]), (&json!(["beef-outbreak-red"]), &json!(0)));
    assert!(detail["before"]["rules"].as_array().unwrap().contains(&json!("bovine-meat-to-sanitary")));
    drop(db);

    // Restarted on the same store: the operator's set, not the region file's.
    let (data, prefix) = (app.data.clone(), app.topic_prefix.clone());
    app.stop().await;
    let again = crate::helpers::spawn_app_on(data, prefix, Some(crate::helpers::test_brokers()), |_| {}).await;
    let kept: Value = again.get("/v1/risk/rules", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(kept, changed);
    again.stop().await;
}

/// Issue 28, item 3: what inspections find is learned. Findings are kept with their documents'
/// facts; an operator trains a model on them (the most recent fifth held back to judge it); it
/// goes live, is audited, and from the next document the agency reads the model's part of each
/// selection and its version; the trader never does. Too few findings train nothing.
#[tokio::test]
async fn a_model_learns_from_findings_goes_live_and_explains_itself_to_the_agency_alone() {
    let app = spawn_app().await;
    crate::helpers::assert_problem(app.post_json("/v1/risk/models", Some("demo-trader"), "").await, 403, "forbidden").await;
    let none = crate::helpers::assert_problem(app.post_json("/v1/risk/models", Some("demo-operator"), "").await, 409, "not-enough-findings").await;
    assert!(none["detail"].as_str().unwrap().contains("at least 200"), "{none:#}");

    // 300 parcels: one in five declared at 1.50 a kilogram, which inspections find irregular;
    // the others at about 66 a kilogram, found in order. The model is told none of this.
    answer_with_findings(&app, 300).await;

    let r = app.post_json("/v1/risk/models", Some("demo-operator"), "").await;
    assert_eq!(r.status(), 200);
    let trained: Value = r.json().await.unwrap();
    assert_eq!((&trained["version"], &trained["live"], &trained["kind"]), (&json!(1), &json!(true), &json!("logistic-regression")), "{trained:#}");
    let v = &trained["validation"];
    assert!(v["heldBack"].as_u64().unwrap() >= 60, "{v:#}");
    assert!(v["precisionAtBudget"].as_f64().unwrap() >= 3.0 * v["baseRate"].as_f64().unwrap(), "{v:#}");
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let (who, detail): (String, String) =
        db.query_row("SELECT participant, detail FROM audit_log WHERE action = 'risk.model.trained'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(who, "demo-operator");
    assert!(detail.contains("\"live\":true") && detail.contains("precisionAtBudget"), "{detail}");
    drop(db);

    // The next parcel declared cheap: the agency reads the live model's version and part.
    let next = parcel(300, true);
    let receipt: Value = app.submit(&next).await.json().await.unwrap();
    let agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let token = format!("demo-{agency}");
    let seen = delivery(&app, "5BR21567890000198-L00300", &token, &agency).await;
    let selection = &seen["selection"];
    assert_eq!(selection["modelVersion"], "1", "{seen:#}");
    let reasons = selection["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["kind"] == "feature" && r["name"] == "value-per-kg"), "{selection:#}");
    assert!(selection["score"].as_f64().unwrap() > 50.0, "a parcel like the irregular ones scores high: {selection:#}");
    // The trader, once the agency answered: the channel, nothing of the model.
    let ack = json!({"documentId": receipt["documentId"], "agency": agency, "status": "released"});
    assert!(app.post_json("/v1/acknowledgments", Some(&token), &ack.to_string()).await.status().is_success());
    let text = app.get("/v1/consignments/5BR21567890000198-L00300", Some("demo-trader")).await.text().await.unwrap();
    for secret in ["modelVersion", "value-per-kg", "score", "feature"] {
        assert!(!text.contains(secret), "the trader's view holds {secret:?}: {text}");
    }

    // How selection performed (item 7): the operator reads every agency's figures, the agency
    // its own, nobody else any.
    let figures: Value = app.get("/v1/risk/performance", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(figures["modelVersion"], 1, "{figures:#}");
    let mine = figures["agencies"].as_array().unwrap().iter().find(|a| a["agency"] == agency.as_str()).cloned().expect("the agency's figures");
    assert_eq!(mine["documents"], 301, "{mine:#}");
    assert_eq!((&mine["target"]["red"], &mine["target"]["yellow"]), (&json!(0.03), &json!(0.07)), "its budget: {mine:#}");
    let inspected: u64 = mine["bySource"].as_array().unwrap().iter().map(|s| s["inspections"].as_u64().unwrap()).sum();
    let red_and_yellow = (mine["realized"]["red"].as_f64().unwrap() + mine["realized"]["yellow"].as_f64().unwrap()) * 301.0;
    assert_eq!(inspected, red_and_yellow.round() as u64, "every red or yellow delivery counted once, by its source: {mine:#}");
    let found: u64 = mine["bySource"].as_array().unwrap().iter().map(|s| s["irregularities"].as_u64().unwrap()).sum();
    assert_eq!(mine["irregularities"].as_u64().unwrap(), found);
    let own: Value = app.get("/v1/risk/performance", Some(&token)).await.json().await.unwrap();
    assert_eq!(own["agencies"].as_array().unwrap().len(), 1, "an agency reads its own: {own:#}");
    assert_eq!(own["agencies"][0], mine);
    let other = if agency == "ar-customs" { "br-customs" } else { "ar-customs" };
    let r = app.get(&format!("/v1/risk/performance?agency={other}"), Some(&token)).await;
    crate::helpers::assert_problem(r, 403, "forbidden").await;
    crate::helpers::assert_problem(app.get("/v1/risk/performance", Some("demo-trader")).await, 403, "forbidden").await;
    let later: Value = app.get("/v1/risk/performance?from=2030-01-01&to=2030-01-08", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!(later["agencies"], json!([]), "a period without deliveries: {later:#}");
    crate::helpers::assert_problem(app.get("/v1/risk/performance?from=yesterday", Some("demo-operator")).await, 400, "invalid-query").await;
    let long: Value = app.get("/v1/risk/performance?from=2020-01-01&to=2030-01-01", Some("demo-operator")).await.json().await.unwrap();
    assert_eq!((long["from"].as_str(), long["to"].as_str()), (Some("2029-10-01T00:00:00.000Z"), Some("2030-01-01T00:00:00.000Z")), "its last 92 days: {long:#}");
}

/// Issue 28, item 6 (de minimis): a green-channel parcel declaring less than its destination's
/// de minimis is released by each agency's standing instruction as it is accepted, recorded as
/// that agency's decision; the agency still receives it. A parcel above it waits for its
/// agencies. (The budgets are taken out so that no parcel is selected at random.)
#[tokio::test]
async fn a_green_parcel_under_the_de_minimis_is_released_by_standing_instruction() {
    let app = crate::helpers::spawn_app_configured(Some(crate::helpers::test_brokers()), |s| s.region.risk.budgets.clear()).await;
    let cheap = example("ecommerceShipment/valid/air-yerba-mate-AR-UY.json");
    assert_eq!(cheap["payload"]["totalDeclaredValue"]["value"], json!(42.0));
    let receipt: Value = app.submit(&cheap).await.json().await.unwrap();
    // The receipt says so: released as it was accepted.
    assert_eq!(receipt["consignmentState"], "released", "{receipt:#}");
    assert!(receipt["deliveries"].as_array().unwrap().iter().all(|d| d["status"] == "released"), "{receipt:#}");
    let ucr = cheap["ucr"].as_str().unwrap();
    let view = app.wait_for_state(ucr, "released").await;
    for d in view["documents"][0]["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "released", "{view:#}");
    }
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let by: Vec<String> = db
        .prepare("SELECT participant FROM audit_log WHERE action = 'acknowledgment.recorded' AND detail LIKE '%\"source\":\"standing-instruction\"%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let agencies: Vec<String> = receipt["deliveries"].as_array().unwrap().iter().map(|d| format!("standing-instruction:{}", d["agency"].as_str().unwrap())).collect();
    assert_eq!(by.len(), agencies.len(), "one decision per agency: {by:?}");
    assert!(agencies.iter().all(|a| by.contains(a)), "{by:?} against {agencies:?}");
    drop(db);
    // Each agency still receives it.
    let topics = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
    let accepted = vec![(receipt["documentId"].as_str().unwrap().to_owned(), topics)];
    crate::helpers::await_deliveries(&app.brokers, &accepted, std::time::Duration::from_secs(30)).await;

    // Above the de minimis: its agencies decide.
    let dear = example("ecommerceShipment/valid/air-smartphone-BR-UY.json");
    assert_eq!(app.submit(&dear).await.status(), 202);
    let seen: Value = app.get(&format!("/v1/consignments/{}", dear["ucr"].as_str().unwrap()), Some("demo-trader")).await.json().await.unwrap();
    assert_ne!(seen["state"], "released", "{seen:#}");
    assert!(seen["documents"][0]["deliveries"].as_array().unwrap().iter().all(|d| d["status"] != "released"), "{seen:#}");
}

/// The e-commerce example as parcel `i`, with its own UCR; `cheap`: declared at 1.50 a kilogram.
fn parcel(i: usize, cheap: bool) -> Value {
    let mut p = example("ecommerceShipment/valid/postal-clothing-BR-AR.json");
    p["ucr"] = json!(format!("5BR21567890000198-L{i:05}"));
    if cheap {
        p["payload"]["totalDeclaredValue"]["value"] = json!(3.0);
        p["payload"]["grossMass"] = json!(2.0);
    }
    p
}

/// Parcels 0 to `n` in one batch, each answered by its agencies with what they found: one in
/// five (the cheap ones) irregular, the rest clean.
async fn answer_with_findings(app: &crate::helpers::TestApp, n: usize) {
    let answer: Value = app.submit_ndjson("demo-trader", (0..n).map(|i| parcel(i, i % 5 == 0))).await.json().await.unwrap();
    let results = answer["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["status"] == 202), "{answer:#}");
    for (i, r) in results.iter().enumerate() {
        let receipt = &r["receipt"];
        for d in receipt["deliveries"].as_array().unwrap() {
            let agency = d["agency"].as_str().unwrap();
            let finding = if i % 5 == 0 { "irregularity" } else { "none" };
            let ack = json!({"documentId": receipt["documentId"], "agency": agency, "status": "released",
                             "inspection": {"performed": true, "finding": finding}});
            let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await;
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    }
}

/// Issue 28, item 8 (in part): models trained while parcels flow refuse none and lose none.
#[tokio::test]
async fn training_while_parcels_flow_loses_nothing() {
    let app = spawn_app().await;
    answer_with_findings(&app, 300).await;
    let (client, address) = (app.client.clone(), app.address.clone());
    let training = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..3 {
            let r = client.post(format!("{address}/v1/risk/models")).bearer_auth("demo-operator").send().await.unwrap();
            answers.push((r.status().as_u16(), r.json::<Value>().await.unwrap()));
        }
        answers
    });
    let mut accepted: Vec<crate::helpers::Accepted> = Vec::new();
    for i in 1_000..1_200 {
        let r = app.submit(&parcel(i, i % 7 == 0)).await;
        assert_eq!(r.status(), 202, "parcel {i} while training");
        let receipt: Value = r.json().await.unwrap();
        let topics = receipt["deliveries"].as_array().unwrap().iter().map(|d| d["topic"].as_str().unwrap().to_owned()).collect();
        accepted.push((receipt["documentId"].as_str().unwrap().to_owned(), topics));
    }
    let answers = training.await.unwrap();
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(answers.iter().map(|(_, a)| a["version"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(answers[0].1["live"], true, "the first model goes live");
    let (deliveries, duplicates) = crate::helpers::await_deliveries(&app.brokers, &accepted, std::time::Duration::from_secs(60)).await;
    assert_eq!((deliveries, duplicates), (accepted.iter().map(|(_, t)| t.len()).sum(), 0));
}

/// A parcel of the demo platform (Vitrine Brasil, BR-CNPJ 28374619000185) for `seller`, under
/// a UCR of the platform's own.
fn platform_parcel(i: usize, seller: &str) -> Value {
    let mut p = example("ecommerceShipment/valid/postal-clothing-BR-AR.json");
    p["ucr"] = json!(format!("5BR28374619000185-Q{i:05}"));
    p["payload"]["seller"]["identifier"] = json!({"scheme": "CN-USCC", "value": seller});
    p
}

/// Issue 28, item 6: a platform submits its sellers' parcels in one batch, follows each parcel
/// (consignment events, webhook, view: the channel once answered, never a score or a reason),
/// and reads its own sellers' irregularity rates; not a trader's declaration, not the rules.
#[tokio::test]
async fn a_platform_submits_its_sellers_parcels_follows_each_and_reads_its_sellers_findings() {
    let app = crate::webhooks::app_with_webhooks(true).await;
    let receiver = crate::webhooks::Receiver::start(0, Duration::ZERO);
    let r = app.post_json("/v1/webhooks", Some("demo-platform"), &json!({ "url": receiver.url }).to_string()).await;
    assert_eq!(r.status(), 201, "a platform has its parcels' changes POSTed");

    // Not a trader's declaration, even of a party it names.
    let r = app.post_json("/v1/documents", Some("demo-platform"), &example("customsDeclaration/valid/export-beef-road-AR-BR.json").to_string()).await;
    let problem = crate::helpers::assert_problem(r, 403, "forbidden").await;
    assert!(problem["detail"].as_str().unwrap().contains("e-commerce platform"), "{problem}");

    // Parcels of two sellers in one NDJSON batch.
    let sellers = ["91330100MA27XL0001", "91440300MA5FUN0002"];
    let answer: Value = app.submit_ndjson("demo-platform", (0..20).map(|i| platform_parcel(i, sellers[i % 2]))).await.json().await.unwrap();
    let results = answer["results"].as_array().unwrap();
    assert!(results.len() == 20 && results.iter().all(|r| r["status"] == 202), "{answer:#}");

    // Before any answer: the platform sees no selection.
    let first_ucr = results[0]["receipt"]["ucr"].as_str().unwrap().to_owned();
    let seen: Value = app.get(&format!("/v1/consignments/{first_ucr}"), Some("demo-platform")).await.json().await.unwrap();
    assert!(!seen.to_string().contains("selection"), "{seen:#}");

    // Every agency inspects and releases: the first seller's parcels are irregular.
    for (i, r) in results.iter().enumerate() {
        let receipt = &r["receipt"];
        for d in receipt["deliveries"].as_array().unwrap() {
            let agency = d["agency"].as_str().unwrap();
            let finding = if i % 2 == 0 { "irregularity" } else { "none" };
            let ack = json!({"documentId": receipt["documentId"], "agency": agency, "status": "released",
                             "inspection": {"performed": true, "finding": finding, "revenue": 12.5}});
            let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await;
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    }
    let agencies_per_parcel = results[0]["receipt"]["deliveries"].as_array().unwrap().len() as u64;

    // Each parcel's outcome: released, and its channel alone.
    app.wait_for_state(&first_ucr, "released").await;
    let seen: Value = app.get(&format!("/v1/consignments/{first_ucr}"), Some("demo-platform")).await.json().await.unwrap();
    assert_eq!(seen["state"], "released");
    for d in seen["documents"][0]["deliveries"].as_array().unwrap() {
        let selection = d["selection"].as_object().expect("the channel, once answered");
        assert_eq!(selection.keys().collect::<Vec<_>>(), ["channel"], "{seen:#}");
    }
    assert!(!seen.to_string().contains("\"inspection\""), "nor what the inspection found: {seen:#}");
    let (mut cursor, mut released) = (0, Vec::new());
    loop {
        let page: Value = app.get(&format!("/v1/consignments/events?after={cursor}&wait=0s"), Some("demo-platform")).await.json().await.unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        released.extend(events.iter().filter(|e| e["state"] == "released").filter_map(|e| e["ucr"].as_str().map(str::to_owned)));
        cursor = page["cursor"].as_i64().unwrap();
    }
    assert_eq!(released.len(), 20, "the platform's stream tells each parcel's release: {released:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !receiver.taken().iter().any(|r| String::from_utf8_lossy(&r.body).contains(&first_ucr)) {
        assert!(tokio::time::Instant::now() < deadline, "the webhook is sent the parcel's changes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its sellers, by what inspections found: the irregular seller first.
    let report: Value = app.get("/v1/risk/sellers", Some("demo-platform")).await.json().await.unwrap();
    assert_eq!(report["platform"], "demo-platform");
    assert_eq!(report["inspections"], 20 * agencies_per_parcel, "{report:#}");
    let listed = report["sellers"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{report:#}");
    assert_eq!(listed[0]["seller"], format!("CN-USCC:{}", sellers[0]));
    assert_eq!((&listed[0]["irregularities"], &listed[0]["irregularityRate"]), (&json!(10 * agencies_per_parcel), &json!(1.0)));
    assert_eq!((&listed[1]["irregularities"], &listed[1]["inspections"]), (&json!(0), &json!(10 * agencies_per_parcel)));
    for secret in ["score", "reason", "rule", "model"] {
        assert!(!report.to_string().contains(secret), "no {secret} in a platform's report: {report:#}");
    }
    // Another platform's, or a trader asking: refused.
    assert_eq!(app.get("/v1/risk/sellers?platform=another-platform", Some("demo-platform")).await.status(), 403);
    assert_eq!(app.get("/v1/risk/sellers", Some("demo-trader")).await.status(), 403);
    assert_eq!(app.get("/v1/risk/rules", Some("demo-platform")).await.status(), 403);
}

/// Issue 28, item 8: `ventanilla simulate --ecommerce` sends four weeks of parcels with planted
/// irregularities (undervaluing sellers, misdeclared books, a route) through the gateway as
/// the demo platform, its agencies (inspecting what they are told, reporting what the plan
/// planted) and its operator (training at the start of each week while its parcels flow). No
/// rule describes the patterns but for the undervaluers' electronics: the model must find them
/// by its features.
#[tokio::test]
async fn simulated_weeks_of_parcels_teach_a_model_that_finds_three_times_the_base_rate() {
    let app = spawn_app().await;
    let report = crate::helpers::simulate(
        app.data.path(),
        &["--ecommerce", "--gateway", &app.address, "--weeks", "4", "--parcels-per-week", "2500", "--seed", "11"],
    )
    .await;
    let base = report["baseIrregularityRate"].as_f64().unwrap();
    let rate = |t: &Value| t["irregularities"].as_f64().unwrap() / t["inspections"].as_f64().unwrap();
    assert!(base > 0.05 && base < 0.15, "the plan's base rate: {base}");

    // The model's selections, and those of them no rule pointed at: at least 3x the base rate.
    let model = &report["bySource"]["model"];
    assert!(model["inspections"].as_u64().unwrap() >= 300, "{:#}", report["bySource"]);
    assert!(rate(model) >= 3.0 * base, "model-selected hit rate {} against a base rate of {base}", rate(model));
    let features = &report["modelWithoutRules"];
    assert!(features["inspections"].as_u64().unwrap() >= 200, "{features}");
    assert!(rate(features) >= 3.0 * base, "found by the features alone: {} against {base}", rate(features));

    // The gateway's own figure of the live model, on the findings of the run it scored.
    let live = &report["liveModel"];
    assert!(live["modelFindingsInPeriod"].as_u64().unwrap() >= 100, "{live}");
    let now = live["modelPrecisionInPeriod"].as_f64().unwrap();
    assert!(now >= 3.0 * base, "the live model's precision at the budget on the run's findings: {now} against {base}");

    // The random share within 2 points of the region's exploration (10%).
    let random_share = report["randomShare"].as_f64().unwrap();
    assert!((random_share - 0.10).abs() <= 0.02, "random share {random_share}");

    // Rules fire as written: on every parcel they describe, on no other.
    for rule in report["rules"].as_array().unwrap() {
        assert!(rule["described"].as_u64().unwrap() > 0, "{rule}");
        assert_eq!((&rule["missed"], &rule["spurious"]), (&json!(0), &json!(0)), "{rule}");
    }

    // Models trained while the parcels flowed: each week after the first, the first one live;
    // and nothing lost: every delivery accepted was seen by its agency and answered (by it, or
    // by the standing instruction of a de minimis parcel).
    let weeks = report["weeks"].as_array().unwrap();
    assert_eq!(weeks[1]["training"]["status"], 200, "{:#}", weeks[1]["training"]);
    assert_eq!(weeks[1]["training"]["answer"]["live"], true);
    for w in &weeks[2..] {
        assert_eq!(w["training"]["status"], 200, "{:#}", w["training"]);
    }
    let accepted = report["deliveriesAccepted"].as_u64().unwrap();
    assert!(accepted >= 10_000, "every parcel accepted, each to its agencies: {accepted}");
    assert_eq!(report["deliveriesSeen"], accepted);
    assert_eq!(report["deliveriesAnswered"].as_u64().unwrap() + report["releasedByStandingInstruction"].as_u64().unwrap(), accepted);
    assert!(report["releasedByStandingInstruction"].as_u64().unwrap() > 0, "de minimis parcels cleared on arrival");

    // The platform never reads a score, a source, a reason or a finding.
    assert!(report["platformViews"].as_u64().unwrap() >= 100);
    assert_eq!(report["platformViewLeaks"], 0);
}

/// Every cost a request can cause is bounded per participant: the figures of
/// `GET /v1/risk/performance` are computed on the blocking pool and charged to the reader's CPU
/// account. An agency with a tiny CPU quota that asks again and again is held back (429, the
/// `cpu` policy); the operator is served meanwhile.
#[tokio::test]
async fn an_agency_asking_for_its_figures_again_and_again_is_held_back_by_its_cpu_quota() {
    let app = crate::helpers::spawn_app_configured(Some(crate::helpers::test_brokers()), |s| {
        s.region.quotas.participants.insert("demo-br-customs".into(), toml::from_str("cpu_millis_per_second = 1").unwrap());
    })
    .await;
    for i in 0..40 {
        let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        d["ucr"] = json!(format!("CPU-{i}-{}", uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase()));
        assert_eq!(app.submit(&d).await.status(), 202);
    }
    let mut refused = None;
    for n in 0..2_000 {
        let r = app.get("/v1/risk/performance", Some("demo-br-customs")).await;
        if r.status() == 429 {
            refused = Some((n, r.headers().get("retry-after").is_some(), r.json::<Value>().await.unwrap()));
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let (n, retry_after, problem) = refused.expect("the agency is held back within 2,000 requests");
    assert!(n >= 1, "its first request is served");
    assert!(retry_after, "it is told when to come back");
    assert_eq!((&problem["code"], &problem["quota"]), (&json!("too-many-requests"), &json!("cpu")), "{problem:#}");
    assert!(problem["detail"].as_str().unwrap().contains("figuring your reports"), "{problem:#}");
    // Someone else is not: the operator reads every agency's figures now.
    assert_eq!(app.get("/v1/risk/performance", Some("demo-operator")).await.status(), 200);
}

/// Issue 28, item 6: a platform's manifest of 10,000 parcels in one NDJSON request, each its own
/// consignment, every one accepted and committed.
#[tokio::test]
async fn a_platform_submits_ten_thousand_parcels_in_one_request() {
    let app = spawn_app().await;
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_uppercase();
    let parcels: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut p = platform_parcel(i, &format!("SELLER{:03}", i % 300));
            p["ucr"] = json!(format!("5BR28374619000185-M{run}{i:05}"));
            p
        })
        .collect();
    let started = std::time::Instant::now();
    let r = app.submit_ndjson("demo-platform", parcels).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    println!("10,000 parcels answered in {:.1} s (a debug build)", started.elapsed().as_secs_f64());
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|r| r["status"] == 202), "every parcel accepted");
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    let (documents, consignments): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT ucr) FROM documents WHERE sender = 'demo-platform' AND ucr LIKE ?1",
            [format!("5BR28374619000185-M{run}%")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((documents, consignments), (10_000, 10_000), "each parcel its own consignment");
}
