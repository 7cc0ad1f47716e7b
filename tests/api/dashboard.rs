//! The dashboard in a real browser: headless Chromium (Debian's) opens `/dashboard` on a
//! gateway over a month of simulated traffic, the page's figures are read from its DOM and
//! checked against the API's, its labels against what each interval counts, and a screenshot
//! is taken; then the TFA monitor's page beside it (`/dashboard/tfa`), each value against the
//! monitor's API. Every DOM read is of a page that marked its figures drawn (issue 31: a screenshot
//! showed it still loading).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{repo, spawn_app_on, test_brokers};

/// Headless Chromium on `url`: its DOM after the page's scripts ran and, with `png`, a
/// screenshot of that same load. Headless Chromium's --dump-dom and --screenshot do not wait
/// for the page's fetches by themselves: --virtual-time-budget has it run the page's timers and
/// network (virtual time stands still while a fetch is pending) until the budget is spent, and
/// the DOM and the screenshot are taken then, so the DOM tells what the screenshot shows.
fn chromium(url: &str, png: Option<&std::path::Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new("chromium");
    // Without the network flags Chromium tries to reach Google's hosts, which this machine's
    // closed network refuses; without --no-sandbox it cannot start as root.
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=30000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    if let Some(path) = png {
        c.args(["--window-size=1280,1900"]).arg(format!("--screenshot={}", path.display()));
    }
    let out = c.arg(url).output().expect("chromium runs (scripts/test.sh installs Debian's chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page at `url` once it marked its figures drawn (`data-ready="true"` on its body): its
/// DOM, and the filters it shows (`data-params`); a screenshot of it to `png` when asked. Fails
/// on a page that could not read its figures, or one still loading: no ready mark, its title or
/// status still saying so.
async fn open(url: String, png: Option<std::path::PathBuf>) -> (String, Value) {
    open_page(url, png, "Ventanilla: release-time indicators: ").await
}

/// [`open`] for a page whose title, once drawn, begins with `title`.
async fn open_page(url: String, png: Option<std::path::PathBuf>, title: &str) -> (String, Value) {
    let dom = tokio::task::spawn_blocking(move || chromium(&url, png.as_deref())).await.unwrap();
    let head = &dom[..dom.len().min(3000)];
    let failed = attributes_with(&dom, "data-failed=");
    assert!(failed.is_empty(), "the page could not read its figures: {:?}", failed[0]["data-failed"]);
    let body = attributes_with(&dom, "data-ready=");
    assert_eq!(body.len(), 1, "the page marked its figures drawn: {head}");
    assert_eq!(body[0]["data-ready"], "true", "{head}");
    let params: Value = serde_json::from_str(&body[0]["data-params"]).unwrap();
    assert!(!dom.to_lowercase().contains("loading"), "nothing still says loading: {head}");
    assert!(dom.contains(&format!("<title>{title}")), "the title names what is shown: {head}");
    (dom, params)
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

/// The text of each element that holds `anchor` in its tag, up to its first child tag.
fn texts_with<'a>(dom: &'a str, anchor: &str) -> Vec<&'a str> {
    dom.match_indices(anchor)
        .map(|(at, _)| {
            let start = at + dom[at..].find('>').unwrap() + 1;
            let end = start + dom[start..].find('<').unwrap();
            &dom[start..end]
        })
        .collect()
}

/// The page's label `name` (`data-label`): what a figure is, or what a count counts.
fn labels<'a>(dom: &'a str, name: &str) -> Vec<&'a str> {
    texts_with(dom, &format!("data-label=\"{name}\""))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

/// `from=...&to=...` of the period the page showed.
fn period_of(params: &Value) -> String {
    format!("from={}&to={}", params["from"].as_str().unwrap(), params["to"].as_str().unwrap())
}

/// Checks each segment's figures, as the page shows them, against the API's answer `api`: how
/// many were compared.
fn compare_groups(dom: &str, api: &Value) -> usize {
    let shown = attributes_with(dom, "data-figure=");
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
    compared
}

