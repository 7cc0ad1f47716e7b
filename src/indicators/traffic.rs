//! Simulated traffic (`ventanilla simulate`): a month of consignments, or any span, written
//! through the gateway's own rules (acceptance, answers, responses) with the times they would
//! have had, so the release-time indicators can be seen and checked against known delays. Time
//! is compressed: a month is written in seconds.
//!
//! Each consignment is a customs declaration and the carrier's border-crossing notice:
//!
//! - its corridor, transport mode and HS chapter are drawn from [`CORRIDORS`], [`MODES`] and
//!   [`CHAPTERS`]; the declaration is routed by the region's rules, the notice to the border post
//!   only (the border agency of the destination, which answers it when the goods arrive);
//! - it is lodged at a time drawn evenly over the span, and the goods arrive from 8 hours before
//!   to 16 hours after (before: lodged after arrival; after: pre-arrival lodgement);
//! - each agency receiving the declaration decides after a delay drawn from [`delay_plan`]: its
//!   minimum plus an exponential part, so its mean is the plan's and its median
//!   `min + (mean - min) ln 2`; it acknowledges receipt first, sanitary agencies hold 15% of the
//!   goods, customs agencies query 10% of the declarations (the trader answers), and 3% of the
//!   decisions are rejections.
//!
//! Draws come from a seeded generator: the same seed writes the same traffic.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::access::Participant;
use crate::clock::Millis;
use crate::draws::Draws;
use crate::domain::{AckStatus, AgencyId, CountryCode, DocumentType, SchemaVersion, Ucr};
use crate::broker::Topics;
use crate::routing::{Router, RoutingFacts};
use crate::store::{AckRecord, DocumentDims, NewDocument, Store, StoreError, Subject};

/// Corridors, origin to destination, and their border posts (UN/LOCODE) at the destination.
pub const CORRIDORS: [(&str, &str, &str); 5] =
    [("AR", "BR", "BRURG"), ("BR", "AR", "ARPSL"), ("UY", "AR", "ARCOL"), ("AR", "UY", "UYFMO"), ("BR", "UY", "UYRVY")];
/// Transport modes and their weights (of 100).
pub const MODES: [(&str, u64); 4] = [("road", 55), ("sea", 25), ("rail", 10), ("air", 10)];
/// HS chapters drawn evenly: meat, cereals, machinery, vehicles, pharmaceuticals, pulp.
pub const CHAPTERS: [&str; 6] = ["02", "10", "84", "87", "30", "47"];

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The decision delay of an agency kind for a transport mode: (minimum, mean), in ms.
pub fn delay_plan(kind: &str, mode: &str) -> (Millis, Millis) {
    let hours = |h: f64| (h * HOUR as f64) as Millis;
    match (kind, mode) {
        ("customs", "road") => (hours(0.5), hours(6.0)),
        ("customs", "rail") => (hours(1.0), hours(10.0)),
        ("customs", "sea") => (hours(2.0), hours(36.0)),
        ("customs", _) => (hours(0.25), hours(3.0)),
        ("sanitary", "road") => (hours(1.0), hours(8.0)),
        ("sanitary", "rail") => (hours(1.0), hours(12.0)),
        ("sanitary", "sea") => (hours(2.0), hours(30.0)),
        ("sanitary", _) => (hours(0.5), hours(4.0)),
        (_, _) => (hours(0.1), hours(2.0)),
    }
}

/// One cell of the plan, as the `simulate` command prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedDelay {
    pub agency_kind: String,
    pub transport_mode: String,
    pub min_ms: Millis,
    pub mean_ms: Millis,
    pub median_ms: Millis,
}

/// The plan for every agency kind of the region and every mode.
pub fn plan(kinds: &[String]) -> Vec<PlannedDelay> {
    let mut out = Vec::new();
    for kind in kinds {
        for (mode, _) in MODES {
            let (min, mean) = delay_plan(kind, mode);
            let median = min + ((mean - min) as f64 * std::f64::consts::LN_2) as Millis;
            out.push(PlannedDelay { agency_kind: kind.clone(), transport_mode: mode.into(), min_ms: min, mean_ms: mean, median_ms: median });
        }
    }
    out
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub consignments: usize,
    /// Lodgements spread evenly over `[end - span, end)`.
    pub span_ms: Millis,
    pub end: Millis,
    pub seed: u64,
    /// The trader that lodges them (the region's participant id).
    pub trader: String,
    /// The document type that lodges each consignment, and the one that tells its arrival at
    /// the border post (`[indicators.simulation]`).
    pub declaration: DocumentType,
    pub border_notice: DocumentType,
}

