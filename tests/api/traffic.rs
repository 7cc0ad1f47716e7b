//! `ventanilla simulate` writes a month of consignments with known delays; the release-time
//! indicators, read through a gateway over that store, recover the delays' means and medians; the
//! reports (`ventanilla report release-times`, `ventanilla report tfa`) give the API's figures.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::{published_month, simulate_into, spawn_app_on, test_brokers};

/// `ventanilla report ARGS --format FORMAT [--out OUT]`'s arguments.
fn report_args(args: &[&str], format: &str, out: Option<&std::path::Path>) -> Vec<String> {
    let mut all: Vec<String> = std::iter::once("report").chain(args.iter().copied()).chain(["--format", format]).map(str::to_owned).collect();
    if let Some(out) = out {
        all.extend(["--out".to_owned(), out.display().to_string()]);
    }
    all
}

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
    let report = |format: &str, out: Option<&std::path::Path>| run(report_args(&["release-times", "--from", from.as_str(), "--to", to.as_str()], format, out));
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

/// `ventanilla report tfa`: one country's quarter per article, with the same figures the TFA
/// monitor's API gives for that quarter, the region's median of the countries, and the quarter
/// before; as CSV, HTML and PDF.
#[tokio::test]
async fn the_country_report_gives_the_monitors_figures_per_article() {
    use ventanilla::clock::{now_millis, rfc3339, year_month};
    use ventanilla::indicators::tfa_report::CalendarPeriod;
    let data = Arc::new(tempfile::tempdir().unwrap());
    let run = |args: Vec<String>| crate::helpers::ventanilla_on(data.path(), args);
    // The last quarter that has ended, and the one before it.
    let (y, m) = year_month(now_millis());
    let quarter = match (m - 1) / 3 {
        0 => CalendarPeriod::Quarter(y - 1, 4),
        q => CalendarPeriod::Quarter(y, q),
    };
    let ((from, to), (before, _)) = (quarter.bounds(), quarter.previous().bounds());
    simulate_into(data.path(), 600, 5, before, to).await;
    let name = quarter.name();
    let report = |format: &str, out: Option<&std::path::Path>| run(report_args(&["tfa", "--country", "BR", "--period", name.as_str()], format, out));
    let csv = report("csv", None).await;
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let csv = String::from_utf8(csv.stdout).unwrap();
    let lines: std::collections::BTreeMap<String, Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            // The definition, last, may be quoted: the figures come before it.
            let cols: Vec<String> = l.splitn(13, ',').map(str::to_owned).collect();
            (cols[1].clone(), cols)
        })
        .collect();
    assert_eq!(lines.len(), ventanilla::indicators::tfa_report::INDICATORS.len(), "{csv}");

    // The same quarter and the one before from the monitor, through a gateway over the same store.
    let app = spawn_app_on(data.clone(), format!("t{}.", uuid::Uuid::now_v7().simple()), Some(test_brokers()), |_| {}).await;
    let monitor = |from: i64, to: i64| {
        let path = format!("/v1/indicators/tfa?from={}&to={}", rfc3339(from), rfc3339(to));
        let app = &app;
        async move { app.get(&path, Some("demo-operator")).await.json::<Value>().await.unwrap() }
    };
    let (now, then) = (monitor(from, to).await, monitor(before, from).await);
    let br = |figures: &Value| figures["current"]["groups"].as_array().unwrap().iter().find(|g| g["group"] == "BR").unwrap()["articles"].clone();
    let (now_br, then_br) = (br(&now), br(&then));
    assert!(now_br["consignments"].as_u64().unwrap() >= 50, "{now_br:#}");
    let hours = |v: &Value| format!("{:.2}", v.as_f64().unwrap() / 3_600_000.0);
    let percent = |v: &Value| format!("{:.1}", v.as_f64().unwrap() * 100.0);
    let cols = |key: &str| lines[key].clone();
    // Art. 7.6: the value, what it counts, the region's median of the countries, the quarter before.
    let mean = cols("release-time-mean");
    assert_eq!((mean[5].as_str(), mean[6].as_str()), (hours(&now_br["releaseTime"]["meanMs"]).as_str(), now_br["releaseTime"]["count"].to_string().as_str()));
    assert_eq!(mean[7], hours(&now["current"]["regionMedian"]["releaseTimeMeanMs"]), "every country over the threshold: the monitor's median");
    assert_eq!((mean[9].as_str(), mean[10].as_str()), (quarter.previous().name().as_str(), hours(&then_br["releaseTime"]["meanMs"]).as_str()));
    let change: f64 = mean[11].parse().unwrap();
    assert!((change - (mean[5].parse::<f64>().unwrap() - mean[10].parse::<f64>().unwrap())).abs() < 1e-9, "{mean:?}");
    // Art. 7.1 and 10.1, 10.4 likewise.
    assert_eq!(cols("pre-arrival-share")[5], percent(&now_br["preArrival"]["share"]));
    assert_eq!(cols("pre-arrival-share")[7], percent(&now["current"]["regionMedian"]["preArrivalShare"]));
    let documents = cols("documents-per-consignment");
    assert_eq!(documents[5], format!("{:.2}", now_br["formalities"]["documentsPerConsignment"].as_f64().unwrap()));
    assert_eq!(cols("submitted-once-share")[5], percent(&now_br["singleWindow"]["share"]));
    assert_eq!(cols("agency-spread-median")[5], hours(&now_br["agencySpread"]["medianMs"]));
    app.stop().await;

    let html = report("html", None).await;
    assert!(html.status.success(), "{}", String::from_utf8_lossy(&html.stderr));
    let html = String::from_utf8(html.stdout).unwrap();
    assert!(html.contains(&format!("Trade facilitation as practiced: BR, {name}")), "the title");
    assert!(html.contains(&format!("<tr data-indicator=\"release-time-mean\"><td>Average release time: arrival to release (mean)</td><td>hours</td><td class=\"value\">{}</td>", mean[5])));
    for article in ["Art. 7.1", "Art. 7.4", "Art. 7.6", "Art. 7.8", "Art. 8", "Art. 10.1", "Art. 10.4"] {
        assert!(html.contains(&format!("<h2>{article} ")), "{article}");
    }
    let pdf = data.path().join("tfa.pdf");
    let printed = report("pdf", Some(&pdf)).await;
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-") && bytes.len() > 10_000, "a PDF ({} bytes)", bytes.len());
    // A country or period that is not one is refused, saying what is expected.
    let wrong = run(["report", "tfa", "--country", "BR", "--period", "2026-Q5"].map(String::from).to_vec()).await;
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("a quarter (2026-Q3)"));
}

