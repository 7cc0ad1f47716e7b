//! `ventanilla simulate` writes a month of consignments with known delays; the release-time
//! indicators, read through a gateway over that store, recover the delays' means and medians.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{repo, spawn_app_on, test_brokers};

#[tokio::test]
async fn the_indicators_recover_the_simulated_delays() {
    let data = Arc::new(tempfile::tempdir().unwrap());
    let dir = data.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ventanilla"))
            .args(["simulate", "--consignments", "3000", "--days", "30", "--seed", "11", "--data-dir"])
            .arg(&dir)
            .current_dir(repo())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written: Value = serde_json::from_slice(&out.stdout).expect("the run's summary, as JSON");
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
