//! `ventanilla simulate` writes a month of consignments with known delays; the release-time
//! indicators, read through a gateway over that store, recover the delays' means and medians.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{published_month, simulate_into, spawn_app_on, test_brokers};

#[tokio::test]
async fn the_indicators_recover_the_simulated_delays() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let written = crate::helpers::simulate(data.path(), &["--consignments", "3000", "--days", "30", "--seed", "11"]).await;
    assert_eq!(written["consignments"], 3000);

    let app = spawn_app_on(data, format!("t{}.", uuid::Uuid::now_v7().simple()), Some(test_brokers()), |_| {}).await;
    let from = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 31 * 86_400_000);
    let path = format!("/v1/indicators/release-times?interval=agency-decision&groupBy=agencyKind,transportMode&from={from}");
    let figures: Value = app.get(&path, Some("demo-operator")).await.json().await.unwrap();
    let mut checked = 0;
    for planned in written["plan"].as_array().unwrap() {
        let (kind, mode) = (planned["agencyKind"].as_str().unwrap(), planned["transportMode"].as_str().unwrap());
        if kind == "border" {
            continue; // border posts also answer the notice at arrival: not the plan's delay alone
        }
        let Some(cell) = figures["groups"].as_array().unwrap().iter().find(|g| g["group"]["agencyKind"] == kind && g["group"]["transportMode"] == mode)
        else {
            continue;
        };
        let n = cell["count"].as_f64().unwrap();
        if n < 150.0 {
            continue; // too few for the stated tolerance to mean anything
        }
        // Tolerance: three standard errors of the exponential part, (mean - min) / sqrt(n), for
        // the mean and (as the density at the median is half the rate) for the median too.
        let (min, mean, median) = (planned["minMs"].as_f64().unwrap(), planned["meanMs"].as_f64().unwrap(), planned["medianMs"].as_f64().unwrap());
        let tolerance = 3.0 * (mean - min) / n.sqrt();
        let (got_mean, got_median) = (cell["meanMs"].as_f64().unwrap(), cell["medianMs"].as_f64().unwrap());
        println!("{kind} {mode}: n={n} mean {got_mean:.0} (plan {mean}) median {got_median:.0} (plan {median}) tolerance {tolerance:.0}");
        assert!((got_mean - mean).abs() <= tolerance, "{kind} {mode}: mean {got_mean} vs {mean} (n={n}, tolerance {tolerance})");
        assert!((got_median - median).abs() <= tolerance, "{kind} {mode}: median {got_median} vs {median} (n={n}, tolerance {tolerance})");
        checked += 1;
    }
    assert!(checked >= 4, "at least four cells large enough to check: {figures:#}");

    // The segments the simulation spreads over all show: pre-arrival lodgement, holds, queries.
    let path = format!("/v1/indicators/release-times?interval=lodgement-to-release&groupBy=preArrival,channel&from={from}");
    let segments: Value = app.get(&path, Some("demo-operator")).await.json().await.unwrap();
    let groups: Vec<String> = segments["groups"].as_array().unwrap().iter().map(|g| g["group"].to_string()).collect();
    for needle in ["pre-arrival", "post-arrival", "with-hold", "with-query", "without"] {
        assert!(groups.iter().any(|g| g.contains(needle)), "{needle} in {groups:?}");
    }
    let path = format!("/v1/indicators/release-times?interval=arrival-to-lodgement&from={from}");
    let lodgement: Value = app.get(&path, Some("demo-operator")).await.json().await.unwrap();
    assert!(lodgement["overall"]["minMs"].as_i64().unwrap() < 0, "pre-arrival lodgement counts negative: {lodgement:#}");
    app.stop().await;
}

/// `ventanilla report release-times`: the Art. 7.6 publication, as CSV, HTML and PDF, with the
/// same figures the public API gives for the same calendar month.
#[tokio::test]
async fn the_published_report_gives_the_public_figures() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let run = |args: Vec<String>| crate::helpers::ventanilla_on(data.path(), args);
    let (start, end, month) = published_month();
    simulate_into(data.path(), 400, 3, start, end).await;
    let (from, to) = (ventanilla::clock::rfc3339(start)[..10].to_owned(), ventanilla::clock::rfc3339(end)[..10].to_owned());
    let report = |format: &str, out: Option<&std::path::Path>| {
        let mut args: Vec<String> = ["report", "release-times", "--from", &from, "--to", &to, "--format", format].map(String::from).to_vec();
        if let Some(out) = out {
            args.extend(["--out".to_owned(), out.display().to_string()]);
        }
        run(args)
    };
    let csv = report("csv", None).await;
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let overall: Vec<&str> = csv.lines().find(|l| l.starts_with("arrival-to-release,,all,")).expect("the Art. 7.6 figure").split(',').collect();
    assert_eq!(overall[3], "false");
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 11, "{line}");
        if cols[3] == "true" {
            assert!(cols[4..].iter().all(|c| c.is_empty()), "a suppressed cell shows no figure: {line}");
        }
    }

    // The same figure from the public API, through a gateway over the same store.
    let app = spawn_app_on(data.clone(), format!("t{}.", uuid::Uuid::now_v7().simple()), Some(test_brokers()), |_| {}).await;
    let public: Value = app.get(&format!("/v1/public/indicators/release-times?month={month}"), None).await.json().await.unwrap();
    let hours = |ms: &Value| format!("{:.2}", ms.as_f64().unwrap() / 3_600_000.0);
    assert_eq!(overall[4], public["overall"]["count"].to_string());
    assert_eq!(overall[5], hours(&public["overall"]["meanMs"]), "mean");
    assert_eq!(overall[6], hours(&public["overall"]["medianMs"]), "median");
    // Every segment of the report: suppressed, or shown with the same figures, as the API.
    for line in csv.lines().skip(1).filter(|l| !l.split(',').nth(1).unwrap().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let query = format!("month={month}&interval={}&groupBy={}", cols[0], cols[1]);
        let api: Value = app.get(&format!("/v1/public/indicators/release-times?{query}"), None).await.json().await.unwrap();
        let cell = api["groups"].as_array().unwrap().iter().find(|g| g["group"][cols[1]] == cols[2]).expect(line);
        assert_eq!(cols[3] == "true", cell["suppressed"] == true, "{line}");
        if cols[3] == "false" {
            assert_eq!((cols[4], cols[5]), (cell["count"].to_string().as_str(), hours(&cell["meanMs"]).as_str()), "{line}");
        }
    }
    app.stop().await;

    let html = report("html", None).await;
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.contains("WTO TFA Art. 7.6") && html.contains("Tukey") && html.contains(&format!("<td>{}</td>", overall[5])));
    let pdf = data.path().join("report.pdf");
    let printed = report("pdf", Some(&pdf)).await;
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-") && bytes.len() > 10_000, "a PDF ({} bytes)", bytes.len());
}