/// `ventanilla simulate` with stated rates of pre-arrival lodgement, express parcels, joint
/// inspections and resubmissions: the TFA monitor, read through a gateway over that store,
/// recovers each within three standard errors of the plan.
#[tokio::test]
async fn the_tfa_monitor_recovers_the_simulated_rates() {
    use ventanilla::indicators::traffic::EXPRESS_DELAY;
    let data = Arc::new(tempfile::tempdir().unwrap());
    let (pre_arrival, express, inspected, joint, resubmission) = (0.6, 0.25, 0.3, 0.4, 0.1);
    let args = [
        "--consignments", "2000", "--days", "20", "--seed", "17", "--pre-arrival", "0.6", "--express", "0.25",
        "--inspected-by-several", "0.3", "--joint", "0.4", "--resubmission", "0.1",
    ];
    let written = crate::helpers::simulate(data.path(), &args).await;
    assert_eq!((written["consignments"].as_u64(), written["rates"]["joint"].as_f64()), (Some(2000), Some(joint)), "{written:#}");

    let app = spawn_app_on(data, format!("t{}.", uuid::Uuid::now_v7().simple()), Some(test_brokers()), |_| {}).await;
    let now = ventanilla::clock::now_millis();
    let (from, to) = (ventanilla::clock::rfc3339(now - 21 * 86_400_000), ventanilla::clock::rfc3339(now + 3_600_000));
    let tfa: Value = app.get(&format!("/v1/indicators/tfa?from={from}&to={to}"), Some("demo-operator")).await.json().await.unwrap();
    let r = &tfa["current"]["region"];
    assert_eq!(r["consignments"], 2000, "{tfa:#}");
    let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("a number: {v}"));
    let within = |name: &str, measured: f64, plan: f64, se: f64| {
        assert!((measured - plan).abs() <= 3.0 * se, "{name}: measured {measured}, plan {plan}, three standard errors {}", 3.0 * se);
    };
    let binomial = |p: f64, n: f64| (p * (1.0 - p) / n).sqrt();

    // Art. 7.8: the express parcels (every one released), and their median release time: an
    // exponential delay past its minimum, whose median's standard error is its scale over √n.
    let parcels = number(&r["expedited"]["expedited"]["count"]);
    within("express parcels", parcels / 2000.0, express, binomial(express, 2000.0));
    let (min, mean) = EXPRESS_DELAY;
    let scale = (mean - min) as f64;
    within("express median (ms)", number(&r["expedited"]["expedited"]["medianMs"]), min as f64 + scale * std::f64::consts::LN_2, scale / parcels.sqrt());
    let declared = 2000.0 - parcels;
    // Art. 7.1: every declared consignment's goods arrived (its notice answered).
    assert_eq!(number(&r["preArrival"]["withArrival"]), declared);
    within("pre-arrival", number(&r["preArrival"]["share"]), pre_arrival, binomial(pre_arrival, declared));
    // Art. 8: inspected by several agencies, and of those jointly.
    let several = number(&r["jointInspections"]["inspectedBySeveral"]);
    within("inspected by several", several / declared, inspected, binomial(inspected, declared));
    within("joint inspections", number(&r["jointInspections"]["share"]), joint, binomial(joint, several));
    // Art. 10.1: resubmitted once each, by an amendment (no other amendment is simulated).
    let formalities = &r["formalities"];
    assert_eq!((number(&formalities["consignments"]), number(&formalities["notComputed"])), (2000.0, 0.0));
    let resubmitted = (number(&formalities["resubmittedShare"]) * 2000.0).round();
    within("resubmitted", resubmitted / declared, resubmission, binomial(resubmission, declared));
    assert_eq!((number(&formalities["amendmentsPerConsignment"]) * 2000.0).round(), resubmitted, "one amendment each");
    // Art. 10.4: of the decided, those not resubmitted were submitted once.
    let decided = number(&r["singleWindow"]["decided"]);
    assert!(decided >= resubmitted && decided <= 2000.0, "{decided}");
    let once = number(&r["singleWindow"]["share"]);
    within("submitted once", 1.0 - once, resubmission * declared / decided, binomial(resubmission, declared) * declared / decided);
    // Art. 7.4: the inspected consignments' customs and sanitary parts are red.
    assert!(number(&r["riskManagement"]["physicalShare"]) > 0.0, "{:#}", r["riskManagement"]);
    app.stop().await;
}

