//! Simulated e-commerce traffic with planted irregularities (`ventanilla simulate --ecommerce`),
//! run through a running gateway over its HTTP API, as the region's participants would: the
//! platform submits each week's parcels in NDJSON batches; each agency reads its delivery's
//! selection in its consignment view, inspects what it is told (red and yellow), reports what
//! the inspection found by the plan, and releases the rest; the operator trains a model at the
//! start of each week after the first, while that week's parcels flow. A week is a round, not
//! seven days: time is not simulated.
//!
//! The plan states its patterns ([`PATTERNS`]); which parcels they make irregular is drawn
//! from the seed, so the same seed plants the same irregularities. No rule is written for
//! them: the shipped rule `undervalued-electronics` covers the undervaluing sellers' electronics
//! only, and the rest must be found by the model's features (sellers' histories, HS headings',
//! routes', value per kilogram) from what inspections reported.
//!
//! What it reports ([`Report`]) is what the test of issue 28 checks: the hit rate of each
//! selection source against the base irregularity rate, the random share of the selections,
//! whether each shipped rule fired on exactly the parcels it describes, that every delivery
//! accepted was seen and answered, and that the platform never read a score or a reason.

use std::collections::BTreeMap;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};

use crate::draws::Draws;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub weeks: u32,
    pub parcels_per_week: usize,
    /// Sellers on the platform, one in ten of them undervaluing.
    pub sellers: usize,
    /// The same seed plants the same irregularities.
    pub seed: u64,
}

/// Who plays each part: bearer tokens.
#[derive(Debug, Clone)]
pub struct Players {
    pub platform: String,
    pub operator: String,
    /// An agency's token is this followed by its id (`demo-` + `br-customs`).
    pub agency_prefix: String,
}

/// A planted pattern, stated in the plan.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pattern {
    pub name: &'static str,
    pub text: &'static str,
    /// The chance that a parcel of the pattern is irregular.
    pub irregular_rate: f64,
}

/// The planted patterns; a parcel of none is irregular [`BASE_RATE`] of the time, and one of
/// several takes the highest chance.
pub const PATTERNS: [Pattern; 3] = [
    Pattern {
        name: "undervaluing-sellers",
        text: "one seller in ten declares its parcels at 1 to 4 USD a kilogram (the others at 15 to 80), whatever it ships",
        irregular_rate: 0.45,
    },
    Pattern {
        name: "misdeclared-books",
        text: "parcels declared as printed books (HS 4901, duty-free) hold other goods",
        irregular_rate: 0.30,
    },
    Pattern { name: "route-US-UY", text: "parcels from the United States to Uruguay", irregular_rate: 0.20 },
];

/// A parcel of no pattern is irregular this often.
pub const BASE_RATE: f64 = 0.02;

/// The platform's identifier (the demo platform's, Vitrine Brasil) and its address.
const PLATFORM_SCHEME: &str = "BR-CNPJ";
const PLATFORM_ID: &str = "28374619000185";
/// Goods and their HS subheadings, drawn with these weights (of 100).
const GOODS: [(&str, &str, u64); 7] = [
    ("610910", "Cotton T-shirt", 22),
    ("611020", "Knitted sweater", 14),
    ("851713", "Smartphone", 12),
    ("847130", "Laptop computer", 6),
    ("950300", "Toy building set", 18),
    ("330499", "Face cream", 23),
    ("490199", "Printed book", 5),
];
/// Buyers, one per destination, as the e-commerce examples name them.
fn consignee(destination: &str) -> Value {
    match destination {
        "AR" => json!({"name": "Lucía Fernández", "identifier": {"scheme": "AR-CUIL", "value": "27312456783"},
                       "address": {"line": "Calle 48 N° 726", "city": "La Plata", "postcode": "B1900", "country": "AR"}}),
        "BR" => json!({"name": "Ana Paula Souza", "identifier": {"scheme": "BR-CPF", "value": "34821590760"},
                       "address": {"line": "Rua das Acácias, 215", "city": "Curitiba", "postcode": "80420-090", "country": "BR"}}),
        _ => json!({"name": "Valentina Sosa", "identifier": {"scheme": "UY-CI", "value": "51234975"},
                    "address": {"line": "Calle Treinta y Tres 612", "city": "Salto", "postcode": "50000", "country": "UY"}}),
    }
}

/// One parcel as planned, with the truth only the simulation knows.
#[derive(Debug, Clone)]
struct Parcel {
    ucr: String,
    seller: usize,
    origin: &'static str,
    destination: &'static str,
    hs: &'static str,
    description: &'static str,
    mass: f64,
    value: f64,
    irregular: bool,
    patterns: Vec<&'static str>,
}

