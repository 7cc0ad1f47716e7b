//! `/v1/risk/rules`: the risk rules selected with, read and replaced at run time by an operator
//! (`crate::risk::changes`). `/v1/risk/models`: a model trained on the findings on demand
//! (`crate::risk::learning`). `/v1/risk/performance`: how selection performed
//! (`crate::risk::performance`). `/v1/risk/sellers`: a platform's sellers as inspected
//! (`crate::risk::sellers`). Agencies read why a delivery was selected on the delivery itself;
//! the rules are no one else's to read (whoever learns the profile can evade it).

use actix_web::{web, HttpRequest, HttpResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::errors::{ApiError, Code};
use super::policy::{Authenticated, Operator};
use super::request::read_typed_body;
use super::state::AppState;
use crate::config::RiskRuleConfig;
use crate::risk::RuleSet;

/// The body of `PUT /v1/risk/rules`: the whole set that replaces the one in use, and why.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskRulesChange {
    /// Why, kept in the audit log with who put the set (1 to 500 characters).
    #[schemars(extend("minLength" = 1, "maxLength" = 500))]
    pub reason: String,
    /// Every rule, in the region file's terms (`[[risk.rules]]`); an empty list selects on the
    /// budgets' random share alone.
    #[schemars(extend("maxItems" = 200))]
    pub rules: Vec<RiskRuleConfig>,
}

/// The risk rules in use.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RiskRules {
    /// 0 for the region file's rules; then 1, 2, 3... for each set operators put.
    pub version: i64,
    /// `region-file` or `operator`.
    pub source: &'static str,
    /// When the set was put (RFC 3339), by whom and why; absent for the region file's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub rules: Vec<RiskRuleConfig>,
}

fn answer(set: &RuleSet) -> RiskRules {
    let change = set.change.as_ref();
    RiskRules {
        version: set.version(),
        source: if change.is_some() { "operator" } else { "region-file" },
        changed_at: change.map(|c| crate::clock::rfc3339(c.at)),
        changed_by: change.map(|c| c.by.clone()),
        reason: change.map(|c| c.reason.clone()),
        rules: set.rules.clone(),
    }
}

/// `GET /v1/risk/rules`: the rules selected with now (operators).
pub async fn rules(who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let set = state.gateway.risk_rules(&who.0)?;
    Ok(HttpResponse::Ok().json(answer(&set)))
}

/// `PUT /v1/risk/rules`: replaces them (operators); 422 `invalid-risk-rules` changes nothing.
pub async fn put_rules(
    who: Operator,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (change, _bytes): (RiskRulesChange, _) = read_typed_body(&state, &who, &req, payload, |e| {
        ApiError::new(Code::InvalidRiskRules, format!("the body must be {{\"reason\": \"...\", \"rules\": [...]}}, each rule as in the region file's [[risk.rules]]: {e}"))
    })
    .await?;
    let set = state
        .gateway
        .put_risk_rules(&who.0, &change.reason, change.rules)
        .await?
        .map_err(|refused| ApiError::new(Code::InvalidRiskRules, refused.to_string()))?;
    Ok(HttpResponse::Ok().json(answer(&set)))
}

/// A model trained on demand: its version, whether it went live, and its figures.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainedModel {
    pub version: i64,
    /// Whether it replaced the live model: only if its precision at the budget on the held-back
    /// findings beats the live one's on the same findings (or none was live).
    pub live: bool,
    /// `logistic-regression`.
    pub kind: String,
    /// Findings trained on; the most recent fifth are held back to judge it.
    pub trained_on: usize,
    /// The first and last finding's time (RFC 3339).
    pub window_from: String,
    pub window_to: String,
    /// The features it reads, and what each weighs (logit per unit).
    pub features: Vec<String>,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    pub validation: crate::risk::model::Validation,
}

