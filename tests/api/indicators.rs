//! The release-time indicators over HTTP: each participant's scope, the public figures with
//! small cells suppressed, and figures that agree with the consignments' own views.

use serde_json::{json, Value};

use std::sync::Arc;

use crate::helpers::{
    assert_problem, example, published_month, simulate, simulate_into, spawn_app, spawn_app_on, test_brokers, TestApp,
};

/// A beef declaration by road, and its border-crossing notice, answered by every agency; the
/// border post answers the notice when the truck presents itself (arrival).
async fn released_consignment(app: &TestApp, n: usize) -> Value {
    let ucr = format!("5AR30714255831-I{n:04}");
    let mut declaration = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    declaration["ucr"] = json!(ucr);
    let mut notice = example("borderCrossingNotice/valid/road-beef-AR-BR.json");
    notice["ucr"] = json!(ucr);
    assert_eq!(app.submit(&declaration).await.status(), 202);
    let r = app.submit(&notice).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let view: Value = app.get(&format!("/v1/consignments/{ucr}"), Some("demo-operator")).await.json().await.unwrap();
    let answer = |doc: &str, agency: &str, status: &str| {
        let body = json!({"documentId": doc, "agency": agency, "status": status}).to_string();
        let token = format!("demo-{agency}");
        async move { assert_eq!(app.post_json("/v1/acknowledgments", Some(&token), &body).await.status(), 200) }
    };
    for document in view["documents"].as_array().unwrap() {
        let doc = document["documentId"].as_str().unwrap();
        for delivery in document["deliveries"].as_array().unwrap() {
            answer(doc, delivery["agency"].as_str().unwrap(), "released").await;
        }
    }
    app.wait_for_state(&ucr, "released").await
}