impl Parcel {
    /// The rules of the shipped region file this parcel meets, as they are written there.
    fn shipped_rules(&self) -> Vec<&'static str> {
        let mut rules = Vec::new();
        let heading: u32 = self.hs[..4].parse().unwrap_or(0);
        if matches!(heading, 8471 | 8517 | 8525..=8528) && self.value / self.mass < 20.0 {
            rules.push("undervalued-electronics");
        }
        if (45.0..50.0).contains(&self.value) {
            rules.push("just-under-de-minimis");
        }
        rules
    }

    fn envelope(&self, seller_id: &str, seller_scheme: &str) -> Value {
        json!({
            "documentType": "ecommerceShipment",
            "schemaVersion": "1.0.0",
            "ucr": self.ucr,
            "origin": self.origin,
            "destination": self.destination,
            "payload": {
                "shipmentId": format!("SIM-{}", &self.ucr[18..]),
                "platform": {"name": "Vitrine Brasil Comércio Eletrônico Ltda.",
                             "identifier": {"scheme": PLATFORM_SCHEME, "value": PLATFORM_ID},
                             "address": {"line": "Av. Brigadeiro Faria Lima, 3900", "city": "São Paulo", "country": "BR"}},
                "seller": {"name": format!("Seller {}", self.seller),
                           "identifier": {"scheme": seller_scheme, "value": seller_id},
                           "address": {"line": "1 Export Road", "city": "Export City", "country": self.origin}},
                "consignee": consignee(self.destination),
                "modeOfTransport": "postal",
                "trackingNumber": format!("SIM{}", &self.ucr[18..]),
                "items": [{"description": self.description, "hsCode": self.hs, "quantity": {"value": 1, "unitCode": "H87"},
                           "itemValue": {"value": self.value, "currency": "USD"}, "originCountry": self.origin}],
                "totalDeclaredValue": {"value": self.value, "currency": "USD"},
                "grossMass": self.mass,
                "dutyRegime": "dutyDue"
            }
        })
    }
}

/// A seller: where it ships from, and whether it undervalues.
struct Seller {
    scheme: &'static str,
    id: String,
    country: &'static str,
    undervalues: bool,
}

fn sellers(plan: &Plan, draws: &mut Draws) -> Vec<Seller> {
    (0..plan.sellers.max(1))
        .map(|i| {
            let (scheme, country) = if draws.chance(0.7) { ("CN-USCC", "CN") } else { ("US-EIN", "US") };
            Seller { scheme, id: format!("SIM{:04X}{i:05}", plan.seed % 0xFFFF), country, undervalues: i % 10 == 3 }
        })
        .collect()
}

fn parcels(plan: &Plan, sellers: &[Seller], week: u32, run: &str, draws: &mut Draws) -> Vec<Parcel> {
    (0..plan.parcels_per_week)
        .map(|i| {
            let seller = draws.below(sellers.len() as u64) as usize;
            let s = &sellers[seller];
            let destination = ["AR", "BR", "UY"][draws.below(3) as usize];
            let mut pick = draws.below(100);
            let &(hs, description, _) = GOODS.iter().find(|g| if pick < g.2 { true } else { pick -= g.2; false }).unwrap_or(&GOODS[0]);
            let mass = ((0.2 + draws.unit() * 4.8) * 1000.0).round() / 1000.0;
            let per_kg = if s.undervalues { 1.0 + draws.unit() * 3.0 } else { 15.0 + draws.unit() * 65.0 };
            let value = ((mass * per_kg) * 100.0).round() / 100.0;
            let mut patterns = Vec::new();
            if s.undervalues {
                patterns.push(PATTERNS[0].name);
            }
            if hs.starts_with("4901") {
                patterns.push(PATTERNS[1].name);
            }
            if s.country == "US" && destination == "UY" {
                patterns.push(PATTERNS[2].name);
            }
            let chance = PATTERNS.iter().filter(|p| patterns.contains(&p.name)).map(|p| p.irregular_rate).fold(BASE_RATE, f64::max);
            Parcel {
                ucr: format!("5BR{PLATFORM_ID}-{run}{week:02}{i:06}"),
                seller,
                origin: s.country,
                destination,
                hs,
                description,
                mass,
                value,
                irregular: draws.chance(chance),
                patterns,
            }
        })
        .collect()
}