/// The country report shows no figure computed over fewer consignments (or parts, or findings)
/// than the region's threshold, nor what such a figure counts.
#[tokio::test]
async fn the_country_report_hides_what_too_few_consignments_give() {
    use ventanilla::indicators::tfa_report::CalendarPeriod;
    let data = tempfile::tempdir().unwrap();
    let quarter = CalendarPeriod::Quarter(2026, 2);
    let (from, to) = quarter.bounds();
    // A dozen consignments over three importing countries: some figures of each rest on fewer
    // than five.
    crate::helpers::simulate(
        data.path(),
        &["--consignments", "12", "--days", "90", "--end", &ventanilla::clock::rfc3339(to), "--seed", "3", "--inspected-by-several", "0.3", "--joint", "0.5"],
    )
    .await;
    assert!(from < to);
    let out = crate::helpers::ventanilla_on(data.path(), ["report", "tfa", "--country", "BR", "--period", "2026-Q2", "--format", "csv"].map(String::from).to_vec()).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    let (mut shown, mut hidden) = (0, 0);
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(13, ',').collect();
        let (value, counted, median, countries) = (cols[5], cols[6], cols[7], cols[8]);
        match value.is_empty() {
            true => {
                assert!(counted.is_empty(), "a figure not shown shows no count: {line}");
                hidden += 1;
            }
            false => {
                assert!(counted.parse::<usize>().unwrap() >= 5, "{line}");
                shown += 1;
            }
        }
        assert_eq!(median.is_empty(), countries == "0", "a median is of the countries over the threshold: {line}");
    }
    assert!(shown > 0 && hidden > 0, "some of each ({shown} shown, {hidden} hidden): {csv}");
    let html = crate::helpers::ventanilla_on(data.path(), ["report", "tfa", "--country", "BR", "--period", "2026-Q2"].map(String::from).to_vec()).await;
    assert!(String::from_utf8_lossy(&html.stdout).contains("not shown (see the method)"));
}
