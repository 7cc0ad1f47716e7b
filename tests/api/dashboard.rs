//! The dashboard in a real browser: headless Chromium (Debian's) opens `/dashboard` on a
//! gateway over a month of simulated traffic, the page's figures are read from its DOM and
//! checked against the API's, and a screenshot is taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{repo, spawn_app_on, test_brokers};

/// Headless Chromium on `url`: its DOM after the page's scripts ran, or a screenshot to `png`.
fn chromium(url: &str, png: Option<&std::path::Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new("chromium");
    // Without the network flags Chromium tries to reach Google's hosts, which this machine's
    // closed network refuses; without --no-sandbox it cannot start as root.
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=30000"])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    match png {
        Some(path) => c.args(["--window-size=1280,1900"]).arg(format!("--screenshot={}", path.display())),
        None => c.arg("--dump-dom"),
    };
    let out = c.arg(url).output().expect("chromium runs (scripts/test.sh installs Debian's chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `attr="value"` of the element that holds `anchor` (one tag's attributes).
fn attributes_with<'a>(dom: &'a str, anchor: &str) -> Vec<BTreeMap<&'a str, String>> {
    dom.match_indices(anchor)
        .map(|(at, _)| {
            let start = dom[..at].rfind('<').unwrap();
            let end = at + dom[at..].find('>').unwrap();
            let tag = &dom[start..end];
            tag.split('"')
                .collect::<Vec<_>>()
                .chunks(2)
                .filter_map(|kv| {
                    let key = kv[0].rsplit([' ', '\n']).next()?.trim_end_matches('=');
                    Some((key, kv.get(1)?.replace("&quot;", "\"")))
                })
                .collect()
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[tokio::test]
async fn the_dashboard_shows_the_apis_figures_in_a_real_browser() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    crate::helpers::simulate(data.path(), &["--consignments", "400", "--seed", "5"]).await;
    let app = spawn_app_on(data, format!("t{}.", uuid::Uuid::now_v7().simple()), Some(test_brokers()), |_| {}).await;
    // Beef declarations, whose sanitary documents a shipped rule sends to yellow: the sanitary
    // agency reports what it found, every agency releases.
    for i in 0..10 {
        let mut d = crate::helpers::example("customsDeclaration/valid/export-beef-road-AR-BR.json");
        d["ucr"] = serde_json::json!(format!("DASH-{i}-{}", uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase()));
        let receipt: Value = app.submit(&d).await.json().await.unwrap();
        for delivery in receipt["deliveries"].as_array().unwrap_or_else(|| panic!("accepted: {receipt}")) {
            let agency = delivery["agency"].as_str().unwrap();
            let mut ack = serde_json::json!({"documentId": receipt["documentId"], "agency": agency, "status": "released"});
            if agency == "br-sanitary" {
                ack["inspection"] = serde_json::json!({"performed": true, "finding": if i % 3 == 0 { "irregularity" } else { "none" }});
            }
            let r = app.post_json("/v1/acknowledgments", Some(&format!("demo-{agency}")), &ack.to_string()).await;
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    }

    let url = format!("{}/dashboard#token=demo-operator", app.address);
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || chromium(&url, None)
    })
    .await
    .unwrap();
    let body = attributes_with(&dom, "data-ready=");
    assert_eq!(body.len(), 1, "the page loaded its figures: {}", &dom[..dom.len().min(3000)]);
    let params: Value = serde_json::from_str(&body[0]["data-ready"]).unwrap();

    // Each segment's figures, as the page shows them, are the API's.
    let query = format!(
        "from={}&to={}&interval={}&groupBy={}",
        params["from"].as_str().unwrap(),
        params["to"].as_str().unwrap(),
        params["interval"].as_str().unwrap(),
        params["groupBy"].as_str().unwrap()
    );
    let api: Value = app.get(&format!("/v1/indicators/release-times?{query}"), Some("demo-operator")).await.json().await.unwrap();
    let shown = attributes_with(&dom, "data-figure=");
    let mut compared = 0;
    for group in api["groups"].as_array().unwrap() {
        let name = group["group"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect::<Vec<_>>().join(" / ");
        for figure in ["count", "meanMs", "medianMs", "p90Ms", "modeMs", "minMs", "maxMs"] {
            let cell = shown.iter().find(|a| a.get("data-group") == Some(&name) && a.get("data-figure").map(String::as_str) == Some(figure));
            let cell = cell.unwrap_or_else(|| panic!("the page shows {figure} of {name}"));
            let on_page: f64 = cell["data-ms"].parse().unwrap();
            assert!(close(on_page, group[figure].as_f64().unwrap()), "{name} {figure}: page {on_page}, API {}", group[figure]);
            compared += 1;
        }
    }
    assert!(compared >= 7 * 6, "every agency's figures were compared ({compared})");
    // The slowest intervals, each the API's overall mean for that interval.
    for shown in shown.iter().filter(|a| a.contains_key("data-interval")) {
        let interval = &shown["data-interval"];
        let q = format!("from={}&to={}&interval={interval}", params["from"].as_str().unwrap(), params["to"].as_str().unwrap());
        let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
        assert!(close(shown["data-ms"].parse().unwrap(), api["overall"]["meanMs"].as_f64().unwrap()), "{interval}");
    }

    // Release time by risk channel: the API's figures grouped by it.
    let q = format!(
        "from={}&to={}&interval={}&groupBy=riskChannel",
        params["from"].as_str().unwrap(),
        params["to"].as_str().unwrap(),
        params["interval"].as_str().unwrap()
    );
    let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
    let channels: Vec<&str> = api["groups"].as_array().unwrap().iter().map(|g| g["group"]["riskChannel"].as_str().unwrap()).collect();
    assert!(channels.contains(&"yellow") && channels.contains(&"unselected"), "{channels:?}");
    for group in api["groups"].as_array().unwrap() {
        let channel = group["group"]["riskChannel"].as_str().unwrap();
        for figure in ["count", "meanMs", "medianMs"] {
            let cell = shown.iter().find(|a| a.get("data-channel").map(String::as_str) == Some(channel) && a.get("data-figure").map(String::as_str) == Some(figure));
            let cell = cell.unwrap_or_else(|| panic!("the page shows {figure} of the {channel} channel"));
            assert!(close(cell["data-ms"].parse().unwrap(), group[figure].as_f64().unwrap()), "{channel} {figure}");
        }
    }
    // Hit rates by source, each the API's: the sanitary agency's mandatory selections here.
    let performance: Value = app
        .get(&format!("/v1/risk/performance?from={}&to={}", params["from"].as_str().unwrap(), params["to"].as_str().unwrap()), Some("demo-operator"))
        .await
        .json()
        .await
        .unwrap();
    let rates = attributes_with(&dom, "data-hit-rate=");
    let mut hit_rates = 0;
    for agency in performance["agencies"].as_array().unwrap() {
        for source in agency["bySource"].as_array().unwrap().iter().filter(|s| s["hitRate"].is_number()) {
            let cell = rates.iter().find(|a| a.get("data-agency") == agency["agency"].as_str().map(str::to_owned).as_ref()
                && a.get("data-source") == source["source"].as_str().map(str::to_owned).as_ref());
            let cell = cell.unwrap_or_else(|| panic!("the page shows the hit rate of {} by {}", agency["agency"], source["source"]));
            assert!(close(cell["data-hit-rate"].parse().unwrap(), source["hitRate"].as_f64().unwrap()));
            hit_rates += 1;
        }
    }
    assert!(hit_rates >= 1, "the sanitary agency's mandatory inspections found something: {performance:#}");
    assert!(rates.iter().any(|a| a.get("data-agency").map(String::as_str) == Some("br-sanitary") && a.get("data-source").map(String::as_str) == Some("mandatory")
        && close(a["data-hit-rate"].parse().unwrap(), 0.4)), "4 of 10 irregular: {rates:?}");

    // Without a token: the public figures, of the latest published month.
    let public = tokio::task::spawn_blocking({
        let url = format!("{}/dashboard", app.address);
        move || chromium(&url, None)
    })
    .await
    .unwrap();
    let ready = attributes_with(&public, "data-ready=");
    assert_eq!(ready.len(), 1, "the public page loaded its figures: {}", &public[..public.len().min(3000)]);
    assert!(ready[0]["data-ready"].contains("\"month\""), "{:?}", ready[0]);
    assert!(public.contains("Public figures of "), "the method names the month");

    // A screenshot, as docs/release-times.md shows it.
    let png = repo().join("target/tmp/dashboard.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&png);
    tokio::task::spawn_blocking({
        let png = png.clone();
        move || chromium(&url, Some(&png))
    })
    .await
    .unwrap();
    let bytes = std::fs::read(&png).expect("a screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 30_000, "a PNG of the rendered page ({} bytes)", bytes.len());
    app.stop().await;
}