/// Inspections and what they found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub inspections: u64,
    pub irregularities: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hit_rate: Option<f64>,
}

impl Tally {
    fn add(&mut self, irregular: bool) {
        self.inspections += 1;
        self.irregularities += u64::from(irregular);
        self.hit_rate = Some(self.irregularities as f64 / self.inspections as f64);
    }
}

/// One week's round.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Week {
    pub week: u32,
    pub parcels: usize,
    pub irregular: usize,
    pub by_source: BTreeMap<String, Tally>,
    /// The answer to the training started with the week (none in the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training: Option<Value>,
}

/// How one shipped rule fired.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleFiring {
    pub rule: String,
    /// Deliveries of parcels the rule describes.
    pub described: u64,
    /// Deliveries whose selection names it.
    pub named: u64,
    /// Described but not named, and named but not described.
    pub missed: u64,
    pub spurious: u64,
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub patterns: Vec<Pattern>,
    pub base_rate: f64,
    /// Per pattern: its parcels, and how many of them were irregular (`inspections` counting
    /// parcels here).
    pub planted: BTreeMap<String, Tally>,
    pub parcels: usize,
    /// Irregular parcels among all: the rate inspections at random would find.
    pub base_irregularity_rate: f64,
    pub weeks: Vec<Week>,
    /// Every week's inspections by the source that selected them.
    pub by_source: BTreeMap<String, Tally>,
    /// The model's selections whose reasons name no rule: what the features alone found.
    pub model_without_rules: Tally,
    /// Random selections among every selection within the budget (mandatory ones left out).
    pub random_share: f64,
    pub rules: Vec<RuleFiring>,
    /// Deliveries accepted, seen by their agency, answered by it, and released by standing
    /// instruction (de minimis) before it answered.
    pub deliveries_accepted: u64,
    pub deliveries_seen: u64,
    pub deliveries_answered: u64,
    pub released_by_standing_instruction: u64,
    /// Parcels the platform read, and those whose view showed more than a channel.
    pub platform_views: u64,
    pub platform_view_leaks: u64,
    /// The gateway's own figures of the live model at the end (`GET /v1/risk/performance`):
    /// `modelVersion`, `modelPrecisionAtBudget`, `modelPrecisionInPeriod`,
    /// `modelFindingsInPeriod`.
    pub live_model: Value,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error("the gateway could not be reached at {url}")]
    Unreachable { url: String, #[source] source: reqwest::Error },
    #[error("{what} was answered {status}: {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("{what} was answered with a body that is not the JSON expected: {body}")]
    Unexpected { what: String, body: String },
}

/// A client of one gateway.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<(u16, Value), SimulationError> {
        let r = req.send().await.map_err(|source| SimulationError::Unreachable { url: self.base.clone(), source })?;
        let status = r.status().as_u16();
        let body = r.bytes().await.map_err(|source| SimulationError::Unreachable { url: self.base.clone(), source })?;
        let value = serde_json::from_slice(&body)
            .map_err(|_| SimulationError::Unexpected { what: what.to_owned(), body: String::from_utf8_lossy(&body).into_owned() })?;
        Ok((status, value))
    }
    async fn ok(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, SimulationError> {
        match self.call(what, req).await? {
            (200..=299, v) => Ok(v),
            (status, v) => Err(SimulationError::Refused { what: what.to_owned(), status, body: v.to_string() }),
        }
    }
    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(token)
    }
    fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.base)).bearer_auth(token)
    }
}

/// Requests in flight at once per step.
const CONCURRENCY: usize = 16;
/// Parcels per batch request.
const BATCH: usize = 1_000;

/// One delivery as its agency read it.
struct Seen {
    parcel: usize,
    agency: String,
    document_id: String,
    selection: Value,
    released: bool,
}