/// What a run wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWritten {
    pub consignments: usize,
    pub documents: usize,
    pub answers: usize,
    pub plan: Vec<PlannedDelay>,
}

/// Consignments written per transaction.
const BATCH: usize = 200;

/// One event of a consignment, in time order.
enum Step {
    Answer(AckRecord),
    Respond(crate::lifecycle::Response),
}

/// Writes the traffic into `store`, [`BATCH`] consignments per transaction.
pub async fn simulate(store: &dyn Store, router: &Router, topics: &Topics, traffic: &Traffic, kinds: &[String]) -> Result<TrafficWritten, StoreError> {
    let mut draws = Draws(traffic.seed);
    let (mut documents, mut answers) = (0, 0);
    let run = format!("{:X}", traffic.seed % 0xFFFF);
    let mut start = 0;
    while start < traffic.consignments {
        let n = BATCH.min(traffic.consignments - start);
        let mut docs = Vec::with_capacity(2 * n);
        let mut steps: Vec<(Millis, Step)> = Vec::new();
        for i in start..start + n {
            let (d, s) = consignment(&mut draws, router, topics, traffic, &run, i);
            docs.extend(d);
            steps.extend(s);
        }
        documents += docs.len();
        answers += steps.len();
        // Each consignment's events in time order (consignments do not share rows).
        steps.sort_by_key(|(at, _)| *at);
        let subjects: Vec<Subject> = docs.iter().map(|d: &NewDocument| Subject::Consignment(d.ucr.clone())).collect();
        let refused = store
            .decide_with(subjects, Vec::new(), move |l| {
                // Simulated traffic is made to be accepted: a refusal is a defect of the
                // simulator, and none of the batch is kept.
                for doc in &docs {
                    if let Err(r) = crate::submission::accept_in(l, doc)? {
                        return Ok(Err(format!("a simulated document of {} was refused: {r}", doc.ucr)));
                    }
                }
                for (_, step) in &steps {
                    match step {
                        Step::Answer(ack) => {
                            if let Err(r) = crate::acknowledgment::apply_in(l, ack)? {
                                return Ok(Err(format!("a simulated answer was refused: {r}")));
                            }
                        }
                        Step::Respond(r) => {
                            // The trader who sent the document responds: its rule reads no type.
                            let _ = crate::lifecycle::respond_in(l, r, &crate::document_types::DocumentTypes::default())?;
                        }
                    }
                }
                // Nothing is left for a gateway to publish: simulated records are not sent.
                loop {
                    let due = l.due_deliveries("simulator", 1000, Millis::MAX)?;
                    if due.is_empty() {
                        break;
                    }
                    let sent: Vec<(i64, Millis)> = due.iter().map(|d| (d.delivery_id, d.submitted_at)).collect();
                    l.mark_dispatched(&sent)?;
                }
                Ok(Ok(()))
            })
            .await?;
        if let Err(why) = refused {
            return Err(StoreError::Unavailable(why));
        }
        start += n;
    }
    Ok(TrafficWritten { consignments: traffic.consignments, documents, answers, plan: plan(kinds) })
}

