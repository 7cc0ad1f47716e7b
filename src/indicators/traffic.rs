//! Simulated traffic (`ventanilla simulate`): a month of consignments, or any span, written
//! through the gateway's own rules (acceptance, answers, responses) with the times they would
//! have had, so the release-time indicators can be seen and checked against known delays. Time
//! is compressed: a month is written in seconds.
//!
//! A consignment is an express parcel with the stated share ([`Rates::express`]; the type
//! `[indicators.simulation] express`): one document, by air, of an HS chapter no sanitary agency
//! reads, no border notice of its own, each agency deciding after [`EXPRESS_DELAY`].
//!
//! Any other is a customs declaration and the carrier's border-crossing notice:
//!
//! - its corridor, transport mode and HS chapter are drawn from [`CORRIDORS`], [`MODES`] and
//!   [`CHAPTERS`]; the declaration is routed by the region's rules, the notice to the border post
//!   only (the border agency of the destination, which answers it when the goods arrive);
//! - it is lodged at a time drawn evenly over the span; with the stated share
//!   ([`Rates::pre_arrival`]) the goods arrive up to 16 hours after (pre-arrival lodgement), else
//!   up to 8 hours before (the default share, 2/3, draws the arrival evenly over that day);
//! - each agency receiving the declaration decides after a delay drawn from [`delay_plan`]: its
//!   minimum plus an exponential part, so its mean is the plan's and its median
//!   `min + (mean - min) ln 2`; it acknowledges receipt first, sanitary agencies hold 15% of the
//!   goods, customs agencies query 10% of the declarations (the trader answers), and 3% of the
//!   decisions are rejections;
//! - with the stated share ([`Rates::inspected_by_several`]) every customs and sanitary agency
//!   of the declaration sends it to physical inspection (red): of those, the stated share
//!   ([`Rates::joint`]) is inspected jointly, each agency deciding within 30 minutes of the
//!   first, the others one agency after another, 3 to 5 hours apart;
//! - with the stated share ([`Rates::resubmission`]) the first agency rejects the declaration,
//!   the trader amends it an hour later, and every agency decides the new version as above
//!   (no hold, query or other rejection then).
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
/// HS chapters of express parcels: those of [`CHAPTERS`] no sanitary agency reads.
pub const EXPRESS_CHAPTERS: [&str; 4] = ["84", "87", "30", "47"];
/// The decision delay of every agency for an express parcel: (minimum, mean), in ms.
pub const EXPRESS_DELAY: (Millis, Millis) = (6 * MINUTE, HOUR);

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

/// The shares the traffic is drawn with, each from 0 to 1 (`ventanilla simulate --pre-arrival
/// ...`): what the TFA monitor's indicators recover (docs/tfa.md).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rates {
    /// Of the declared consignments, those lodged before their goods arrive (Art. 7.1).
    pub pre_arrival: f64,
    /// Of all consignments, the express parcels (Art. 7.8).
    pub express: f64,
    /// Of the declared consignments, those every customs and sanitary agency sends to physical
    /// inspection (Art. 7.4, 8).
    pub inspected_by_several: f64,
    /// Of those, the ones inspected jointly (Art. 8).
    pub joint: f64,
    /// Of the declared consignments, those rejected once and resubmitted (Art. 10.1, 10.4).
    pub resubmission: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates { pre_arrival: 2.0 / 3.0, express: 0.0, inspected_by_several: 0.0, joint: 0.0, resubmission: 0.0 }
    }
}

impl Rates {
    /// Checks each is a share: from 0 to 1.
    pub fn parse(self) -> Result<Rates, String> {
        for (name, v) in [
            ("--pre-arrival", self.pre_arrival),
            ("--express", self.express),
            ("--inspected-by-several", self.inspected_by_several),
            ("--joint", self.joint),
            ("--resubmission", self.resubmission),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} {v} is not a share: give one from 0 to 1"));
            }
        }
        Ok(self)
    }
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
    /// How many traders lodge them in turn: `trader`, then `trader-2`, `trader-3`... (the
    /// public figures suppress a cell of one trader's consignments alone).
    pub traders: usize,
    /// The document type that lodges each consignment, and the one that tells its arrival at
    /// the border post (`[indicators.simulation]`).
    pub declaration: DocumentType,
    pub border_notice: DocumentType,
    /// The document type of express parcels, when the region names one.
    pub express: Option<DocumentType>,
    pub rates: Rates,
}