async fn figures(app: &TestApp, path: &str, token: Option<&str>) -> Value {
    let r = app.get(path, token).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn figures_agree_with_the_consignments_and_each_reader_sees_its_own() {
    let app = spawn_app().await;
    let views = [released_consignment(&app, 1).await, released_consignment(&app, 2).await];
    let expected: Vec<i64> = views.iter().map(|v| v["timeRelease"]["submissionToReleaseMs"].as_i64().unwrap()).collect();

    let all = figures(&app, "/v1/indicators/release-times?interval=lodgement-to-release&groupBy=corridor,transportMode", Some("demo-operator")).await;
    let overall = &all["overall"];
    assert_eq!(overall["count"], 2, "{all:#}");
    assert_eq!(overall["meanMs"].as_f64().unwrap(), (expected[0] + expected[1]) as f64 / 2.0);
    assert_eq!(overall["minMs"].as_i64().unwrap(), *expected.iter().min().unwrap());
    assert_eq!(all["groups"][0]["group"], json!({"corridor": "AR-BR", "transportMode": "road"}));
    assert!(all["method"].as_str().unwrap().contains("Tukey"));

    // Arrival: the border post's first answer to the notice.
    let arrival = figures(&app, "/v1/indicators/release-times?groupBy=borderPost,preArrival", Some("demo-operator")).await;
    assert_eq!(arrival["interval"], "arrival-to-release");
    assert_eq!(arrival["overall"]["count"], 2, "{arrival:#}");
    assert_eq!(arrival["groups"][0]["group"], json!({"borderPost": "BRURG", "preArrival": "pre-arrival"}));

    // The trader: its own two; another trader: none.
    let own = figures(&app, "/v1/indicators/release-times?interval=lodgement-to-release", Some("demo-trader")).await;
    assert_eq!(own["overall"]["count"], 2);
    let other = figures(&app, "/v1/indicators/release-times?interval=lodgement-to-release", Some("demo-trader-2")).await;
    assert_eq!(other["overall"]["count"], 0);
    assert!(other["overall"].get("meanMs").is_none(), "no figure of nothing: {other:#}");
    // An agency: its own part only, whatever it groups by.
    let customs = figures(&app, "/v1/indicators/release-times?interval=agency-decision&groupBy=agency,agencyKind", Some("demo-br-customs")).await;
    let groups: Vec<&Value> = customs["groups"].as_array().unwrap().iter().map(|g| &g["group"]).collect();
    assert_eq!(groups, [&json!({"agency": "br-customs", "agencyKind": "customs"})], "{customs:#}");
    assert_eq!(customs["groups"][0]["count"], 2, "its part in each of the two consignments: {customs:#}");
    // The gateway's index follows what changes after it was loaded.
    released_consignment(&app, 4).await;
    let three = figures(&app, "/v1/indicators/release-times?interval=lodgement-to-release", Some("demo-operator")).await;
    assert_eq!(three["overall"]["count"], 3, "{three:#}");
    // Per day, by lodgement.
    let trend = figures(&app, "/v1/indicators/release-times?interval=lodgement-to-release&trend=day", Some("demo-operator")).await;
    assert_eq!(trend["trendCells"][0]["period"].as_str().unwrap().len(), 10);

    // The public: no identity, whole months once settled (this month's consignments are not
    // published yet), and cells below 5 consignments suppressed.
    let public = figures(&app, "/v1/public/indicators/release-times?interval=lodgement-to-release", None).await;
    assert_eq!(public["overall"]["suppressed"], true, "{public:#}");
    assert!(public["overall"].get("count").is_none() && public["overall"].get("meanMs").is_none());
    assert_eq!(public["minCount"], 5);
    let this_month = &ventanilla::clock::rfc3339(ventanilla::clock::now_millis())[..7];
    let r = app.get(&format!("/v1/public/indicators/release-times?month={this_month}"), None).await;
    assert_problem(r, 404, "not-found").await;

    let empty = figures(&app, "/v1/indicators/release-times?from=2026-12-01&to=2026-11-01", Some("demo-operator")).await;
    assert_eq!(empty["overall"]["count"], 0, "a period that ends before it starts holds nothing");
    for bad in ["interval=fastest", "groupBy=trader", "trend=month", "from=yesterday", "modeBin=0s", "from=2026-02-30", "owner=x"] {
        let r = app.get(&format!("/v1/indicators/release-times?{bad}"), Some("demo-operator")).await;
        assert_problem(r, 400, "invalid-query").await;
    }
    assert_eq!(app.get("/v1/indicators/release-times", None).await.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn the_public_threshold_is_the_regions() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let (from, to, month) = published_month();
    simulate_into(data.path(), 30, 4, from, to).await;
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let app = spawn_app_on(data, prefix, Some(test_brokers()), |s| s.region.indicators.public_min_count = 1).await;
    let path = format!("/v1/public/indicators/release-times?interval=lodgement-to-release&groupBy=corridor&month={month}");
    let public = figures(&app, &path, None).await;
    assert_eq!(public["minCount"], 1);
    let groups = public["groups"].as_array().unwrap();
    assert!(groups.iter().all(|g| g["suppressed"].is_null()), "nothing is below a threshold of 1: {public:#}");
    assert!(groups.iter().any(|g| g["count"].as_u64().unwrap() < 5), "a cell a threshold of 5 would suppress: {public:#}");
    app.stop().await;
}

/// The public figures of a month of simulated traffic.
async fn public(app: &TestApp, query: &str) -> Value {
    figures(app, &format!("/v1/public/indicators/release-times?{query}"), None).await
}

/// Issue 26, item 4: `groupBy=transportMode` minus `groupBy=transportMode,channel` over the same
/// days told one suppressed consignment's time; `modeBin=1s` gave the earliest one to the second.
/// The public figures are now a fixed set of tables per calendar month, suppressed together.
#[tokio::test]
async fn no_public_answer_nor_difference_of_answers_gives_away_a_consignment() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let (from, to, month) = published_month();
    // About five consignments a day: many days fall below the threshold, no week does.
    simulate_into(data.path(), 150, 9, from, to).await;
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let app = spawn_app_on(data, prefix, Some(test_brokers()), |_| {}).await;

    // The issue's two answers: the second is not published at all.
    let by_mode = public(&app, &format!("interval=lodgement-to-release&groupBy=transportMode&month={month}")).await;
    assert_eq!(by_mode["from"].as_str().unwrap()[..7], month);
    let r = app.get(&format!("/v1/public/indicators/release-times?interval=lodgement-to-release&groupBy=transportMode,channel&month={month}"), None).await;
    assert_problem(r, 400, "invalid-query").await;
    // Nor a segment per day, nor a period that is not a whole month.
    let r = app.get(&format!("/v1/public/indicators/release-times?groupBy=transportMode&trend=day&month={month}"), None).await;
    assert_problem(r, 404, "not-found").await;
    let r = app.get("/v1/public/indicators/release-times?from=2026-01-01&to=2026-01-02", None).await;
    assert_problem(r, 400, "invalid-query").await;
    // The mode's bins are an hour at least.
    let r = app.get(&format!("/v1/public/indicators/release-times?modeBin=1s&month={month}"), None).await;
    assert_problem(r, 400, "invalid-query").await;

    // Every table the month publishes, for two intervals: no shown cell is small or shows an
    // extreme, and no table has one suppressed cell alone (the overall minus the others).
    for interval in ["lodgement-to-release", "agency-decision"] {
        let mut views: Vec<String> = vec![String::new(), "trend=day".into(), "trend=week".into()];
        views.extend(["corridor", "borderPost", "transportMode", "hsChapter", "channel", "preArrival", "documentType"].map(|d| format!("groupBy={d}")));
        if interval == "agency-decision" {
            views.extend(["groupBy=agency".into(), "groupBy=agencyKind".into()]);
        }
        let overall = public(&app, &format!("interval={interval}&month={month}")).await["overall"].clone();
        let total = overall["count"].as_u64().expect("the month's overall figure is shown");
        let mut suppressed_somewhere = 0;
        for view in &views {
            let f = public(&app, &format!("interval={interval}&month={month}&{view}")).await;
            assert_eq!(f["overall"], overall, "{view}");
            let cells = if view.starts_with("trend") { &f["trendCells"] } else { &f["groups"] };
            let cells = cells.as_array().unwrap();
            let hidden: Vec<&Value> = cells.iter().filter(|c| c["suppressed"] == true).collect();
            assert_ne!(hidden.len(), 1, "{interval} {view}: one suppressed cell is the overall minus the others: {f:#}");
            suppressed_somewhere += hidden.len();
            let shown: u64 = cells.iter().filter_map(|c| c["count"].as_u64()).sum();
            for c in cells.iter().filter(|c| c["suppressed"].is_null()) {
                assert!(c["count"].as_u64().unwrap() >= 5, "{view}: {c:#}");
                assert!(c.get("minMs").is_none() && c.get("maxMs").is_none(), "{view}: {c:#}");
                assert_eq!(c["modeMs"].as_i64().unwrap() % 3_600_000, 0);
            }
            assert!(hidden.is_empty() == (shown == total), "{view}: the cells shown add up to the total only when none is hidden");
        }
        if interval == "lodgement-to-release" {
            assert!(suppressed_somewhere > 0, "a month this thin has consignments to suppress");
        }
    }
    // Days and weeks: a week shown is not its days shown plus one day hidden.
    let days = public(&app, &format!("interval=lodgement-to-release&trend=day&month={month}")).await;
    let weeks = public(&app, &format!("interval=lodgement-to-release&trend=week&month={month}")).await;
    let day_of = |p: &str| ventanilla::clock::parse_rfc3339(p).unwrap();
    for week in weeks["trendCells"].as_array().unwrap().iter().filter(|w| w["suppressed"].is_null()) {
        let start = day_of(week["period"].as_str().unwrap());
        let inside: Vec<&Value> =
            days["trendCells"].as_array().unwrap().iter().filter(|d| (start..start + 7 * 86_400_000).contains(&day_of(d["period"].as_str().unwrap()))).collect();
        let hidden = inside.iter().filter(|d| d["suppressed"] == true).count();
        assert_ne!(hidden, 1, "the week of {} minus its days shown would be its hidden day", week["period"]);
    }

    // Issue 26, item 11: dates out of range are refused, and never fail the gateway.
    let r = app.get("/v1/public/indicators/release-times?from=9999-12-31T23:59:59Z", None).await;
    assert_problem(r, 400, "invalid-query").await;
    let r = app.get("/v1/public/indicators/release-times?month=9999-12", None).await;
    assert_problem(r, 404, "not-found").await;
    let r = app.get("/v1/public/indicators/release-times?month=1969-12", None).await;
    let body = assert_problem(r, 400, "invalid-query").await;
    assert!(body["detail"].as_str().unwrap().contains("9999-12-31"), "{body:#}");
    let far = figures(&app, "/v1/indicators/release-times?from=9999-12-31T23:59:59Z&trend=day", Some("demo-operator")).await;
    assert_eq!((far["from"].as_str().unwrap(), far["overall"]["count"].as_u64()), ("9999-12-31T23:59:59.000Z", Some(0)));
    for bad in ["from=10000-01-01", "to=1969-12-31", "from=0000-01-01"] {
        let r = app.get(&format!("/v1/indicators/release-times?{bad}"), Some("demo-operator")).await;
        let body = assert_problem(r, 400, "invalid-query").await;
        assert!(body["detail"].as_str().unwrap().contains("1970-01-01 to 9999-12-31"), "{bad}: {body:#}");
    }
    app.stop().await;
}

/// Issue 26, item 5: anonymous callers made the public figures unavailable and everyone slower.
/// A request that would cost much is refused; an answer is computed once and then served from
/// memory; each source may have only so many computed.
#[tokio::test]
async fn public_answers_are_cached_and_their_cost_is_bounded() {
    let app = spawn_app().await;
    let (_, _, month) = published_month();
    let everything = "groupBy=agency,agencyKind,documentType,corridor,borderPost,transportMode,hsChapter,channel&trend=day&modeBin=1s";
    for expensive in [format!("{everything}&from=1926-01-01&to=2026-01-01"), format!("{everything}&month={month}")] {
        let r = app.get(&format!("/v1/public/indicators/release-times?{expensive}"), None).await;
        assert_problem(r, 400, "invalid-query").await;
    }

    let path = format!("/v1/public/indicators/release-times?interval=hold&month={month}");
    let first = app.get(&path, None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-status"], "ventanilla; fwd=miss; stored");
    let first_body = first.text().await.unwrap();
    let again = app.get(&path, None).await;
    assert_eq!(again.status(), 200);
    let status = again.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(status.starts_with("ventanilla; hit; ttl="), "{status}");
    assert!(again.headers()["age"].to_str().unwrap().parse::<u64>().unwrap() <= 60);
    assert_eq!(again.text().await.unwrap(), first_body, "the same answer");
    // Another answer of the same month's publication is computed with it.
    let by_kind = app.get(&format!("{path}&groupBy=agencyKind"), None).await;
    assert!(by_kind.headers()["cache-status"].to_str().unwrap().contains("hit"));

    // One source has ten computed at once, then one every six seconds; answers already
    // computed are still served to it.
    let mut limited = None;
    for hours in 2..20 {
        let r = app.get(&format!("{path}&modeBin={hours}h"), None).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let limited = limited.expect("a source's computations are bounded");
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert_problem(limited, 429, "too-many-requests").await;
    assert_eq!(app.get(&path, None).await.status(), 200, "served from memory whatever the source's allowance");

    let metrics = app.get("/metrics", Some("demo-operator")).await.text().await.unwrap();
    for outcome in ["hit", "computed", "limited"] {
        assert!(metrics.contains(&format!("ventanilla_public_indicators_total{{outcome=\"{outcome}\"}}")), "{outcome}");
    }
    app.stop().await;
}

/// Issue 32: the TFA monitor measures its articles from the same durable facts as the release
/// times (its Art. 7.6 is their arrival-to-release figure), by importing country or border post,
/// with the period before; each reader in its scope (the region, a country, an agency's parts).
#[tokio::test]
async fn the_tfa_monitor_measures_its_articles_from_the_release_time_facts_in_each_readers_scope() {
    let app = spawn_app().await;
    // Five released consignments into Brazil.
    for n in 11..=15 {
        released_consignment(&app, n).await;
    }
    // Neither from nor to Argentina, and not released: queried, rejected, then amended.
    let cars = example("customsDeclaration/valid/import-cars-sea-BR-UY.json");
    let r = app.submit(&cars).await;
    assert_eq!(r.status(), 202);
    let receipt: Value = r.json().await.unwrap();
    let cars_id = receipt["documentId"].as_str().unwrap().to_owned();
    let cars_agency = receipt["deliveries"][0]["agency"].as_str().unwrap().to_owned();
    let answer = |status: &'static str| {
        let body = json!({"documentId": cars_id, "agency": cars_agency, "status": status}).to_string();
        let token = format!("demo-{cars_agency}");
        let app = &app;
        async move { assert_eq!(app.post_json("/v1/acknowledgments", Some(&token), &body).await.status(), 200, "{status}") }
    };
    answer("query").await;
    answer("rejected").await;
    let mut corrected = cars.clone();
    corrected["payload"]["totalPackages"] = json!(corrected["payload"]["totalPackages"].as_i64().unwrap() + 1);
    let amendment = json!({"reason": "a package was not counted", "document": corrected}).to_string();
    let r = app.post_json(&format!("/v1/documents/{cars_id}/amendments"), Some("demo-trader"), &amendment).await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    let tfa = figures(&app, "/v1/indicators/tfa", Some("demo-operator")).await;
    let release = figures(&app, "/v1/indicators/release-times", Some("demo-operator")).await;
    let region = &tfa["current"]["region"];
    assert_eq!(region["consignments"], 6, "{tfa:#}");
    assert_eq!((&region["releaseTime"]["count"], &region["releaseTime"]["meanMs"]), (&release["overall"]["count"], &release["overall"]["meanMs"]));
    // Art. 7.1: the beef consignments were lodged before their border post's first answer.
    assert_eq!((&region["preArrival"]["withArrival"], &region["preArrival"]["share"]), (&json!(5), &json!(1.0)), "{tfa:#}");
    assert_eq!(region["preArrival"]["leadTime"]["count"], 5);
    // Art. 7.8: no e-commerce parcel; the released declarations are the others.
    assert_eq!((&region["expedited"]["expedited"]["count"], &region["expedited"]["others"]["count"]), (&json!(0), &json!(5)));
    // Art. 8: each released consignment was decided by several agencies.
    assert_eq!(region["agencySpread"]["count"], 5, "{tfa:#}");
    let groups: Vec<(&str, u64)> =
        tfa["current"]["groups"].as_array().unwrap().iter().map(|g| (g["group"].as_str().unwrap(), g["articles"]["consignments"].as_u64().unwrap())).collect();
    assert_eq!(groups, [("BR", 5), ("UY", 1)], "by destination");
    assert_eq!(tfa["current"]["regionMedian"]["releaseTimeMeanMs"], region["releaseTime"]["meanMs"], "BR alone has the figure");
    assert_eq!(tfa["previous"]["region"]["consignments"], 0, "the period before holds nothing");
    // Art. 10.1: six consignments, one document each but the beef's two (declaration, notice);
    // the cars' one amendment answered its rejection, after one query.
    let formalities = &region["formalities"];
    assert_eq!((&formalities["consignments"], &formalities["notComputed"]), (&json!(6), &json!(0)), "{tfa:#}");
    assert_eq!(formalities["documentsPerConsignment"].as_f64(), Some(11.0 / 6.0));
    assert_eq!(formalities["amendmentsPerConsignment"].as_f64(), Some(1.0 / 6.0));
    assert_eq!(formalities["queriesPerConsignment"].as_f64(), Some(1.0 / 6.0));
    assert_eq!(formalities["resubmittedShare"].as_f64(), Some(1.0 / 6.0));
    // Art. 10.4: the five released were each submitted once; the cars are not decided.
    assert_eq!((&region["singleWindow"]["decided"], &region["singleWindow"]["share"]), (&json!(5), &json!(1.0)));
    // Art. 7.4, against the consignments' own views: each agency's parts, and the share its
    // selection sent to red.
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for n in (11..=15).map(|n| format!("5AR30714255831-I{n:04}")).chain([cars["ucr"].as_str().unwrap().to_owned()]) {
        let view: Value = app.get(&format!("/v1/consignments/{n}"), Some("demo-operator")).await.json().await.unwrap();
        let mut strictest: std::collections::BTreeMap<String, u8> = Default::default();
        for delivery in view["documents"].as_array().unwrap().iter().flat_map(|d| d["deliveries"].as_array().unwrap()) {
            let rank = match delivery["selection"]["channel"].as_str() {
                Some("red") => 3,
                Some("yellow") => 2,
                _ => 1,
            };
            let at = strictest.entry(delivery["agency"].as_str().unwrap().to_owned()).or_default();
            *at = (*at).max(rank);
        }
        for (agency, rank) in strictest {
            let counts = expected.entry(agency).or_default();
            counts.0 += 1;
            counts.1 += u64::from(rank == 3);
        }
    }
    let agencies = region["riskManagement"]["agencies"].as_array().unwrap();
    let measured: std::collections::BTreeMap<String, (u64, u64)> = agencies
        .iter()
        .map(|a| {
            let parts = a["parts"].as_u64().unwrap();
            let red = (a["physicalShare"].as_f64().unwrap() * parts as f64).round() as u64;
            (a["agency"].as_str().unwrap().to_owned(), (parts, red))
        })
        .collect();
    assert_eq!(measured, expected, "{tfa:#}");
    assert_eq!(region["riskManagement"]["parts"].as_u64(), Some(expected.values().map(|c| c.0).sum()));

    assert_eq!((&tfa["scope"], tfa["articles"].as_array().unwrap().len()), (&json!("region"), 7));

    // A national single window reads its country's: the consignments into it.
    let br = figures(&app, "/v1/indicators/tfa", Some("demo-nsw-br")).await;
    assert_eq!(br["scope"], "country:BR");
    let br_groups: Vec<&str> = br["current"]["groups"].as_array().unwrap().iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert_eq!(br_groups, ["BR"], "{br:#}");
    let (mine, operators) = (&br["current"]["region"], &tfa["current"]["groups"][0]["articles"]);
    for article in ["consignments", "preArrival", "releaseTime", "expedited", "formalities", "singleWindow"] {
        assert_eq!(mine[article], operators[article], "{article}: Brazil's figures, as the operator reads them");
    }
    // With Brazil's agencies' parts only: Argentina's export customs' selection is Argentina's.
    let br_agencies: Vec<&str> = mine["riskManagement"]["agencies"].as_array().unwrap().iter().map(|a| a["agency"].as_str().unwrap()).collect();
    assert!(!br_agencies.is_empty() && br_agencies.iter().all(|a| a.starts_with("br-")), "{br_agencies:?}");
    let br_parts: u64 = operators["riskManagement"]["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["agency"].as_str().unwrap().starts_with("br-"))
        .map(|a| a["parts"].as_u64().unwrap())
        .sum();
    assert!(br_parts < operators["riskManagement"]["parts"].as_u64().unwrap(), "Argentina's agencies have parts too");
    assert_eq!(mine["riskManagement"]["parts"].as_u64(), Some(br_parts));
    let ar = figures(&app, "/v1/indicators/tfa", Some("demo-nsw-ar")).await;
    assert_eq!((&ar["scope"], &ar["current"]["region"]["consignments"]), (&json!("country:AR"), &json!(0)), "nothing goes into Argentina");
    // An agency reads its own parts: Art. 7.4 of its decisions, none of the other agencies'.
    let agency = figures(&app, "/v1/indicators/tfa", Some("demo-br-customs")).await;
    assert_eq!((&agency["scope"], &agency["articles"]), (&json!("agency:br-customs"), &json!(["7.1", "7.4", "7.6", "7.8"])));
    let own = &agency["current"]["region"];
    let own_agencies: Vec<&str> = own["riskManagement"]["agencies"].as_array().unwrap().iter().map(|a| a["agency"].as_str().unwrap()).collect();
    assert_eq!(own_agencies, ["br-customs"], "{agency:#}");
    assert_eq!(own["riskManagement"]["parts"].as_u64(), Some(expected["br-customs"].0));
    assert_eq!(own["consignments"].as_u64(), Some(expected["br-customs"].0), "the consignments it has a part in");
    // No Art. 8 nor 10: the monitor's counts over its consignments (their documents, their
    // decisions) are left empty, the medians too.
    assert!(operators["formalities"]["consignments"].as_u64().unwrap() > 0 && operators["singleWindow"]["decided"].as_u64().unwrap() > 0);
    for (article, count) in [("agencySpread", "count"), ("formalities", "consignments"), ("singleWindow", "decided"), ("jointInspections", "inspectedBySeveral")] {
        assert_eq!(own[article][count], 0, "{article}: {agency:#}");
    }
    assert_eq!(own["formalities"].get("documentsPerConsignment"), None);
    let median = &agency["current"]["regionMedian"];
    assert!(median.get("documentsPerConsignment").is_none() && median.get("singleWindowShare").is_none(), "{median:#}");
    assert!(median.get("physicalInspectionShare").is_some(), "Art. 7.4's median is its own: {median:#}");
    // A trader or a platform reads no monitor (its own consignments are the release times').
    for token in ["demo-trader", "demo-platform"] {
        crate::helpers::assert_problem(app.get("/v1/indicators/tfa", Some(token)).await, 403, "forbidden").await;
    }
    let by_post = figures(&app, "/v1/indicators/tfa?groupBy=borderPost", Some("demo-operator")).await;
    let posts: Vec<&str> = by_post["current"]["groups"].as_array().unwrap().iter().map(|g| g["group"].as_str().unwrap()).collect();
    assert_eq!(posts, ["BRURG", "unknown"], "the cars to Uruguay name no border post");
    assert_eq!(by_post["current"]["regionMedian"]["releaseTimeMeanMs"], region["releaseTime"]["meanMs"], "the unknown post is no post of the median");
    // Expedited types are the caller's to name; a grouping the monitor has not is refused.
    let named = figures(&app, "/v1/indicators/tfa?expeditedTypes=customsDeclaration", Some("demo-operator")).await;
    assert_eq!(named["current"]["region"]["expedited"]["expedited"]["count"], 5);
    assert_eq!(app.get("/v1/indicators/tfa?groupBy=agency", Some("demo-operator")).await.status(), 400);
    app.stop().await;
}

/// The TFA monitor's public view: a settled month and the month before, by country and by
/// border post, suppressed as the public release times are, each cell's figure as the operator's
/// monitor gives it where nothing was left to close.
#[tokio::test]
async fn the_public_tfa_monitor_publishes_a_settled_month_suppressed_with_the_month_before() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let (from, to, month) = published_month();
    let (y, m) = ventanilla::clock::year_month(from);
    let before = if m == 1 { ventanilla::clock::month_start(y - 1, 12) } else { ventanilla::clock::month_start(y, m - 1) };
    // Two months of thin traffic from a dozen traders: countries and border posts with few
    // consignments.
    let days = ((to - before) / 86_400_000).to_string();
    let end = ventanilla::clock::rfc3339(to);
    simulate(data.path(), &["--consignments", "80", "--seed", "17", "--days", &days, "--end", &end, "--traders", "12"]).await;
    let prefix = format!("t{}.", uuid::Uuid::now_v7().simple());
    let app = spawn_app_on(data, prefix, Some(test_brokers()), |_| {}).await;

    let r = app.get(&format!("/v1/public/indicators/tfa?month={month}"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-status"], "ventanilla; fwd=miss; stored");
    let by_country: Value = r.json().await.unwrap();
    let r = app.get(&format!("/v1/public/indicators/tfa?month={month}&groupBy=borderPost"), None).await;
    assert!(r.headers()["cache-status"].to_str().unwrap().starts_with("ventanilla; hit"), "one computation for both groupings");
    let by_post: Value = r.json().await.unwrap();
    assert_eq!((by_country["month"].as_str().unwrap(), by_country["previousMonth"].as_str().unwrap()), (month.as_str(), &ventanilla::clock::rfc3339(before)[..7]));
    let links: Vec<&str> = by_country["links"].as_array().unwrap().iter().map(|l| l["href"].as_str().unwrap()).collect();
    assert!(links.iter().all(|l| l.starts_with("/v1/public/indicators/release-times?") && l.ends_with(&format!("&month={month}"))), "{links:?}");

    let operator: Value = app
        .get(&format!("/v1/indicators/tfa?from={}&to={}", ventanilla::clock::rfc3339(from), ventanilla::clock::rfc3339(to)), Some("demo-operator"))
        .await
        .json()
        .await
        .unwrap();
    let mut suppressed_somewhere = 0;
    for answer in [&by_country, &by_post] {
        assert_eq!(answer["indicators"].as_array().unwrap().len(), 12);
        assert!(answer["indicators"].as_array().unwrap().iter().all(|i| i["key"] != "hitRate"), "no hit rate: findings come after release");
        for indicator in answer["indicators"].as_array().unwrap() {
            let key = indicator["key"].as_str().unwrap();
            for period in ["current", "previous"] {
                let p = &indicator[period];
                let cells = p["groups"].as_array().unwrap();
                let hidden = cells.iter().filter(|c| c["suppressed"] == true).count();
                suppressed_somewhere += hidden;
                assert_ne!(hidden, 1, "{key} {period}: one suppressed cell is the region minus the others: {p:#}");
                for c in cells.iter().chain([&p["region"]]) {
                    match c["suppressed"].as_bool().unwrap() {
                        true => assert!(c.get("count").is_none() && c.get("value").is_none(), "{key}: {c:#}"),
                        false => assert!(c["count"].as_u64().unwrap() >= 5, "{key}: {c:#}"),
                    }
                }
                // The region's median is of the groups shown, `unknown` left out.
                let mut shown: Vec<f64> =
                    cells.iter().filter(|c| c["group"] != "unknown").filter_map(|c| c["value"].as_f64()).collect();
                shown.sort_by(f64::total_cmp);
                let median = match shown.len() {
                    0 => None,
                    n if n % 2 == 1 => Some(shown[n / 2]),
                    n => Some((shown[n / 2 - 1] + shown[n / 2]) / 2.0),
                };
                assert_eq!((p["regionMedian"].as_f64(), p["groupsInMedian"].as_u64()), (median, Some(shown.len() as u64)), "{key}");
            }
        }
    }
    assert!(suppressed_somewhere > 0, "traffic this thin has cells to suppress: {by_post:#}");
    let indicator = |key: &str| by_country["indicators"].as_array().unwrap().iter().find(|i| i["key"] == key).unwrap().clone();
    // The consignments released by the month's close are those the operator's monitor counts as
    // released (the simulated consignments were decided within days of their lodgement): Art.
    // 7.1 over those whose arrival is known, as its Art. 7.6.
    let region = &operator["current"]["region"];
    let pre = &indicator("preArrivalShare")["current"]["region"];
    assert_eq!(pre["count"], region["releaseTime"]["count"], "{operator:#}");
    // Art. 10 over the consignments released by the close: those the operator's Art. 7.8 counts
    // (each released consignment is expedited or not).
    let released = region["expedited"]["expedited"]["count"].as_u64().unwrap() + region["expedited"]["others"]["count"].as_u64().unwrap();
    let documents = &indicator("documentsPerConsignment")["current"]["region"];
    assert_eq!(documents["count"].as_u64(), Some(released), "{operator:#}");
    assert!(released < region["consignments"].as_u64().unwrap(), "some were refused or not released: left out");
    assert!(indicator("preArrivalShare")["previous"]["region"]["count"].as_u64().unwrap() > 0, "the month before, published alike");

    // Published groupings only, settled months only.
    assert_problem(app.get(&format!("/v1/public/indicators/tfa?month={month}&groupBy=transportMode"), None).await, 404, "not-found").await;
    assert_problem(app.get("/v1/public/indicators/tfa?groupBy=agency", None).await, 400, "invalid-query").await;
    let this_month = &ventanilla::clock::rfc3339(ventanilla::clock::now_millis())[..7];
    assert_problem(app.get(&format!("/v1/public/indicators/tfa?month={this_month}"), None).await, 404, "not-found").await;
    assert_problem(app.get("/v1/public/indicators/tfa?from=2026-01-01", None).await, 400, "invalid-query").await;
    app.stop().await;
}
