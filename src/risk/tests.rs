//! The risk module's rules, on the shipped region file and on rules written for each case.

use serde_json::{json, Value};

use super::*;
use crate::config::{RegionConfig, RiskRuleConfig};

fn shipped() -> RegionConfig {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn example(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/examples/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["payload"].clone()
}

fn rule(toml_text: &str) -> RiskRuleConfig {
    toml::from_str(toml_text).unwrap()
}

fn with_rules(rules: &[&str]) -> Result<Risk, String> {
    let mut region = shipped();
    region.risk.rules = rules.iter().map(|r| rule(r)).collect();
    Risk::new(&region)
}

#[test]
fn the_shipped_region_describes_every_types_facts_and_its_rules_compile() {
    let region = shipped();
    let risk = Risk::new(&region).expect("the shipped risk settings compile");
    assert!(!risk.profile().rules().is_empty());
    for t in region.document_types.keys() {
        for fact in [Fact::Parties, Fact::HsCodes] {
            assert!(risk.readings.describes(t, fact), "{t} describes its {}", fact.words());
        }
    }
}

#[test]
fn an_ecommerce_shipment_states_its_parties_value_mass_platform_and_lines() {
    let risk = Risk::new(&shipped()).unwrap();
    let payload = example("ecommerceShipment/valid/air-smartphone-BR-UY.json");
    let f = risk.facts("ecommerceShipment", "BR", "UY", &payload);
    let roles: Vec<&str> = f.parties.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["consignee", "platform", "seller"]);
    let seller = &payload["seller"]["identifier"];
    assert!(f.parties.contains(&("seller".into(), format!("{}:{}", seller["scheme"].as_str().unwrap(), seller["value"].as_str().unwrap()))));
    assert_eq!(f.value, payload["totalDeclaredValue"]["value"].as_f64());
    assert_eq!(f.currency.as_deref(), payload["totalDeclaredValue"]["currency"].as_str());
    assert_eq!(f.gross_mass, payload["grossMass"].as_f64());
    assert_eq!(f.platform.as_deref(), payload["platform"]["identifier"]["value"].as_str());
    let codes: Vec<String> = payload["items"].as_array().unwrap().iter().map(|i| i["hsCode"].as_str().unwrap().replace('.', "")).collect();
    assert_eq!(f.hs_codes, codes);
    assert!(!f.origins_of_goods.is_empty());
}

#[test]
fn a_total_is_read_before_the_lines_and_lines_are_summed_when_there_is_none() {
    let risk = Risk::new(&shipped()).unwrap();
    let mut payload = example("customsDeclaration/valid/export-beef-road-AR-BR.json");
    let with_total = risk.facts("customsDeclaration", "AR", "BR", &payload);
    assert_eq!(with_total.value, payload["invoiceAmount"]["value"].as_f64());
    payload.as_object_mut().unwrap().remove("invoiceAmount");
    let lines: f64 = payload["goodsItems"].as_array().unwrap().iter().map(|i| i["customsValue"]["value"].as_f64().unwrap()).sum();
    assert_eq!(risk.facts("customsDeclaration", "AR", "BR", &payload).value, Some(lines));
}

