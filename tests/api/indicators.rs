//! The release-time indicators over HTTP: each participant's scope, the public figures with
//! small cells suppressed, and figures that agree with the consignments' own views.

use serde_json::{json, Value};

use crate::helpers::{assert_problem, example, spawn_app, spawn_app_configured, test_brokers, TestApp};

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

    // The public: no identity, and cells below 5 consignments suppressed.
    let public = figures(&app, "/v1/public/indicators/release-times?interval=lodgement-to-release", None).await;
    assert_eq!(public["overall"]["suppressed"], true, "{public:#}");
    assert!(public["overall"].get("count").is_none() && public["overall"].get("meanMs").is_none());
    assert_eq!(public["minCount"], 5);

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
    let app = spawn_app_configured(Some(test_brokers()), |s| s.region.indicators.public_min_count = 1).await;
    let view = released_consignment(&app, 3).await;
    let public = figures(&app, "/v1/public/indicators/release-times?interval=lodgement-to-release&groupBy=corridor", None).await;
    assert_eq!(public["groups"][0]["count"], 1, "{public:#}");
    assert_eq!(public["groups"][0]["meanMs"].as_f64(), view["timeRelease"]["submissionToReleaseMs"].as_f64());
    app.stop().await;
}
