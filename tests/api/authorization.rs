//! The authorization matrix: every role x every endpoint x own and foreign resource, with the
//! expected status, run against a real gateway. A refused request (4xx) must change nothing:
//! the store's rows are counted before and after each. Foreign consignments and documents
//! answer 404, not 403, so their existence does not leak.

use serde_json::{json, Value};

use crate::helpers::{example, spawn_app, TestApp};

/// What a request could change, row by row (publications by the relay run on their own and
/// are left out): consignments and their states, documents, deliveries with their answers,
/// attempts and failures, history entries, status events.
fn state(app: &TestApp) -> Vec<String> {
    let db = rusqlite::Connection::open(app.data.path().join("ventanilla.db")).unwrap();
    [
        "SELECT ucr || state || updated_at || COALESCE(released_at, '') FROM consignments ORDER BY ucr",
        "SELECT id || sender || ucr FROM documents ORDER BY id",
        "SELECT id || agency || COALESCE(first_answer_at, '') || attempts || COALESCE(failed_at, '') || \
         CASE WHEN status IN ('pending', 'dispatched') THEN '' ELSE status END FROM deliveries ORDER BY id",
        "SELECT id || status || source FROM delivery_events WHERE source != 'broker' ORDER BY id",
        "SELECT id || body FROM status_outbox ORDER BY id",
    ]
    .iter()
    .flat_map(|q| {
        let mut stmt = db.prepare(q).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect::<Vec<_>>()
    })
    .collect()
}

const WHO: [(&str, Option<&str>); 9] = [
    ("anonymous", None),
    ("trader (owner)", Some("demo-trader")),
    ("trader (other)", Some("demo-trader-2")),
    ("nsw (AR, the declarant's)", Some("demo-nsw-ar")),
    ("nsw (BR)", Some("demo-nsw-br")),
    ("agency (routed)", Some("demo-br-customs")),
    ("agency (not routed)", Some("demo-uy-customs")),
    ("operator", Some("demo-operator")),
    ("platform", Some("demo-platform")),
];