#[test]
fn a_rule_holds_on_hs_ranges_value_per_kilogram_and_parties_and_not_on_missing_facts() {
    let risk = with_rules(&[r#"
        name = "cheap-phones"
        reason = "Phones under 20 a kilogram."
        document_types = ["ecommerceShipment"]
        hs_codes = ["8517"]
        value_per_kg_below = 20.0
        points = 30
    "#, r#"
        name = "watched-seller"
        reason = "A seller on the watch list."
        parties = ["BR-CNPJ:11222333000181"]
        document_types = ["ecommerceShipment"]
        channel = "red"
    "#])
    .unwrap();
    let f = |value: Option<f64>, mass: Option<f64>, code: &str, party: &str| RiskFacts {
        document_type: "ecommerceShipment".into(),
        origin: "BR".into(),
        destination: "UY".into(),
        hs_codes: vec![code.into()],
        parties: vec![("seller".into(), party.into())],
        value,
        gross_mass: mass,
        ..RiskFacts::default()
    };
    let a = risk.profile().assess(&f(Some(30.0), Some(2.0), "851713", "BR-CNPJ:1"), "customs");
    assert_eq!((a.score, a.mandatory), (30.0, None), "{a:?}");
    assert_eq!(a.hits[0].0, "cheap-phones");
    // 25 a kilogram, another chapter, no mass: no points.
    for other in [f(Some(50.0), Some(2.0), "851713", "x"), f(Some(30.0), Some(2.0), "847130", "x"), f(Some(30.0), None, "851713", "x")] {
        assert_eq!(risk.profile().assess(&other, "customs").score, 0.0, "{other:?}");
    }
    let watched = risk.profile().assess(&f(None, None, "000000", "BR-CNPJ:11222333000181"), "customs");
    assert_eq!(watched.mandatory, Some(Channel::Red));
}

#[test]
fn a_rule_reading_a_fact_its_type_lacks_is_refused_by_name() {
    // Border-crossing notices state no value.
    let err = with_rules(&[r#"
        name = "cheap-cargo"
        reason = "Cheap."
        document_types = ["ecommerceShipment", "borderCrossingNotice"]
        value_below = 10.0
        points = 5
    "#])
    .err()
    .unwrap();
    assert!(
        err.contains("\"cheap-cargo\"") && err.contains("declared value") && err.contains("[document_types.borderCrossingNotice]")
            && err.contains("risk.value"),
        "{err}"
    );
    // Naming no type, it applies to the types that state a value, and never to a notice.
    let risk = with_rules(&[r#"
        name = "cheap-cargo"
        reason = "Cheap."
        value_below = 10.0
        points = 5
    "#])
    .unwrap();
    let cheap = |t: &str| RiskFacts { document_type: t.into(), value: Some(1.0), ..RiskFacts::default() };
    assert_eq!(risk.profile().assess(&cheap("ecommerceShipment"), "customs").score, 5.0);
    assert_eq!(risk.profile().assess(&cheap("borderCrossingNotice"), "customs").score, 0.0);
    // A fact no type describes is refused.
    let mut region = shipped();
    for t in region.document_types.values_mut() {
        t.risk.platform.clear();
    }
    region.risk.rules = vec![rule(r#"
        name = "a-platform"
        reason = "r"
        platforms = ["x"]
        points = 1
    "#)];
    let err = Risk::new(&region).err().unwrap();
    assert!(err.contains("\"a-platform\"") && err.contains("no document type describes"), "{err}");
    for (bad, says) in [
        (r#"name = "x"
            reason = "r"
            hs_codes = ["02-1"]
            points = 1"#, "HS codes"),
        (r#"name = "x"
            reason = "r"
            channel = "blue""#, "\"yellow\" or \"red\""),
        (r#"name = "x"
            reason = "r""#, "give points"),
        (r#"name = "x"
            reason = "r"
            agency_kinds = ["police"]
            points = 1"#, "agency kind"),
        (r#"name = "x"
            reason = "r"
            origins = ["Brazil"]
            points = 1"#, "country code"),
    ] {
        let err = with_rules(&[bad]).err().unwrap();
        assert!(err.contains("\"x\"") && err.contains(says), "{bad}: {err}");
    }
}

fn lane_run(budget: Budget, exploration: f64, scores: impl Iterator<Item = f64>) -> Vec<(Channel, &'static str)> {
    let mut lane = Lane::new(budget, exploration, 42);
    scores
        .map(|s| {
            let sel = lane.select(&Assessment { score: s, ..Assessment::default() }, None);
            let source = match sel.source {
                Source::Mandatory => "mandatory",
                Source::Rule | Source::Model => "score",
                Source::Random => "random",
                Source::None => "none",
            };
            (sel.channel, source)
        })
        .collect()
}

#[test]
fn realized_rates_stay_within_a_fifth_of_the_budget_through_bursts_and_ties() {
    let budget = Budget { red: 0.03, yellow: 0.07 };
    let n = 40_000;
    // All alike (no rule holds); a burst of high scores; scores of every kind.
    let alike: Vec<f64> = vec![0.0; n];
    let burst: Vec<f64> = (0..n).map(|i| if (10_000..14_000).contains(&i) { 100.0 } else { 0.0 }).collect();
    let mixed: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64).collect();
    for (name, scores) in [("alike", alike), ("burst", burst), ("mixed", mixed)] {
        let run = lane_run(budget, 0.10, scores.into_iter());
        // Over every stretch of 5,000 documents (an hour of a busy agency), the burst's included.
        for (i, stretch) in run.chunks(5_000).enumerate() {
            let share = |c: Channel| stretch.iter().filter(|(ch, _)| *ch == c).count() as f64 / stretch.len() as f64;
            let (red, yellow) = (share(Channel::Red), share(Channel::Yellow));
            assert!((red - 0.03).abs() <= 0.03 * 0.2, "{name}, stretch {i}: red {red}");
            assert!((yellow - 0.07).abs() <= 0.07 * 0.2, "{name}, stretch {i}: yellow {yellow}");
        }
        // The random share of inspections within 2 points of the setting.
        let inspected = run.iter().filter(|(c, _)| *c != Channel::Green).count() as f64;
        let random = run.iter().filter(|(c, s)| *c != Channel::Green && *s == "random").count() as f64;
        assert!((random / inspected - 0.10).abs() <= 0.02, "{name}: random share {}", random / inspected);
    }
}

#[test]
fn the_highest_scores_are_selected_first() {
    // One document in ten scores high: the score-selected red inspections are drawn from them.
    let scores = (0..20_000).map(|i| if i % 10 == 0 { 50.0 + (i % 7) as f64 } else { (i % 5) as f64 });
    let mut lane = Lane::new(Budget { red: 0.03, yellow: 0.0 }, 0.10, 7);
    let (mut high, mut selected) = (0, 0);
    for s in scores {
        let sel = lane.select(&Assessment { score: s, ..Assessment::default() }, None);
        if sel.channel == Channel::Red && sel.source == Source::Rule {
            selected += 1;
            if s >= 50.0 {
                high += 1;
            }
        }
    }
    assert!(selected > 400, "{selected}");
    assert!(high as f64 / selected as f64 > 0.95, "{high} of {selected} selected by score were of the high ones");
}

#[test]
fn a_mandatory_rule_wins_over_the_budget_and_an_agency_without_one_sees_only_those() {
    let risk = with_rules(&[r#"
        name = "beef"
        reason = "Beef."
        hs_codes = ["0201"]
        agency_kinds = ["sanitary"]
        channel = "red"
    "#])
    .unwrap();
    let beef = RiskFacts { document_type: "customsDeclaration".into(), hs_codes: vec!["020130".into()], ..RiskFacts::default() };
    let sanitary = AgencyId::parse("br-sanitary").unwrap();
    let border = AgencyId::parse("br-border").unwrap();
    for _ in 0..50 {
        let s = risk.select(&sanitary, &beef);
        assert_eq!((s.channel, s.source), (Channel::Red, Source::Mandatory));
        assert_eq!(s.reasons[0].name, "beef");
        // The border agency has no budget in the shipped region: green, not selected.
        let b = risk.select(&border, &beef);
        assert_eq!((b.channel, b.source), (Channel::Green, Source::None));
    }
}

#[test]
fn a_selection_reads_as_the_agency_is_sent_it() {
    let s = Selection {
        channel: Channel::Yellow,
        score: 30.0,
        source: Source::Rule,
        reasons: vec![Reason { kind: ReasonKind::Rule, name: "cheap-phones".into(), contribution: 30.0, text: "Phones.".into() }],
        model_version: None,
        model_score: None,
    };
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({"channel": "yellow", "score": 30.0, "source": "rule",
               "reasons": [{"kind": "rule", "name": "cheap-phones", "contribution": 30.0, "text": "Phones."}]})
    );
}

#[test]
fn what_a_selection_carries_is_bounded_by_the_rules_checks() {
    // A reason or a name past its bound is refused at start.
    let long = "x".repeat(501);
    let err = with_rules(&[&format!("name = \"long\"\nreason = \"{long}\"\npoints = 1")]).err().unwrap();
    assert!(err.contains("\"long\"") && err.contains("500 characters"), "{err}");
    let err = with_rules(&[&format!("name = \"{}\"\nreason = \"r\"\npoints = 1", "n".repeat(65))]).err().unwrap();
    assert!(err.contains("at most 64"), "{err}");
    // Ten rules hold: the selection gives eight reasons, the mandatory one first, then the
    // largest contributions.
    let mut rules: Vec<String> = (1..=9).map(|i| format!("name = \"r{i}\"\nreason = \"r{i}\"\nhs_codes = [\"02\"]\npoints = {i}")).collect();
    rules.push("name = \"must\"\nreason = \"must\"\nhs_codes = [\"02\"]\nchannel = \"yellow\"".into());
    let risk = with_rules(&rules.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    let beef = RiskFacts { document_type: "customsDeclaration".into(), hs_codes: vec!["020130".into()], ..RiskFacts::default() };
    let s = risk.select(&AgencyId::parse("br-border").unwrap(), &beef);
    let names: Vec<&str> = s.reasons.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["must", "r9", "r8", "r7", "r6", "r5", "r4", "r3"]);
    assert_eq!(s.score, 45.0, "every rule still counts in the score");
}

/// Two gateways over one store: a set one of them puts is taken by the other at its next look
/// (what `changes::watch` does every few seconds); an older set never replaces a newer one; a
/// stored set that no longer holds against the region is not taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_one_gateway_puts_is_taken_by_the_other_and_the_latest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn crate::store::Store> = std::sync::Arc::new(crate::store::sqlite::SqliteStore::open(dir.path()).unwrap());
    let (a, b) = (with_rules(&[]).unwrap(), with_rules(&[]).unwrap());
    assert!(!changes::load(&*store, &b).await.unwrap(), "nothing put yet");
    let red = rule(r#"name = "all-beef-red"
                      reason = "Outbreak."
                      hs_codes = ["0201-0202"]
                      channel = "red""#);
    let put = changes::put(&*store, &a, "demo-operator", "outbreak", vec![red.clone()]).await.unwrap().unwrap();
    assert_eq!(put.version(), 1);
    assert_eq!(b.rules().version(), 0);
    assert!(changes::load(&*store, &b).await.unwrap());
    assert_eq!((b.rules().version(), &b.rules().rules), (1, &vec![red.clone()]));
    let beef = b.facts("customsDeclaration", "AR", "BR", &example("customsDeclaration/valid/export-beef-road-AR-BR.json"));
    assert_eq!(b.profile().assess(&beef, "sanitary").mandatory, Some(Channel::Red));
    assert!(!changes::load(&*store, &b).await.unwrap(), "already in use");

    // An older set arriving late is ignored.
    let older = RuleSet { rules: Vec::new(), change: None };
    assert!(!b.put_rules(b.check_rules(&[]).unwrap(), older));
    assert_eq!(b.rules().version(), 1);

    // A stored set that does not hold against this region: refused, the rules in use kept.
    store.write_with(vec![crate::store::Subject::RiskRules], |l| l.save_risk_rules(5, "x", "y", r#"[{"name": "n", "reason": "r", "points": 1, "agency_kinds": ["coastguard"]}]"#)).await.unwrap();
    assert!(!changes::load(&*store, &b).await.unwrap());
    assert_eq!(b.rules().version(), 1);
    // And a refused put changes nothing and keeps nothing.
    let refused = changes::put(&*store, &a, "demo-operator", "", vec![red]).await.unwrap();
    assert_eq!(refused.unwrap_err(), changes::RulesRefused::NoReason);
    assert_eq!(store.read_with(|l| l.latest_risk_rules()).await.unwrap().unwrap().version, 2);
}

#[test]
fn a_de_minimis_covers_its_types_under_its_value_in_its_currency_and_is_checked_at_start() {
    let risk = with_rules(&[]).unwrap();
    let parcel = |value: f64, currency: &str, destination: &str| {
        let mut p = example("ecommerceShipment/valid/air-yerba-mate-AR-UY.json");
        p["totalDeclaredValue"] = json!({"value": value, "currency": currency});
        risk.facts("ecommerceShipment", "AR", destination, &p)
    };
    assert!(risk.under_de_minimis(&parcel(42.0, "USD", "UY")).is_some_and(|why| why.contains("under 50")));
    assert_eq!(risk.under_de_minimis(&parcel(50.0, "USD", "UY")), None, "at the value: not under it");
    assert_eq!(risk.under_de_minimis(&parcel(42.0, "EUR", "UY")), None, "another currency");
    let declaration = risk.facts("customsDeclaration", "AR", "BR", &example("customsDeclaration/valid/export-beef-road-AR-BR.json"));
    assert_eq!(risk.under_de_minimis(&declaration), None, "a type it does not cover");

    let refused = |entry: &str| {
        let mut region = shipped();
        region.risk.de_minimis.push(toml::from_str(entry).unwrap());
        Risk::new(&region).err().unwrap_or_default()
    };
    assert!(refused(r#"destination = "UY"
                       below = 10.0
                       currency = "USD"
                       document_types = ["ecommerceShipment"]"#).contains("given twice"));
    assert!(refused(r#"destination = "uy"
                       below = 10.0
                       currency = "USD"
                       document_types = []"#).contains("country code"));
    assert!(refused(r#"destination = "CL"
                       below = 0.0
                       currency = "USD"
                       document_types = []"#).contains("above 0"));
    assert!(refused(r#"destination = "CL"
                       below = 10.0
                       currency = "usd"
                       document_types = []"#).contains("ISO 4217"));
    assert!(refused(r#"destination = "CL"
                       below = 10.0
                       currency = "USD"
                       document_types = ["borderCrossingNotice"]"#).contains("risk.value"));
}