/// `POST /v1/risk/models`: trains a model on every finding now (operators); 409
/// `not-enough-findings` when none can be trained yet.
pub async fn train_model(who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let trained = state.gateway.train_risk_model(&who.0).await?.map_err(|why| ApiError::new(Code::NotEnoughFindings, why))?;
    let m = &trained.model;
    Ok(HttpResponse::Ok().json(TrainedModel {
        version: trained.version,
        live: trained.live,
        kind: m.kind.clone(),
        trained_on: m.trained_on,
        window_from: crate::clock::rfc3339(m.window_from),
        window_to: crate::clock::rfc3339(m.window_to),
        features: m.weights.features.clone(),
        coefficients: m.weights.coefficients.clone(),
        intercept: m.weights.intercept,
        validation: m.validation.clone(),
    }))
}

/// The period and agency of `GET /v1/risk/performance`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformanceQuery {
    /// RFC 3339 or a date (`2026-12-01`); by default 7 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or a date, not included; by default now.
    pub to: Option<String>,
    /// One agency (an operator's choice; an agency reads only its own).
    pub agency: Option<String>,
}

fn instant(name: &str, text: &str) -> Result<crate::clock::Millis, ApiError> {
    crate::clock::parse_rfc3339(text).ok_or_else(|| {
        ApiError::new(Code::InvalidQuery, format!("{name}={text:?} is not a date (2026-12-01) or an RFC 3339 time in UTC (2026-12-01T08:00:00Z) {}", crate::clock::RANGE))
    })
}

/// The period, as a risk figure reads it: `to` now by default, `from` 7 days before it, at most
/// 92 days long (a longer one is read as its last 92 days, and the answer's `from` says so); a
/// period that ends before it starts holds nothing.
fn risk_period(from: Option<&str>, to: Option<&str>) -> Result<(crate::clock::Millis, crate::clock::Millis), ApiError> {
    let to = match to {
        Some(t) => instant("to", t)?,
        None => crate::clock::now_millis(),
    };
    let from = match from {
        Some(f) => instant("from", f)?,
        None => to.saturating_sub(7 * 24 * 3_600_000).max(crate::clock::MIN_MILLIS),
    };
    let to = to.max(from);
    Ok((from.max(to - crate::risk::performance::MAX_PERIOD_MS), to))
}

/// The period and platform of `GET /v1/risk/sellers`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SellersQuery {
    /// RFC 3339 or a date (`2026-12-01`); by default 7 days before `to`.
    pub from: Option<String>,
    /// RFC 3339 or a date, not included; by default now.
    pub to: Option<String>,
    /// The platform (its participant id): an operator's choice (every submitter's parcels when
    /// left out); a platform reads only its own.
    pub platform: Option<String>,
}

/// `GET /v1/risk/sellers[?from=&to=&platform=]`: a platform reads its sellers' inspections and
/// irregularities over whole UTC days; an operator any platform's, or every submitter's.
pub async fn sellers(who: Authenticated, state: web::Data<AppState>, q: web::Query<SellersQuery>) -> Result<HttpResponse, ApiError> {
    let (from, to) = risk_period(q.from.as_deref(), q.to.as_deref())?;
    // Whole UTC days, so that no window is narrow enough to single out one parcel's finding.
    const DAY: crate::clock::Millis = 86_400_000;
    let from = from - from.rem_euclid(DAY);
    let to = to.saturating_add((DAY - to.rem_euclid(DAY)) % DAY).max(from + DAY);
    let report = state.gateway.risk_sellers(&who.0, who.1.clone(), from, to, q.platform.clone()).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /v1/risk/performance[?from=&to=&agency=]`: operators read every agency's figures, an
/// agency its own.
pub async fn performance(who: Authenticated, state: web::Data<AppState>, q: web::Query<PerformanceQuery>) -> Result<HttpResponse, ApiError> {
    let (from, to) = risk_period(q.from.as_deref(), q.to.as_deref())?;
    let agency = q
        .agency
        .as_deref()
        .map(crate::domain::AgencyId::parse)
        .transpose()
        .map_err(|e| ApiError::new(Code::NotFound, format!("no such agency: {e}")))?;
    let figures = state.gateway.risk_performance(&who.0, who.1.clone(), from, to, agency).await?;
    Ok(HttpResponse::Ok().json(figures))
}