#[tokio::test]
async fn every_role_on_every_endpoint_own_and_foreign() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let declaration = |n: &str| {
        let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        d["ucr"] = json!(format!("AUTHZ-{n}-{}", &run[24..]));
        d
    };
    // The trader's consignment: routed to br-customs, not to uy-customs.
    let own: Value = app.submit(&declaration("OWN")).await.json().await.unwrap();
    let (own_ucr, own_doc) = (own["ucr"].as_str().unwrap().to_owned(), own["documentId"].as_str().unwrap().to_owned());
    assert!(own["deliveries"].as_array().unwrap().iter().any(|d| d["agency"] == "br-customs"));
    assert!(!own["deliveries"].as_array().unwrap().iter().any(|d| d["agency"] == "uy-customs"));
    let view: Value = app.get(&format!("/v1/consignments/{own_ucr}"), Some("demo-operator")).await.json().await.unwrap();
    let delivery = view["documents"][0]["deliveries"][0]["deliveryId"].as_i64().unwrap();

    // (endpoint, method, path, body, expected status for each of WHO in order)
    type Row = (&'static str, &'static str, String, Option<Value>, [u16; 9]);
    let mut rows: Vec<Row> = Vec::new();
    for (i, (who, _)) in WHO.iter().enumerate() {
        // A fresh document per caller, so a 202 is never a replay.
        let mut expected = [401, 202, 403, 202, 403, 403, 403, 403, 403];
        expected.iter_mut().enumerate().for_each(|(j, e)| if j != i { *e = 0 });
        rows.push(("submit a declaration", "POST", "/v1/documents".into(), Some(declaration(&format!("S{i}"))), expected));
        let _ = who;
    }
    // Amend and withdraw: each caller on a fresh document of the trader's own, so a 202 is
    // never a replay nor refused as superseded. Only the sender, or the NSW of the declarant's
    // country acting for it; another trader may not submit the declarant's documents (403), and
    // to anyone else who submits documents the document does not exist (404).
    for (i, _) in WHO.iter().enumerate() {
        let only = |all: [u16; 9]| {
            let mut e = all;
            e.iter_mut().enumerate().for_each(|(j, x)| if j != i { *x = 0 });
            e
        };
        let mut document = declaration(&format!("A{i}"));
        let first: Value = app.submit(&document).await.json().await.unwrap();
        let id = first["documentId"].as_str().unwrap().to_owned();
        document["payload"]["incoterm"] = json!("FOB");
        let amendment = json!({"reason": "incoterm corrected", "document": document});
        rows.push(("amend a declaration", "POST", format!("/v1/documents/{id}/amendments"), Some(amendment), only([401, 202, 403, 202, 403, 403, 403, 403, 403])));
        let other: Value = app.submit(&declaration(&format!("W{i}"))).await.json().await.unwrap();
        let id = other["documentId"].as_str().unwrap();
        let withdrawal = json!({"reason": "the sale was cancelled"});
        rows.push(("withdraw a declaration", "POST", format!("/v1/documents/{id}/withdrawal"), Some(withdrawal), only([401, 202, 404, 202, 404, 403, 403, 403, 404])));
    }
    rows.push((
        "answer a query (none open)",
        "POST",
        format!("/v1/documents/{own_doc}/responses"),
        Some(json!({"text": "here it is"})),
        [401, 409, 404, 409, 404, 403, 403, 403, 404],
    ));
    let ack = |agency: &str| json!({"documentId": own_doc, "agency": agency, "status": "received"});
    rows.extend([
        ("validate a declaration", "POST", "/v1/validate".into(), Some(declaration("V")), [401, 200, 403, 200, 403, 403, 403, 403, 403]),
        ("read own/foreign consignment", "GET", format!("/v1/consignments/{own_ucr}"), None, [401, 200, 404, 404, 404, 200, 404, 200, 404]),
        ("read an unknown consignment", "GET", "/v1/consignments/NO-SUCH-UCR".into(), None, [401, 404, 404, 404, 404, 404, 404, 404, 404]),
        ("acknowledge in uy-customs' name", "POST", "/v1/acknowledgments".into(), Some(ack("uy-customs")), [401, 403, 403, 403, 403, 403, 404, 403, 403]),
        ("list failed deliveries", "GET", "/v1/deliveries/failed".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("retry one delivery", "POST", format!("/v1/deliveries/{delivery}/retry"), None, [401, 403, 403, 403, 403, 403, 403, 409, 403]),
        ("retry every failed delivery", "POST", "/v1/deliveries/failed/retry".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("read metrics", "GET", "/metrics".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("read consignment events", "GET", "/v1/consignments/events?after=0&wait=0s".into(), None, [401, 200, 200, 200, 200, 403, 403, 200, 200]),
        ("read br-customs' document stream", "GET", "/v1/agencies/br-customs/documents?after=0&wait=0s".into(), None, [401, 404, 404, 404, 404, 200, 404, 200, 404]),
        ("read release-time indicators", "GET", "/v1/indicators/release-times".into(), None, [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        // Risk: the rules and the models are the operator's; an agency reads its own selection's
        // performance; a platform its own sellers' findings, never the rules (issue 28).
        ("read the risk rules", "GET", "/v1/risk/rules".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("train a risk model", "POST", "/v1/risk/models".into(), None, [401, 403, 403, 403, 403, 403, 403, 409, 403]),
        ("read risk performance", "GET", "/v1/risk/performance".into(), None, [401, 403, 403, 403, 403, 200, 200, 200, 403]),
        ("read a platform's sellers", "GET", "/v1/risk/sellers".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 200]),
        ("read demo-platform's sellers", "GET", "/v1/risk/sellers?platform=demo-platform".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 200]),
        ("read another platform's sellers", "GET", "/v1/risk/sellers?platform=demo-trader".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("group figures by risk channel", "GET", "/v1/indicators/release-times?groupBy=riskChannel".into(), None, [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        ("read public release-time indicators", "GET", "/v1/public/indicators/release-times".into(), None, [200; 9]),
        // The TFA monitor: the region's (operator), a country's (NSW), an agency's own parts.
        ("read the TFA monitor", "GET", "/v1/indicators/tfa".into(), None, [401, 403, 403, 200, 200, 200, 200, 200, 403]),
        ("read the public TFA monitor", "GET", "/v1/public/indicators/tfa".into(), None, [200; 9]),
        ("list schemas", "GET", "/v1/schemas".into(), None, [200; 9]),
        ("read a schema", "GET", "/v1/schemas/customsDeclaration/1.0.0".into(), None, [200; 9]),
        ("health", "GET", "/healthz".into(), None, [200; 9]),
        ("readiness", "GET", "/readyz".into(), None, [200; 9]),
        // Last, as it changes the delivery: only the routed agency may answer for itself.
        ("acknowledge in br-customs' name", "POST", "/v1/acknowledgments".into(), Some(ack("br-customs")), [401, 403, 403, 403, 403, 200, 403, 403, 403]),
    ]);

    let mut table = String::new();
    for (what, method, path, body, expected) in &rows {
        for (i, (who, token)) in WHO.iter().enumerate() {
            if expected[i] == 0 {
                continue; // another caller's fresh submission
            }
            let before = state(&app);
            let mut req = app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", app.address));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b.to_string());
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            table.push_str(&format!("{what:<34} {who:<28} {status}\n"));
            assert_eq!(status, expected[i], "{what} by {who}: {text}");
            if status >= 400 {
                assert_eq!(state(&app), before, "{what} by {who} was refused and changed nothing");
                let problem: Value = serde_json::from_str(&text).unwrap();
                assert!(problem["code"].is_string(), "{text}");
            }
            // What a reader gets is only theirs.
            if what.starts_with("read own") && status == 200 {
                let v: Value = serde_json::from_str(&text).unwrap();
                let agencies: Vec<&str> = v["documents"].as_array().unwrap().iter()
                    .flat_map(|d| d["deliveries"].as_array().unwrap().iter().map(|x| x["agency"].as_str().unwrap())).collect();
                match *who {
                    "agency (routed)" => assert!(agencies.iter().all(|a| *a == "br-customs"), "{agencies:?}"),
                    _ => assert!(agencies.len() > 1, "{who} sees every delivery of its own document"),
                }
                // Risk selection: the agency reads its own in full, the operator every one; a
                // submitter never a score, a source, a reason or a finding (issue 28).
                let deliveries: Vec<&Value> = v["documents"].as_array().unwrap().iter().flat_map(|d| d["deliveries"].as_array().unwrap()).collect();
                match *who {
                    "agency (routed)" | "operator" => assert!(deliveries.iter().all(|d| d["selection"]["score"].is_number()), "{who}: {v:#}"),
                    _ => assert!(deliveries.iter().all(|d| d["selection"].get("score").is_none() && d.get("inspection").is_none()), "{who}: {v:#}"),
                }
            }
        }
    }
    println!("authorization matrix:\n{table}");

    // Once br-customs has answered (the matrix's last row), the trader reads that delivery's
    // channel and nothing more of the selection; the agency reads its own in full.
    let seen: Value = app.get(&format!("/v1/consignments/{own_ucr}"), Some("demo-trader")).await.json().await.unwrap();
    let customs = seen["documents"][0]["deliveries"].as_array().unwrap().iter().find(|d| d["agency"] == "br-customs").unwrap().clone();
    let keys: Vec<&String> = customs["selection"].as_object().expect("the channel, once answered").keys().collect();
    assert_eq!(keys, ["channel"], "{customs:#}");
    let agency: Value = app.get(&format!("/v1/consignments/{own_ucr}"), Some("demo-br-customs")).await.json().await.unwrap();
    assert!(agency["documents"][0]["deliveries"][0]["selection"]["score"].is_number(), "{agency:#}");

    // A batch: answered 200 with one result per item; the item is refused as a single
    // submission would be, and a refused item changes nothing. A role that submits nothing is
    // refused the whole batch before its body is read.
    for (i, (who, token)) in WHO.iter().enumerate() {
        let items = json!([declaration(&format!("B{i}"))]);
        let before = state(&app);
        let mut req = app.client.post(format!("{}/v1/documents:batch", app.address)).header("Content-Type", "application/json").body(items.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let expected_item = [0, 202, 403, 202, 403, 403, 403, 403, 403][i];
        if token.is_none() {
            assert_eq!(r.status(), 401, "batch by {who}");
            assert_eq!(state(&app), before);
            continue;
        }
        if who.starts_with("agency") || who.starts_with("operator") {
            assert_eq!(r.status(), 403, "batch by {who}");
            assert_eq!(state(&app), before);
            println!("{:<34} {who:<28} 403", "submit a batch");
            continue;
        }
        assert_eq!(r.status(), 200, "batch by {who}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["results"][0]["status"], expected_item, "batch item by {who}: {answer}");
        if expected_item >= 400 {
            assert_eq!(state(&app), before, "a refused batch item by {who} changed nothing");
        }
        println!("{:<34} {who:<28} 200, item {expected_item}", "submit a batch");
    }

    // A consignment is its opener's: another participant, even one allowed to submit this very
    // document, may not add to it, and learns nothing of its state.
    let before = state(&app);
    let r = app.post_json("/v1/documents", Some("demo-nsw-ar"), &declaration("OWN").to_string()).await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "ucr-taken");
    assert!(problem.get("consignmentState").is_none() && !problem.to_string().contains("submitted"), "{problem}");
    assert_eq!(state(&app), before, "nothing changed");

    // What an NSW submitted, it reads; the trader does not.
    let nsw_ucr = format!("AUTHZ-S3-{}", &run[24..]);
    assert_eq!(app.get(&format!("/v1/consignments/{nsw_ucr}"), Some("demo-nsw-ar")).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/consignments/{nsw_ucr}"), Some("demo-trader")).await.status(), 404);
}

/// Issue 26, item 6: a UCR of the WCO form names its exporter (`5AR30714255831-...`: AR-CUIT
/// 30714255831). Another trader may not take it, even for a document of its own, so the
/// exporter's declaration is not then refused as `ucr-taken`; those acting for the exporter,
/// and the NSW of its country, may use it. UCRs of other forms, and WCO-form ones whose
/// identifier is none of the country's schemes', are anyone's, as before.
#[tokio::test]
async fn a_ucr_naming_an_exporter_is_used_only_by_those_acting_for_it() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let exporters = format!("5AR30714255831-{}", &run[20..]);
    // The exporter's own declaration (its declarant AR-CUIT:30714255831, demo-trader's client) ...
    let declaration = |ucr: &str| {
        let mut d = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        d["ucr"] = json!(ucr);
        d
    };
    // ... and demo-trader-2's, declared by the party it acts for.
    let of_trader_2 = |ucr: &str| {
        let mut d = declaration(ucr);
        d["payload"]["declarant"]["identifier"]["value"] = json!("20111111112");
        d
    };

    for path in ["/v1/validate", "/v1/documents"] {
        let before = state(&app);
        let r = app.post_json(path, Some("demo-trader-2"), &of_trader_2(&exporters).to_string()).await;
        let problem = crate::helpers::assert_problem(r, 403, "ucr-not-yours").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&exporters) && detail.contains("AR-CUIT:30714255831") && detail.contains("demo-trader-2"), "{detail}");
        assert_eq!(state(&app), before, "{path}: refused, nothing changed");
    }
    // A batch item is refused alike.
    let r = app.post_json("/v1/documents:batch", Some("demo-trader-2"), &json!([of_trader_2(&exporters)]).to_string()).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["results"][0]["status"], 403, "{answer}");
    assert_eq!(answer["results"][0]["problem"]["code"], "ucr-not-yours", "{answer}");

    // The UCR is still the exporter's to open.
    let r = app.submit(&declaration(&exporters)).await;
    assert_eq!(r.status(), 202, "the exporter's declaration: {}", r.text().await.unwrap());
    // The NSW of the exporter's country may use its UCRs.
    let r = app.post_json("/v1/documents", Some("demo-nsw-ar"), &declaration(&format!("5AR30714255831-N{}", &run[20..])).to_string()).await;
    assert_eq!(r.status(), 202, "the NSW of AR: {}", r.text().await.unwrap());

    // demo-trader-2's own UCR, one naming no valid identifier (a wrong check digit), and one of
    // another form, it may use.
    for ucr in [format!("5AR20111111112-{}", &run[20..]), format!("5AR30714255832-{}", &run[20..]), format!("AUTHZ-T2-{}", &run[20..])] {
        let r = app.post_json("/v1/documents", Some("demo-trader-2"), &of_trader_2(&ucr).to_string()).await;
        assert_eq!(r.status(), 202, "{ucr}: {}", r.text().await.unwrap());
    }
}

/// Issue 26, item 13: a national single window acts for its own country's parties, judged by
/// the country of their identifier's scheme, not by the address the document gives them: a
/// company identified by a Brazilian CNPJ with an Argentine address is Brazil's.
#[tokio::test]
async fn an_nsw_acts_for_parties_of_its_countrys_schemes_whatever_their_address() {
    let app = spawn_app().await;
    let run = uuid::Uuid::now_v7().simple().to_string().to_uppercase();
    let mut foreign = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    foreign["ucr"] = json!(format!("AUTHZ-NSW-{}", &run[20..]));
    foreign["payload"]["declarant"]["identifier"] = json!({"scheme": "BR-CNPJ", "value": "45678912000155"});
    assert_eq!(foreign["payload"]["declarant"]["address"]["country"], "AR", "the address says Argentina");

    for path in ["/v1/validate", "/v1/documents"] {
        let before = state(&app);
        let r = app.post_json(path, Some("demo-nsw-ar"), &foreign.to_string()).await;
        let problem = crate::helpers::assert_problem(r, 403, "forbidden").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("traders of AR") && detail.contains("a BR party (identified by BR-CNPJ:45678912000155)"), "{detail}");
        assert_eq!(state(&app), before, "{path}: refused, nothing changed");
    }
    // Brazil's NSW may submit it: the declarant is a Brazilian company.
    let r = app.post_json("/v1/documents", Some("demo-nsw-br"), &foreign.to_string()).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // The country's own traders are still its NSW's.
    let mut own = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    own["ucr"] = json!(format!("AUTHZ-NSW-AR-{}", &run[20..]));
    let r = app.post_json("/v1/documents", Some("demo-nsw-ar"), &own.to_string()).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// Issue 30: the access each route enforces is the one the route table describes (and
/// `/openapi.json` with it). Walking the table, every route is called without credentials and
/// with each role's token: a route open to anyone never asks who is calling, every other one
/// answers 401 to the anonymous, 403 to a role its policy leaves out, and neither to a role it
/// admits. Bodies are empty objects: a write that gets past its policy is refused for its body.
#[tokio::test]
async fn every_route_enforces_the_access_the_route_table_describes() {
    use ventanilla::http::api::{endpoints, Body};
    use ventanilla::http::policy::Access;
    let app = spawn_app().await;
    let roles = [
        ("trader", "demo-trader"),
        ("nsw", "demo-nsw-ar"),
        ("platform", "demo-platform"),
        ("agency", "demo-ar-customs"),
        ("operator", "demo-operator"),
    ];
    let openapi: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let mut walked = 0;
    for e in endpoints() {
        let mut path = e
            .path
            .replace("{documentId}", "0190d7a4-0000-7000-8000-000000000000")
            .replace("{agency}", "ar-customs")
            .replace("{ucr}", "UCR-ACCESS-WALK")
            .replace("{webhook}", "0190d7a4-0000-7000-8000-000000000001")
            .replace("{id}", "1")
            .replace("{name}", "customsDeclaration")
            .replace("{version}", "1.0.0");
        if matches!(e.ok.1, Body::Stream) {
            path.push_str("?wait=0");
        }
        let method = reqwest::Method::from_bytes(e.method.as_str().as_bytes()).unwrap();
        let call = |token: Option<&str>| {
            let mut req = app.client.request(method.clone(), format!("{}{path}", app.address)).header("Content-Type", "application/json");
            if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
                req = req.body("{}");
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            async move { req.send().await.expect("request sent").status().as_u16() }
        };
        let access = e.access();
        let anonymous = call(None).await;
        let operation = &openapi["paths"][e.path][e.method.as_str().to_ascii_lowercase()];
        if access == Access::Anyone {
            assert_ne!(anonymous, 401, "{} {} is open to anyone, and asked who is calling", e.method, e.path);
            assert_eq!(operation["security"], json!([]), "{} {}", e.method, e.path);
            continue;
        }
        assert_eq!(anonymous, 401, "{} {} without credentials", e.method, e.path);
        assert_ne!(operation["security"], json!([]), "{} {} is described as open", e.method, e.path);
        assert_eq!(operation["description"].as_str(), access.described(), "{} {}", e.method, e.path);
        for (role, token) in roles {
            let admitted = match access {
                Access::Anyone | Access::Participant => true,
                Access::Submitter => ["trader", "nsw", "platform"].contains(&role),
                Access::Agency => role == "agency",
                Access::Operator => role == "operator",
            };
            let status = call(Some(token)).await;
            assert_ne!(status, 401, "{} {} as {role}", e.method, e.path);
            if !admitted {
                assert_eq!(status, 403, "{} {} as {role}: the table says {access:?}", e.method, e.path);
            } else if access != Access::Participant {
                // A participant route may still refuse by what is asked (another agency's
                // stream); a route of one policy admits each role it names.
                assert_ne!(status, 403, "{} {} as {role}: the table says {access:?}", e.method, e.path);
            }
        }
        walked += 1;
    }
    assert!(walked >= 20, "the table's guarded routes were walked: {walked}");
}