/// Checks the overall figures the page shows (`data-overall`) against the API's answer with no
/// segment, `api`.
fn compare_overall(dom: &str, api: &Value) {
    let overall = attributes_with(dom, "data-overall=");
    for figure in ["count", "meanMs", "medianMs", "p90Ms"] {
        let cell = overall.iter().find(|a| a.get("data-overall").map(String::as_str) == Some(figure));
        let cell = cell.unwrap_or_else(|| panic!("the page shows the overall {figure}"));
        let on_page: f64 = cell["data-ms"].parse().unwrap();
        assert!(close(on_page, api["overall"][figure].as_f64().unwrap()), "overall {figure}: page {on_page}, API {}", api["overall"][figure]);
    }
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

    // By default: the consignment's release time from arrival (the TRS figure, the API's default
    // interval), its mean labelled as WTO TFA Art. 7.6's, its counts of consignments.
    let (dom, params) = open(format!("{}/dashboard#token=demo-operator", app.address), None).await;
    assert_eq!(params["interval"], "arrival-to-release", "{params}");
    assert_eq!(labels(&dom, "overall-meanMs"), ["mean release time (TFA Art. 7.6)"]);
    assert_eq!(labels(&dom, "overall-count"), ["consignments released"]);
    assert_eq!(labels(&dom, "groups-count"), ["consignments released"]);
    assert_eq!(labels(&dom, "channels-count"), ["consignments released"]);
    // The overall figures count each consignment once: the answer with no segment's, not the
    // one by agency's (there a consignment counts once per agency it went to).
    let q = format!("{}&interval=arrival-to-release", period_of(&params));
    let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
    compare_overall(&dom, &api);
    let by_agency: Value =
        app.get(&format!("/v1/indicators/release-times?{q}&groupBy=agency"), Some("demo-operator")).await.json().await.unwrap();
    let consignments = api["overall"]["count"].as_u64().unwrap();
    assert!(consignments > 0 && by_agency["overall"]["count"].as_u64().unwrap() > consignments, "{} by agency", api["overall"]);
    // Each segment's figures, as the page shows them, are the API's.
    let q = format!("{}&interval=arrival-to-release&groupBy={}", period_of(&params), params["groupBy"].as_str().unwrap());
    let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
    let segments = api["groups"].as_array().unwrap().len();
    assert!(segments >= 2, "segments by {}: {api:#}", params["groupBy"]);
    assert_eq!(compare_groups(&dom, &api), 7 * segments, "every segment's figures were compared");

    // Agencies' decisions, chosen in the fragment: counted as decisions (one per agency and
    // consignment), their mean not Art. 7.6's.
    let (dom, params) =
        open(format!("{}/dashboard#token=demo-operator&interval=agency-decision&groupBy=agency", app.address), None).await;
    assert_eq!((params["interval"].as_str(), params["groupBy"].as_str()), (Some("agency-decision"), Some("agency")), "{params}");
    assert_eq!(labels(&dom, "overall-meanMs"), ["mean"]);
    assert_eq!(labels(&dom, "overall-count"), ["agency decisions"]);
    assert_eq!(labels(&dom, "groups-count"), ["agency decisions"]);
    assert_eq!(labels(&dom, "channels-count"), ["agency decisions"]);
    assert!(!dom.contains("Art. 7.6"), "Art. 7.6's figure is the consignment's release time, not an agency's decision");
    assert!(!dom.contains(">consignments<"), "no count is labelled bare consignments");
    // The slowest intervals say what each count counts.
    assert_eq!(texts_with(&dom, "data-counted=\"agency-decision\""), ["agency decisions"]);
    assert_eq!(texts_with(&dom, "data-counted=\"agency-first-answer\""), ["agency first answers"]);
    assert_eq!(texts_with(&dom, "data-counted=\"arrival-to-release\""), ["consignments released"]);
    assert_eq!(texts_with(&dom, "data-counted=\"lodgement-to-release\""), ["consignments released"]);
    let q = format!("{}&interval=agency-decision", period_of(&params));
    let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
    compare_overall(&dom, &api);

    // Each agency's figures, as the page shows them, are the API's.
    let query = format!(
        "{}&interval={}&groupBy={}",
        period_of(&params),
        params["interval"].as_str().unwrap(),
        params["groupBy"].as_str().unwrap()
    );
    let api: Value = app.get(&format!("/v1/indicators/release-times?{query}"), Some("demo-operator")).await.json().await.unwrap();
    let compared = compare_groups(&dom, &api);
    assert!(compared >= 7 * 6, "every agency's figures were compared ({compared})");
    let shown = attributes_with(&dom, "data-figure=");
    // The slowest intervals, each the API's overall mean for that interval.
    let mut intervals = 0;
    for shown in shown.iter().filter(|a| a.contains_key("data-interval")) {
        let interval = &shown["data-interval"];
        let q = format!("{}&interval={interval}", period_of(&params));
        let api: Value = app.get(&format!("/v1/indicators/release-times?{q}"), Some("demo-operator")).await.json().await.unwrap();
        assert!(close(shown["data-ms"].parse().unwrap(), api["overall"]["meanMs"].as_f64().unwrap()), "{interval}");
        intervals += 1;
    }
    assert!(intervals >= 5, "the slowest intervals were compared ({intervals})");

    // The interval by risk channel: the API's figures grouped by it.
    let q = format!("{}&interval={}&groupBy=riskChannel", period_of(&params), params["interval"].as_str().unwrap());
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
    let performance: Value =
        app.get(&format!("/v1/risk/performance?{}", period_of(&params)), Some("demo-operator")).await.json().await.unwrap();
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

    // Without a token: the public figures, of the latest published month. They group a
    // consignment's own intervals by no agency: those segments are not offered for it.
    let (public, params) = open(format!("{}/dashboard", app.address), None).await;
    assert!(params["month"].is_string(), "{params}");
    assert_eq!(params["interval"], "arrival-to-release", "{params}");
    assert_eq!(labels(&public, "overall-meanMs"), ["mean release time (TFA Art. 7.6)"]);
    assert_eq!(labels(&public, "overall-count"), ["consignments released"]);
    assert!(public.contains("<option value=\"agency\" disabled=\"\">"), "no public figures by agency of a release time");
    assert!(public.contains("Public figures of "), "the method names the month");

    // A screenshot, as docs/release-times.md shows it, of a page that marked its figures drawn.
    let png = repo().join("target/tmp/dashboard.png");
    std::fs::create_dir_all(png.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&png);
    let (_, params) = open(format!("{}/dashboard#token=demo-operator", app.address), Some(png.clone())).await;
    assert_eq!(params["interval"], "arrival-to-release", "{params}");
    let bytes = std::fs::read(&png).expect("a screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 30_000, "a PNG of the rendered page ({} bytes)", bytes.len());

    // The TFA monitor's page beside the release times, by importing country: each value it
    // shows, for the region, each country, the countries' median and the period before, is the
    // monitor's API's; and none the API does not give.
    let (dom, params) = open_page(format!("{}/dashboard/tfa#token=demo-operator", app.address), None, "Ventanilla: TFA monitor: by importing country").await;
    assert_eq!(params["groupBy"], "country", "{params}");
    let api: Value =
        app.get(&format!("/v1/indicators/tfa?{}&groupBy=country", period_of(&params)), Some("demo-operator")).await.json().await.unwrap();
    let shown = attributes_with(&dom, "data-value=");
    let pointers = [
        ("pre-arrival-share", "/preArrival/share"),
        ("pre-arrival-lead-median", "/preArrival/leadTime/medianMs"),
        ("physical-inspection-share", "/riskManagement/physicalShare"),
        ("documentary-check-share", "/riskManagement/documentaryShare"),
        ("standing-instruction-share", "/riskManagement/standingInstructionShare"),
        ("release-time-mean", "/releaseTime/meanMs"),
        ("release-time-median", "/releaseTime/medianMs"),
        ("expedited-median", "/expedited/expedited/medianMs"),
        ("others-median", "/expedited/others/medianMs"),
        ("expedited-ratio", "/expedited/medianRatio"),
        ("agency-spread-median", "/agencySpread/medianMs"),
        ("joint-inspection-share", "/jointInspections/share"),
        ("documents-per-consignment", "/formalities/documentsPerConsignment"),
        ("amendments-per-consignment", "/formalities/amendmentsPerConsignment"),
        ("queries-per-consignment", "/formalities/queriesPerConsignment"),
        ("hit-rate", "/hitRate"),
        ("resubmitted-share", "/formalities/resubmittedShare"),
        ("submitted-once-share", "/singleWindow/share"),
    ];
    // The hit rate of all sources, as the page sums it from the API's sources.
    let with_hit_rate = |articles: &Value| {
        let mut a = articles.clone();
        let sources = articles["riskManagement"]["bySource"].as_array().unwrap();
        let (findings, irregular) = sources.iter().fold((0, 0), |(f, i), s| (f + s["findings"].as_u64().unwrap(), i + s["irregularities"].as_u64().unwrap()));
        if findings > 0 {
            a["hitRate"] = serde_json::json!(irregular as f64 / findings as f64);
        }
        a
    };
    let mut columns = vec![("region".to_owned(), with_hit_rate(&api["current"]["region"])), ("previous".to_owned(), with_hit_rate(&api["previous"]["region"]))];
    for g in api["current"]["groups"].as_array().unwrap() {
        columns.push((g["group"].as_str().unwrap().to_owned(), with_hit_rate(&g["articles"])));
        let headers = labels(&dom, &format!("group-{}", g["group"].as_str().unwrap()));
        let counted = format!("{} ({})", g["group"].as_str().unwrap(), g["articles"]["consignments"]);
        assert_eq!(headers, vec![counted.as_str(); 7], "each country says what it counts, in each article's table");
    }
    assert!(columns.len() >= 4, "the region, the period before and two countries or more: {api:#}");
    let mut compared = 0;
    for (group, articles) in &columns {
        for (key, pointer) in pointers {
            let cell = shown.iter().find(|a| a.get("data-group") == Some(group) && a.get("data-key").map(String::as_str) == Some(key));
            match (articles.pointer(pointer).and_then(Value::as_f64), cell) {
                (Some(expected), Some(cell)) => {
                    assert!(close(cell["data-value"].parse().unwrap(), expected), "{group} {key}: page {}, API {expected}", cell["data-value"]);
                    compared += 1;
                }
                (None, None) => {}
                (expected, cell) => panic!("{group} {key}: API {expected:?}, page {cell:?}"),
            }
        }
    }
    assert!(compared >= 8 * columns.len(), "the values were compared ({compared})");
    assert!(shown.iter().any(|a| a.get("data-key").map(String::as_str) == Some("hit-rate")), "the sanitary agency's findings give a hit rate");
    let medians = shown.iter().filter(|a| a.get("data-group").map(String::as_str) == Some("median"));
    let mut compared_medians = 0;
    for cell in medians {
        let name = match cell["data-key"].as_str() {
            "release-time-mean" => "releaseTimeMeanMs",
            "pre-arrival-share" => "preArrivalShare",
            "documents-per-consignment" => "documentsPerConsignment",
            "physical-inspection-share" => "physicalInspectionShare",
            _ => continue,
        };
        assert!(close(cell["data-value"].parse().unwrap(), api["current"]["regionMedian"][name].as_f64().unwrap()), "{name}");
        compared_medians += 1;
    }
    assert_eq!(compared_medians, 4, "the countries' medians");
    // In the Agreement's order.
    let articles: Vec<String> = attributes_with(&dom, "data-article=").into_iter().map(|a| a["data-article"].clone()).collect();
    assert_eq!(articles, ["7.1", "7.4", "7.6", "7.8", "8", "10.1", "10.4"]);
    // The sanitary agency's yellow selections of the beef: Art. 7.4 shows documentary checks.
    assert!(api["current"]["region"]["riskManagement"]["documentaryShare"].as_f64().unwrap() > 0.0, "{:#}", api["current"]["region"]["riskManagement"]);
    // Grouped by border post, chosen in the fragment.
    let (_, params) = open_page(format!("{}/dashboard/tfa#token=demo-operator&groupBy=borderPost", app.address), None, "Ventanilla: TFA monitor: by border post").await;
    assert_eq!(params["groupBy"], "borderPost");
    app.stop().await;
}