/// The documents and events of consignment `i`.
fn consignment(draws: &mut Draws, router: &Router, topics: &Topics, t: &Traffic, run: &str, i: usize) -> (Vec<NewDocument>, Vec<(Millis, Step)>) {
    let (origin, destination, post) = CORRIDORS[draws.below(CORRIDORS.len() as u64) as usize];
    let mut pick = draws.below(100);
    let mode = MODES.iter().find(|(_, w)| if pick < *w { true } else { pick -= w; false }).map_or("road", |m| m.0);
    let chapter = CHAPTERS[draws.below(CHAPTERS.len() as u64) as usize];
    let lodged = t.end - t.span_ms + (draws.unit() * t.span_ms as f64) as Millis;
    let arrived = lodged - 8 * HOUR + (draws.unit() * (24 * HOUR) as f64) as Millis;
    let ucr = Ucr::parse(&format!("SIM{run}-{i:07}")).unwrap_or_else(|_| unreachable!("SIM, hex digits and a number make a UCR"));
    let country = |c: &str| CountryCode::parse(c).unwrap_or_else(|_| unreachable!("the corridors are country codes"));
    let (origin, destination) = (country(origin), country(destination));
    let document = |kind: &DocumentType, at: Millis, deliveries: Vec<(AgencyId, String, String)>, dims: DocumentDims| NewDocument {
        id: Uuid::now_v7(),
        ucr: ucr.clone(),
        document_type: kind.clone(),
        schema_version: SchemaVersion::parse("1.0.0").unwrap_or_else(|_| unreachable!("a version")),
        schema_id: format!("urn:ventanilla:simulated:{kind}"),
        origin: origin.clone(),
        destination: destination.clone(),
        sender: t.trader.clone(),
        payload: json!({"simulated": true, "ucr": ucr, "modeOfTransport": mode, "hsChapter": chapter}).to_string(),
        idempotency_key: None,
        body_sha256: format!("simulated-{kind}-{ucr}"),
        submitted_at: at,
        version: 1,
        amends: None,
        rules: Default::default(),
        dims,
        seal: Default::default(),
        deliveries: deliveries
            .into_iter()
            .map(|(agency, topic, rule)| crate::store::PlannedDelivery { agency, topic, rule, selection: None })
            .collect(),
        risk: None,
        broker_available: true,
        backlog_full: false,
    };
    let route = |kind: &DocumentType, border_post: Option<&str>| {
        let facts = RoutingFacts {
            document_type: kind.clone(),
            origin: origin.clone(),
            destination: destination.clone(),
            hs_chapters: chapter.parse().into_iter().collect(),
            mode_of_transport: Some(mode.to_owned()),
            border_post: border_post.map(str::to_owned),
        };
        router.route(&facts).into_iter().map(|r| (topics.agency(&r.agency), r)).map(|(topic, r)| (r.agency, topic, r.rule)).collect::<Vec<_>>()
    };
    let kind_of = |a: &AgencyId| router.kind_of(a).unwrap_or("other").to_owned();
    let declaration = document(
        &t.declaration,
        lodged,
        route(&t.declaration, None),
        DocumentDims { transport_mode: Some(mode.into()), hs_chapter: Some(chapter.into()), border_post: None },
    );
    let border: Vec<_> = route(&t.border_notice, Some(post)).into_iter().filter(|(a, _, _)| kind_of(a) == "border").collect();
    let notice_at = arrived.min(lodged) - HOUR;
    let notice = document(
        &t.border_notice,
        notice_at,
        border.clone(),
        DocumentDims { transport_mode: Some(mode.into()), hs_chapter: None, border_post: Some(post.into()) },
    );
    let trader = Participant::Trader { id: t.trader.clone(), acts_for: Vec::new() };
    let mut steps: Vec<(Millis, Step)> = Vec::new();
    let answer = |doc: Uuid, agency: &AgencyId, status: AckStatus, at: Millis, reason: Option<&str>| {
        (at, Step::Answer(AckRecord { document_id: doc, agency: agency.clone(), status, reason: reason.map(str::to_owned), inspection: None, finding_facts: None, source: "http", by: format!("simulated {agency}"), at }))
    };
    for (agency, _, _) in &border {
        steps.push(answer(notice.id, agency, AckStatus::Released, arrived.max(notice_at + MINUTE), Some("arrived at the border post")));
    }
    for planned in &declaration.deliveries {
        let agency = &planned.agency;
        let kind = kind_of(agency);
        let d = draws.delay(delay_plan(&kind, mode)).max(4 * MINUTE);
        let decided = lodged + d;
        steps.push(answer(declaration.id, agency, AckStatus::Received, lodged + (d / 20).clamp(MINUTE, 30 * MINUTE), None));
        if kind == "sanitary" && draws.chance(0.15) {
            steps.push(answer(declaration.id, agency, AckStatus::Hold, lodged + d / 5, Some("inspection")));
        }
        if kind == "customs" && draws.chance(0.10) {
            steps.push(answer(declaration.id, agency, AckStatus::Query, lodged + d / 10, Some("please confirm the invoice value")));
            let r = crate::lifecycle::Response {
                document_id: declaration.id,
                text: "confirmed, see the commercial invoice".into(),
                agency: Some(agency.clone()),
                supporting: None,
                by: trader.clone(),
                at: lodged + d * 4 / 10,
            };
            steps.push((r.at, Step::Respond(r)));
        }
        let status = if draws.chance(0.03) { AckStatus::Rejected } else { AckStatus::Released };
        steps.push(answer(declaration.id, agency, status, decided, None));
    }
    (vec![notice, declaration], steps)
}

/// The kinds of agency of the region, each once.
pub fn kinds(region: &crate::config::RegionConfig) -> Vec<String> {
    let mut kinds: BTreeMap<String, ()> = BTreeMap::new();
    for a in &region.agencies {
        kinds.insert(a.kind.clone(), ());
    }
    kinds.into_keys().collect()
}