/// What a run wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWritten {
    pub consignments: usize,
    pub documents: usize,
    pub answers: usize,
    pub plan: Vec<PlannedDelay>,
    /// The shares drawn with.
    pub rates: Rates,
    /// What was drawn: express parcels, consignments inspected by several agencies and of
    /// those jointly, consignments resubmitted.
    pub express: usize,
    pub inspected_by_several: usize,
    pub joint: usize,
    pub resubmitted: usize,
}

/// Consignments written per transaction.
const BATCH: usize = 200;

/// One event of a consignment, in time order.
enum Step {
    Answer(AckRecord),
    Respond(crate::lifecycle::Response),
    Amend(Box<NewDocument>, crate::lifecycle::AmendmentOf),
}

/// What one consignment was drawn as.
#[derive(Default)]
struct Drawn {
    express: bool,
    inspected_by_several: bool,
    joint: bool,
    resubmitted: bool,
}

/// Writes the traffic into `store`, [`BATCH`] consignments per transaction.
pub async fn simulate(store: &dyn Store, router: &Router, topics: &Topics, traffic: &Traffic, kinds: &[String]) -> Result<TrafficWritten, StoreError> {
    if traffic.rates.express > 0.0 && traffic.express.is_none() {
        return Err(StoreError::Unavailable(
            "express parcels need their document type: name it in the region file's [indicators.simulation] (express = \"...\")".into(),
        ));
    }
    let mut draws = Draws(traffic.seed);
    let (mut documents, mut answers) = (0, 0);
    let (mut express, mut inspected, mut joint, mut resubmitted) = (0, 0, 0, 0);
    let run = format!("{:X}", traffic.seed % 0xFFFF);
    let mut start = 0;
    while start < traffic.consignments {
        let n = BATCH.min(traffic.consignments - start);
        let mut docs = Vec::with_capacity(2 * n);
        let mut steps: Vec<(Millis, Step)> = Vec::new();
        for i in start..start + n {
            let (d, s, drawn) = consignment(&mut draws, router, topics, traffic, &run, i);
            docs.extend(d);
            steps.extend(s);
            express += usize::from(drawn.express);
            inspected += usize::from(drawn.inspected_by_several);
            joint += usize::from(drawn.joint);
            resubmitted += usize::from(drawn.resubmitted);
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
                        Step::Amend(doc, of) => {
                            if let Err(r) = crate::lifecycle::amend_in(l, (**doc).clone(), of, &crate::document_types::DocumentTypes::default())? {
                                return Ok(Err(format!("a simulated amendment of {} was refused: {r}", doc.ucr)));
                            }
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
    Ok(TrafficWritten {
        consignments: traffic.consignments,
        documents,
        answers,
        plan: plan(kinds),
        rates: traffic.rates,
        express,
        inspected_by_several: inspected,
        joint,
        resubmitted,
    })
}

/// The documents and events of consignment `i`, and what it was drawn as.
fn consignment(draws: &mut Draws, router: &Router, topics: &Topics, t: &Traffic, run: &str, i: usize) -> (Vec<NewDocument>, Vec<(Millis, Step)>, Drawn) {
    let trader_id = match i % t.traders.max(1) {
        0 => t.trader.clone(),
        k => format!("{}-{}", t.trader, k + 1),
    };
    let (origin, destination, post) = CORRIDORS[draws.below(CORRIDORS.len() as u64) as usize];
    let express = t.express.as_ref().filter(|_| draws.chance(t.rates.express));
    let mut pick = draws.below(100);
    let mode = match express {
        Some(_) => "air",
        None => MODES.iter().find(|(_, w)| if pick < *w { true } else { pick -= w; false }).map_or("road", |m| m.0),
    };
    let chapter = match express {
        Some(_) => EXPRESS_CHAPTERS[draws.below(EXPRESS_CHAPTERS.len() as u64) as usize],
        None => CHAPTERS[draws.below(CHAPTERS.len() as u64) as usize],
    };
    let lodged = t.end - t.span_ms + (draws.unit() * t.span_ms as f64) as Millis;
    let arrived = if draws.chance(t.rates.pre_arrival) {
        lodged + 1 + (draws.unit() * (16 * HOUR) as f64) as Millis
    } else {
        lodged - (draws.unit() * (8 * HOUR) as f64) as Millis
    };
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
        sender: trader_id.clone(),
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
    let trader = Participant::Trader { id: trader_id.clone(), acts_for: Vec::new() };
    let mut steps: Vec<(Millis, Step)> = Vec::new();
    let answer = |doc: Uuid, agency: &AgencyId, status: AckStatus, at: Millis, reason: Option<&str>| {
        (at, Step::Answer(AckRecord { document_id: doc, agency: agency.clone(), status, reason: reason.map(str::to_owned), inspection: None, finding_facts: None, source: "http", by: format!("simulated {agency}"), at }))
    };
    let mut drawn = Drawn::default();

    if let Some(kind) = express {
        drawn.express = true;
        let dims = DocumentDims { transport_mode: Some(mode.into()), hs_chapter: Some(chapter.into()), border_post: None };
        let parcel = document(kind, lodged, route(kind, None), dims);
        for planned in &parcel.deliveries {
            let d = draws.delay(EXPRESS_DELAY);
            steps.push(answer(parcel.id, &planned.agency, AckStatus::Received, lodged + MINUTE, None));
            steps.push(answer(parcel.id, &planned.agency, AckStatus::Released, lodged + d, None));
        }
        return (vec![parcel], steps, drawn);
    }

    let mut declaration = document(
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
    for (agency, _, _) in &border {
        steps.push(answer(notice.id, agency, AckStatus::Released, arrived.max(notice_at + MINUTE), Some("arrived at the border post")));
    }
    // Physical inspection by every customs and sanitary agency: selected red by a rule.
    drawn.inspected_by_several = draws.chance(t.rates.inspected_by_several);
    drawn.joint = drawn.inspected_by_several && draws.chance(t.rates.joint);
    drawn.resubmitted = draws.chance(t.rates.resubmission);
    let inspected = drawn.inspected_by_several;
    let inspects = |a: &AgencyId| inspected && matches!(kind_of(a).as_str(), "customs" | "sanitary");
    let red = json!({"channel": "red", "score": 90.0, "source": "rule", "reasons": []}).to_string();
    for planned in &mut declaration.deliveries {
        if inspects(&planned.agency) {
            planned.selection = Some(red.clone());
        }
    }
    // Each agency's decision after `from`: its own delay, or the inspecting agencies' as drawn
    // (jointly: within 30 minutes of the first; else one after another, 3 to 5 hours apart).
    let joint = drawn.joint;
    let decisions = |draws: &mut Draws, from: Millis, deliveries: &[crate::store::PlannedDelivery]| -> Vec<Millis> {
        let first = from + draws.delay(delay_plan("customs", mode)).max(4 * MINUTE);
        // The latest inspecting agency's decision so far.
        let mut previous: Option<Millis> = None;
        deliveries
            .iter()
            .map(|planned| {
                if inspects(&planned.agency) {
                    let at = match (joint, previous) {
                        (true, _) => first + (draws.unit() * (30 * MINUTE) as f64) as Millis,
                        (false, None) => first,
                        (false, Some(before)) => before + 3 * HOUR + (draws.unit() * (2 * HOUR) as f64) as Millis,
                    };
                    previous = Some(at);
                    at
                } else {
                    from + draws.delay(delay_plan(&kind_of(&planned.agency), mode)).max(4 * MINUTE)
                }
            })
            .collect()
    };
    if drawn.resubmitted {
        // The first agency rejects the declaration; the trader amends it an hour later.
        if let Some(rejecter) = declaration.deliveries.first().map(|p| p.agency.clone()) {
            let rejected_at = lodged + draws.delay(delay_plan(&kind_of(&rejecter), mode)).max(4 * MINUTE);
            steps.push(answer(declaration.id, &rejecter, AckStatus::Rejected, rejected_at, Some("the invoice does not match the declared value")));
            let amended_at = rejected_at + HOUR;
            let v2 = NewDocument {
                id: Uuid::now_v7(),
                body_sha256: format!("simulated-{}-{ucr}-v2", t.declaration),
                submitted_at: amended_at,
                ..declaration.clone()
            };
            for (planned, at) in v2.deliveries.iter().zip(decisions(draws, amended_at, &v2.deliveries)) {
                steps.push(answer(v2.id, &planned.agency, AckStatus::Released, at, None));
            }
            let of = crate::lifecycle::AmendmentOf { previous: declaration.id, reason: "invoice value corrected".into(), by: trader.clone() };
            steps.push((amended_at, Step::Amend(Box::new(v2), of)));
            return (vec![notice, declaration], steps, drawn);
        }
    }
    let decided_at = decisions(draws, lodged, &declaration.deliveries);
    for (planned, decided) in declaration.deliveries.iter().zip(decided_at) {
        let agency = &planned.agency;
        let kind = kind_of(agency);
        let d = decided - lodged;
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
    (vec![notice, declaration], steps, drawn)
}

/// The kinds of agency of the region, each once.
pub fn kinds(region: &crate::config::RegionConfig) -> Vec<String> {
    let mut kinds: BTreeMap<String, ()> = BTreeMap::new();
    for a in &region.agencies {
        kinds.insert(a.kind.clone(), ());
    }
    kinds.into_keys().collect()
}
