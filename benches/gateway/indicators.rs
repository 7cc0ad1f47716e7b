//! `--indicators N`: the release-time figures and the TFA monitor over N simulated consignments,
//! their answer time.

use super::*;

/// The indicators run: `n` consignments' release-time facts written straight into a fresh
/// SQLite store through the store's own `save_release_times` (what every change writes), a
/// gateway started on it, then the figures asked for again and again with varied intervals,
/// segments, trends and readers, each request timed from the client. The first request waits
/// for the gateway's index (loading since the start) and is reported apart. Then the TFA monitor
/// (`/v1/indicators/tfa`) the same way, by each of its groupings.
pub(super) async fn indicators(n: usize, o: &Options) {
    use ventanilla::store::{AgencyReleaseTimes, AgencySelectivity, ConsignmentReleaseTimes, DocumentDims, Formalities, Store};
    const HOUR: i64 = 3_600_000;
    println!("\n## Release-time indicators over {n} consignments");
    let data = tempfile::tempdir().unwrap();
    let t = Instant::now();
    // The facts as written, for the public TFA view's computation (a pure function of them).
    let mut kept: Vec<(ConsignmentReleaseTimes, Vec<AgencyReleaseTimes>)> = Vec::with_capacity(n);
    let end = ventanilla::clock::now_millis();
    {
        let store: Arc<dyn Store> = Arc::new(ventanilla::store::sqlite::SqliteStore::open(data.path()).unwrap());
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let corridors = [("AR", "BR", "BRURG"), ("BR", "AR", "ARPSL"), ("UY", "AR", "ARCOL"), ("AR", "UY", "UYFMO"), ("BR", "UY", "UYRVY")];
        let modes = ["road", "road", "sea", "rail", "air"];
        let chapters = ["02", "10", "84", "87", "30", "47"];
        let channels = ["without", "without", "without", "with-hold", "with-query"];
        let kinds = ["customs", "sanitary", "border"];
        let mut written = 0;
        while written < n {
            let chunk = 20_000.min(n - written);
            let mut rows = Vec::with_capacity(chunk);
            for i in written..written + chunk {
                let (origin, destination, post) = corridors[(next() % 5) as usize];
                let lodged = end - (next() % (30 * 24 * HOUR as u64)) as i64;
                let arrived = lodged - 8 * HOUR + (next() % (24 * HOUR as u64)) as i64;
                let released = (next() % 10 != 0).then(|| lodged.max(arrived) + (next() % (48 * HOUR as u64)) as i64);
                let owner = if next() % 50 == 0 { "demo-trader".to_owned() } else { format!("trader-{:03}", next() % 300) };
                let c = ConsignmentReleaseTimes {
                    ucr: ventanilla::domain::Ucr::parse(&format!("BENCH-{i:08}")).unwrap(),
                    owner,
                    lodged_at: lodged,
                    arrived_at: Some(arrived),
                    released_at: released,
                    decided_at: released,
                    outcome: if released.is_some() { "released".into() } else { "open".into() },
                    document_type: ["customsDeclaration", "customsDeclaration", "ecommerceShipment"][(next() % 3) as usize].into(),
                    origin: origin.into(),
                    destination: destination.into(),
                    dims: DocumentDims {
                        transport_mode: Some(modes[(next() % 5) as usize].into()),
                        hs_chapter: Some(chapters[(next() % 6) as usize].into()),
                        border_post: Some(post.into()),
                    },
                    channel: channels[(next() % 5) as usize].into(),
                    hold_ms: (next() % 3 == 0) as i64 * (next() % (6 * HOUR as u64)) as i64,
                    query_trader_ms: (next() % 10 == 0) as i64 * (next() % (4 * HOUR as u64)) as i64,
                    query_agency_ms: (next() % 10 == 0) as i64 * (next() % (3 * HOUR as u64)) as i64,
                    risk_channel: ["green", "green", "green", "yellow", "red", "unselected"][(next() % 6) as usize].into(),
                    formalities: Some(Formalities {
                        documents: 1 + (next() % 4) as i64,
                        amendments: (next() % 5 == 0) as i64,
                        queries: (next() % 8 == 0) as i64,
                        resubmissions: (next() % 20 == 0) as i64,
                    }),
                };
                let parts: Vec<AgencyReleaseTimes> = kinds
                    .iter()
                    .map(|kind| {
                        let country = destination.to_lowercase();
                        let first = lodged + (next() % (2 * HOUR as u64)) as i64;
                        AgencyReleaseTimes {
                            agency: ventanilla::domain::AgencyId::parse(&format!("{country}-{kind}")).unwrap(),
                            routed_at: lodged,
                            first_answer_at: Some(first),
                            decided_at: released.map(|r| r.min(first + (next() % (24 * HOUR as u64)) as i64)),
                            decision: released.map(|_| "released".to_owned()),
                            hold_ms: 0,
                            query_trader_ms: 0,
                            query_agency_ms: 0,
                            selectivity: Some(AgencySelectivity {
                                channel: ["green", "green", "green", "yellow", "red"][(next() % 5) as usize],
                                source: ["rule", "model", "random", "mandatory"][(next() % 4) as usize],
                                finding: [None, None, Some("none"), Some("irregularity")][(next() % 4) as usize],
                                standing_instruction: next() % 10 == 0,
                            }),
                        }
                    })
                    .collect();
                rows.push((c, parts));
            }
            kept.extend(rows.iter().cloned());
            store
                .write_with(Vec::new(), move |l| {
                    for (c, parts) in &rows {
                        l.save_release_times(c, parts)?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
            written += chunk;
        }
    }
    println!("facts of {n} consignments (3 agencies each) written in {:.1} s", t.elapsed().as_secs_f64());

    // The public view computes a whole month once (then serves it a minute from memory): the
    // same computation, here over every consignment written, as one month, before the
    // gateway starts (the facts kept for it are dropped first: the requests below run without them).
    use ventanilla::indicators::{figures::AgencyPart, public::Period, tfa_public};
    let month = Period { from: end - 31 * 24 * HOUR, to: end + 1, closed_before: end + 7 * 24 * HOUR };
    let before = Period { from: month.from - 31 * 24 * HOUR, to: month.from, closed_before: month.from + 7 * 24 * HOUR };
    let of = |p: Period| {
        kept.iter()
            .filter(move |(c, _)| c.lodged_at >= p.from && c.lodged_at < p.to)
            .map(|(c, parts)| (c, parts.iter().map(|part| AgencyPart { part, kind: std::borrow::Cow::Borrowed("customs") })))
    };
    let (rss_before, _) = rss_mib(&std::process::id().to_string());
    let t = Instant::now();
    let public = tfa_public::publication(month, of(month), before, of(before), 2 * HOUR, 5);
    let took = t.elapsed();
    let (rss_after, peak) = rss_mib(&std::process::id().to_string());
    let shown = public.figures(ventanilla::indicators::tfa::TfaGroup::BorderPost).map(|f| f.indicators.len()).unwrap_or_default();
    println!("\npublic TFA view of one month of {} consignments ({shown} indicators, both groupings): computed in {:.0} ms (once per month, kept a minute; one computation at a time per gateway); this process's memory {rss_before:.0} -> {rss_after:.0} MiB (peak {peak:.0} MiB), given back before the gateway starts",
        kept.len(), took.as_secs_f64() * 1000.0);
    drop(public);
    drop(kept);
    let gw = Gateway::start_on(data, None, "bench.", None).await;
    let client = reqwest::Client::new();
    let ask_at = |path: &'static str, query: String, token: &'static str| {
        let (client, address) = (client.clone(), gw.address.clone());
        async move {
            let start = Instant::now();
            let r = client.get(format!("{address}/v1/indicators/{path}?{query}")).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{query}");
            let body: Value = r.json().await.unwrap();
            (start.elapsed(), body)
        }
    };
    let ask = |query: String, token: &'static str| ask_at("release-times", query, token);
    let (load, first) = ask("interval=arrival-to-release".into(), "demo-operator").await;
    let (rss, peak) = rss_mib(&gw.pid());
    println!("first request (waits for the gateway's index of {} consignments, loading since the start): {:.0} ms; gateway memory {rss:.0} MiB (peak {peak:.0} MiB)",
        first["overall"]["count"], load.as_secs_f64() * 1000.0);
    let from = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 31 * 24 * HOUR);
    let week = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 7 * 24 * HOUR);
    let asks: Vec<(&str, String, &'static str)> = vec![
        ("all, arrival to release", format!("from={from}"), "demo-operator"),
        ("by corridor and mode", format!("from={from}&groupBy=corridor,transportMode"), "demo-operator"),
        ("by agency, decision", format!("from={from}&interval=agency-decision&groupBy=agency"), "demo-operator"),
        ("by 4 segments", format!("from={from}&interval=lodgement-to-release&groupBy=corridor,hsChapter,channel,preArrival"), "demo-operator"),
        ("trend per day by mode", format!("from={from}&groupBy=transportMode&trend=day"), "demo-operator"),
        ("last week, by border post", format!("from={week}&groupBy=borderPost"), "demo-operator"),
        ("a trader's own", format!("from={from}&groupBy=corridor"), "demo-trader"),
        ("an agency's own part", format!("from={from}&interval=agency-first-answer&groupBy=agencyKind"), "demo-br-customs"),
    ];
    let rounds = (o.seconds as usize * 3).max(10);
    let mut all = Latencies::default();
    println!("\n| request | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|");
    for (name, query, token) in &asks {
        let mut l = Latencies::default();
        for _ in 0..rounds {
            let (took, _) = ask(query.clone(), token).await;
            l.push(took);
            all.push(took);
        }
        println!("| {name} | {:.0} | {:.0} | {:.0} |", millis(l.percentile(0.5)), millis(l.percentile(0.95)), millis(l.percentile(1.0)));
    }
    let p95 = all.percentile(0.95);
    println!("\nall {} requests: p50 {:.0} ms, p95 {:.0} ms (target 200 ms: {:.2} of it), max {:.0} ms",
        all.len(), millis(all.percentile(0.5)), millis(p95), millis(p95) / 200.0, millis(all.percentile(1.0)));

    println!("\n## TFA monitor over {n} consignments (each request: the period asked and the one before)");
    let to = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() + HOUR);
    let half = ventanilla::clock::rfc3339(ventanilla::clock::now_millis() - 15 * 24 * HOUR);
    let tfa_asks: Vec<(&str, String, &'static str)> = vec![
        ("by country, 31 days (and the 31 before)", format!("from={from}&to={to}"), "demo-operator"),
        ("by border post, 31 days", format!("from={from}&to={to}&groupBy=borderPost"), "demo-operator"),
        ("by transport mode, 31 days", format!("from={from}&to={to}&groupBy=transportMode"), "demo-operator"),
        ("by document type, 15 days", format!("from={half}&to={to}&groupBy=documentType"), "demo-operator"),
        ("a national single window's country, by border post", format!("from={from}&to={to}&groupBy=borderPost"), "demo-nsw-br"),
        ("an agency's own parts", format!("from={from}&to={to}"), "demo-br-customs"),
    ];
    let mut tfa_all = Latencies::default();
    println!("\n| request | consignments | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|");
    for (name, query, token) in &tfa_asks {
        let mut l = Latencies::default();
        let mut counted = Value::Null;
        for _ in 0..rounds {
            let (took, body) = ask_at("tfa", query.clone(), token).await;
            counted = body["current"]["region"]["consignments"].clone();
            l.push(took);
            tfa_all.push(took);
        }
        println!("| {name} | {counted} | {:.0} | {:.0} | {:.0} |", millis(l.percentile(0.5)), millis(l.percentile(0.95)), millis(l.percentile(1.0)));
    }
    let p95 = tfa_all.percentile(0.95);
    println!("\nall {} TFA requests: p50 {:.0} ms, p95 {:.0} ms (target 200 ms: {:.2} of it), max {:.0} ms",
        tfa_all.len(), millis(tfa_all.percentile(0.5)), millis(p95), millis(p95) / 200.0, millis(tfa_all.percentile(1.0)));
    gw.stop();

}

/// Request latencies of the indicators run.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    /// Nearest rank.
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.0.get(i).copied().unwrap_or_default()
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