/// Runs `plan` against the gateway at `base` (`http://127.0.0.1:8080`).
pub async fn run(base: &str, plan: &Plan, players: &Players) -> Result<Report, SimulationError> {
    let client = Client { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned() };
    let mut draws = Draws(plan.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let sellers = sellers(plan, &mut draws);
    // Each run's UCRs are its own, so a run can follow another on the same store.
    let run = format!("{:04X}", (crate::clock::now_millis() as u64 ^ plan.seed) % 0xFFFF);
    let mut weeks = Vec::new();
    let mut by_source: BTreeMap<String, Tally> = BTreeMap::new();
    let mut model_without_rules = Tally::default();
    let mut planted: BTreeMap<String, Tally> = BTreeMap::new();
    let mut rules: BTreeMap<&'static str, RuleFiring> = BTreeMap::new();
    let (mut accepted, mut seen_count, mut answered, mut standing, mut views, mut leaks) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut total, mut irregular_total) = (0usize, 0usize);
    for week in 1..=plan.weeks {
        let parcels = parcels(plan, &sellers, week, &run, &mut draws);
        total += parcels.len();
        irregular_total += parcels.iter().filter(|p| p.irregular).count();
        for p in &parcels {
            for name in &p.patterns {
                planted.entry((*name).to_owned()).or_default().add(p.irregular);
            }
        }
        // Training starts with the week, while its parcels flow.
        let training = async {
            if week == 1 {
                return Ok(None);
            }
            let (status, answer) = client.call("training a model", client.post("/v1/risk/models", &players.operator)).await?;
            Ok::<_, SimulationError>(Some(json!({"status": status, "answer": answer})))
        };
        let submission = async {
            let mut receipts: Vec<(usize, Value)> = Vec::with_capacity(parcels.len());
            for (chunk, group) in parcels.chunks(BATCH).enumerate() {
                let body: Vec<String> =
                    group.iter().map(|p| p.envelope(&sellers[p.seller].id, sellers[p.seller].scheme).to_string()).collect();
                let answer = client
                    .ok(
                        "a batch of parcels",
                        client.post("/v1/documents:batch", &players.platform).header("Content-Type", "application/x-ndjson").body(body.join("\n")),
                    )
                    .await?;
                let results = answer["results"].as_array().cloned().unwrap_or_default();
                for (i, r) in results.into_iter().enumerate() {
                    if r["status"] != 202 {
                        return Err(SimulationError::Refused { what: format!("parcel {}", group[i].ucr), status: 0, body: r.to_string() });
                    }
                    receipts.push((chunk * BATCH + i, r["receipt"].clone()));
                }
            }
            Ok(receipts)
        };
        let (training, receipts) = tokio::join!(training, submission);
        let (training, receipts) = (training?, receipts?);

        // Each agency reads its delivery's selection.
        let wanted: Vec<(usize, String, String)> = receipts
            .iter()
            .flat_map(|(i, r)| {
                let id = r["documentId"].as_str().unwrap_or_default().to_owned();
                r["deliveries"].as_array().cloned().unwrap_or_default().into_iter().filter_map(move |d| {
                    d["agency"].as_str().map(|a| (*i, a.to_owned(), id.clone()))
                })
            })
            .collect();
        accepted += wanted.len() as u64;
        let seen: Vec<Result<Option<Seen>, SimulationError>> = stream::iter(wanted)
            .map(|(i, agency, document_id)| {
                let (client, parcels, prefix) = (&client, &parcels, &players.agency_prefix);
                async move {
                    let path = format!("/v1/consignments/{}", parcels[i].ucr);
                    let view = client.ok("an agency's view", client.get(&path, &format!("{prefix}{agency}"))).await?;
                    let delivery = view["documents"].as_array().into_iter().flatten()
                        .flat_map(|d| d["deliveries"].as_array().into_iter().flatten())
                        .find(|d| d["agency"] == agency.as_str())
                        .cloned();
                    Ok(delivery.map(|d| Seen {
                        parcel: i,
                        agency,
                        document_id,
                        released: d["status"] == "released",
                        selection: d["selection"].clone(),
                    }))
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
        let mut answers = Vec::new();
        for s in seen {
            let Some(s) = s? else { continue };
            seen_count += 1;
            let p = &parcels[s.parcel];
            let channel = s.selection["channel"].as_str().unwrap_or("none").to_owned();
            let source = s.selection["source"].as_str().unwrap_or("none").to_owned();
            let named: Vec<&str> = s.selection["reasons"].as_array().into_iter().flatten()
                .filter(|r| r["kind"] == "rule").filter_map(|r| r["name"].as_str()).collect();
            for rule in ["undervalued-electronics", "just-under-de-minimis"] {
                let f = rules.entry(rule).or_insert_with(|| RuleFiring { rule: rule.to_owned(), ..Default::default() });
                let (described, is_named) = (p.shipped_rules().contains(&rule), named.contains(&rule));
                f.described += u64::from(described);
                f.named += u64::from(is_named);
                f.missed += u64::from(described && !is_named);
                f.spurious += u64::from(is_named && !described);
            }
            let inspect = channel == "red" || channel == "yellow";
            if inspect {
                tally.entry(source.clone()).or_default().add(p.irregular);
                by_source.entry(source.clone()).or_default().add(p.irregular);
                if source == "model" && named.is_empty() {
                    model_without_rules.add(p.irregular);
                }
            }
            if s.released {
                standing += 1;
                continue;
            }
            let ack = if inspect {
                let finding = if p.irregular { "irregularity" } else { "none" };
                let revenue = if p.irregular { (p.value * 0.6 * 100.0).round() / 100.0 } else { 0.0 };
                json!({"documentId": s.document_id, "agency": s.agency, "status": "released",
                       "inspection": {"performed": true, "finding": finding, "revenue": revenue}})
            } else {
                json!({"documentId": s.document_id, "agency": s.agency, "status": "released"})
            };
            answers.push((format!("{}{}", players.agency_prefix, s.agency), ack));
        }
        let done: Vec<Result<Value, SimulationError>> = stream::iter(answers)
            .map(|(token, ack)| {
                let client = &client;
                async move {
                    client
                        .ok("an agency's answer", client.post("/v1/acknowledgments", &token).header("Content-Type", "application/json").body(ack.to_string()))
                        .await
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for d in done {
            d?;
            answered += 1;
        }

        // What the platform reads of a sample of its parcels: a channel at most.
        for (i, _) in receipts.iter().step_by(25) {
            let view = client.ok("the platform's view", client.get(&format!("/v1/consignments/{}", parcels[*i].ucr), &players.platform)).await?;
            views += 1;
            let leaked = view["documents"].as_array().into_iter().flatten()
                .flat_map(|d| d["deliveries"].as_array().into_iter().flatten())
                .any(|d| d.get("inspection").is_some() || d["selection"].as_object().is_some_and(|s| s.keys().any(|k| k != "channel")));
            leaks += u64::from(leaked);
        }
        weeks.push(Week { week, parcels: parcels.len(), irregular: parcels.iter().filter(|p| p.irregular).count(), by_source: tally, training });
    }
    let figures = client.ok("the operator's figures", client.get("/v1/risk/performance", &players.operator)).await?;
    let live_model: Value = ["modelVersion", "modelPrecisionAtBudget", "modelPrecisionInPeriod", "modelFindingsInPeriod"]
        .iter()
        .filter_map(|k| figures.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect::<serde_json::Map<String, Value>>()
        .into();
    let budgeted: u64 = by_source.iter().filter(|(s, _)| s.as_str() != "mandatory").map(|(_, t)| t.inspections).sum();
    let random = by_source.get("random").map_or(0, |t| t.inspections);
    Ok(Report {
        patterns: PATTERNS.to_vec(),
        base_rate: BASE_RATE,
        planted,
        parcels: total,
        base_irregularity_rate: irregular_total as f64 / total.max(1) as f64,
        weeks,
        by_source,
        model_without_rules,
        random_share: random as f64 / budgeted.max(1) as f64,
        rules: rules.into_values().collect(),
        deliveries_accepted: accepted,
        deliveries_seen: seen_count,
        deliveries_answered: answered,
        released_by_standing_instruction: standing,
        platform_views: views,
        platform_view_leaks: leaks,
        live_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_drawn_from_its_seed_and_plants_its_patterns() {
        let plan = Plan { weeks: 1, parcels_per_week: 5_000, sellers: 200, seed: 7 };
        let draw = || {
            let mut d = Draws(plan.seed | 1);
            let s = sellers(&plan, &mut d);
            parcels(&plan, &s, 1, "AB12", &mut d)
        };
        let (a, b) = (draw(), draw());
        assert_eq!(a.iter().map(|p| (p.value, p.irregular)).collect::<Vec<_>>(), b.iter().map(|p| (p.value, p.irregular)).collect::<Vec<_>>());
        let rate = |f: &dyn Fn(&Parcel) -> bool| {
            let of: Vec<&Parcel> = a.iter().filter(|p| f(p)).collect();
            of.iter().filter(|p| p.irregular).count() as f64 / of.len().max(1) as f64
        };
        assert!((rate(&|p| p.patterns.contains(&"undervaluing-sellers")) - 0.45).abs() < 0.07);
        assert!(rate(&|p| p.patterns.is_empty()) < 0.04);
        assert!(a.iter().all(|p| p.ucr.len() <= 35 && p.value >= 0.0 && p.mass > 0.0));
        // The shipped rule on undervalued electronics describes undervaluers' electronics only.
        assert!(a.iter().filter(|p| p.shipped_rules().contains(&"undervalued-electronics")).all(|p| p.value / p.mass < 20.0));
    }
}
