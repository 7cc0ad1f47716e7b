//! What risk profiling reads in a document: every party it names, its declared value and
//! currency, gross mass, quantity, every line's HS code and origin of goods, its route and mode,
//! the platform it came through. Found by the JSON pointers of each type's table
//! (`[document_types.<type>.risk]`, and the type's `hs_codes`, `mode_of_transport` and
//! `border_post`), so that a standard onboarded as data is profiled without code.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde_json::Value;

use crate::config::{DocumentTypeConfig, RiskPartyConfig};
use crate::document_types::{pointers, readings, scheme_of, PayloadPointer, Reading as TableReading, Scheme};

/// A fact a rule may read; a type describes it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    Parties,
    Value,
    GrossMass,
    Quantity,
    HsCodes,
    OriginOfGoods,
    BorderPost,
    ModeOfTransport,
    Platform,
}

impl Fact {
    /// The setting of a type's table that describes it.
    pub fn setting(self) -> &'static str {
        match self {
            Fact::Parties => "risk.parties",
            Fact::Value => "risk.value",
            Fact::GrossMass => "risk.gross_mass",
            Fact::Quantity => "risk.quantity",
            Fact::HsCodes => "hs_codes",
            Fact::OriginOfGoods => "risk.origin_of_goods",
            Fact::BorderPost => "border_post",
            Fact::ModeOfTransport => "mode_of_transport",
            Fact::Platform => "risk.platform",
        }
    }

    /// What it is, in words.
    pub fn words(self) -> &'static str {
        match self {
            Fact::Parties => "parties",
            Fact::Value => "declared value",
            Fact::GrossMass => "gross mass",
            Fact::Quantity => "quantity",
            Fact::HsCodes => "HS codes",
            Fact::OriginOfGoods => "origin of goods",
            Fact::BorderPost => "border post",
            Fact::ModeOfTransport => "transport mode",
            Fact::Platform => "platform",
        }
    }
}

/// The facts of one document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskFacts {
    pub document_type: String,
    /// The envelope's countries (ISO 3166 alpha-2).
    pub origin: String,
    pub destination: String,
    pub border_post: Option<String>,
    pub mode_of_transport: Option<String>,
    /// Every line's HS code, digits only (`0201.30` is `020130`).
    pub hs_codes: Vec<String>,
    /// Every party named, as `(role, SCHEME:VALUE)`.
    pub parties: Vec<(String, String)>,
    pub value: Option<f64>,
    pub currency: Option<String>,
    /// Kilograms.
    pub gross_mass: Option<f64>,
    pub quantity: Option<f64>,
    /// Every line's country of origin, each once.
    pub origins_of_goods: Vec<String>,
    /// The platform's identifier.
    pub platform: Option<String>,
}

#[derive(Debug, Clone)]
struct PartyReading {
    identifier: Vec<PayloadPointer>,
    scheme: Scheme,
}

/// How to read one type's facts.
#[derive(Debug, Clone, Default)]
struct Reading {
    parties: BTreeMap<String, PartyReading>,
    value: Vec<PayloadPointer>,
    currency: Vec<PayloadPointer>,
    gross_mass: Vec<PayloadPointer>,
    quantity: Vec<PayloadPointer>,
    hs_codes: Vec<PayloadPointer>,
    origin_of_goods: Vec<PayloadPointer>,
    border_post: Vec<TableReading>,
    mode_of_transport: Vec<TableReading>,
    modes: BTreeMap<String, String>,
    /// The region's names of schemes read from the payload (the submitter's `scheme_names`).
    scheme_names: BTreeMap<String, String>,
    platform: Vec<PayloadPointer>,
}

/// Every type's reading, compiled once at start.
#[derive(Debug, Clone, Default)]
pub struct FactReadings {
    types: BTreeMap<String, Reading>,
}

impl FactReadings {
    /// Compiles the region's tables; an error names the type and the setting.
    pub fn new(types: &BTreeMap<String, DocumentTypeConfig>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, c) in types {
            let at = |setting: &str| format!("[document_types.{name}] {setting}");
            let r = &c.risk;
            let mut parties = BTreeMap::new();
            for (role, RiskPartyConfig { identifier, scheme }) in &r.parties {
                let identifier = pointers(&at(&format!("risk.parties.{role}.identifier")), identifier)?;
                if identifier.is_empty() {
                    return Err(format!("{}: give the JSON pointer of the party's identifier", at(&format!("risk.parties.{role}.identifier"))));
                }
                let scheme = scheme_of(&at(&format!("risk.parties.{role}.scheme")), scheme)?;
                parties.insert(role.clone(), PartyReading { identifier, scheme });
            }
            out.insert(
                name.clone(),
                Reading {
                    parties,
                    value: pointers(&at("risk.value"), &r.value)?,
                    currency: pointers(&at("risk.currency"), &r.currency)?,
                    gross_mass: pointers(&at("risk.gross_mass"), &r.gross_mass)?,
                    quantity: pointers(&at("risk.quantity"), &r.quantity)?,
                    hs_codes: pointers(&at("hs_codes"), &c.hs_codes)?,
                    origin_of_goods: pointers(&at("risk.origin_of_goods"), &r.origin_of_goods)?,
                    border_post: readings(&at("border_post"), &c.border_post)?,
                    mode_of_transport: readings(&at("mode_of_transport"), &c.mode_of_transport)?,
                    modes: c.modes.clone(),
                    scheme_names: c.submitter.scheme_names.clone(),
                    platform: pointers(&at("risk.platform"), &r.platform)?,
                },
            );
        }
        Ok(FactReadings { types: out })
    }

    /// The described types, by name.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// Whether `document_type` describes `fact`.
    pub fn describes(&self, document_type: &str, fact: Fact) -> bool {
        let Some(r) = self.types.get(document_type) else { return false };
        !match fact {
            Fact::Parties => r.parties.is_empty(),
            Fact::Value => r.value.is_empty(),
            Fact::GrossMass => r.gross_mass.is_empty(),
            Fact::Quantity => r.quantity.is_empty(),
            Fact::HsCodes => r.hs_codes.is_empty(),
            Fact::OriginOfGoods => r.origin_of_goods.is_empty(),
            Fact::BorderPost => r.border_post.is_empty(),
            Fact::ModeOfTransport => r.mode_of_transport.is_empty(),
            Fact::Platform => r.platform.is_empty(),
        }
    }

    /// The facts of `payload`, a document of `document_type` between the envelope's `origin`
    /// and `destination`. What the payload does not state is left out; nothing here refuses a
    /// document (validation did).
    pub fn read(&self, document_type: &str, origin: &str, destination: &str, payload: &Value) -> RiskFacts {
        let mut f = RiskFacts {
            document_type: document_type.to_owned(),
            origin: origin.to_owned(),
            destination: destination.to_owned(),
            ..RiskFacts::default()
        };
        let Some(r) = self.types.get(document_type) else { return f };
        for (role, p) in &r.parties {
            for ptr in &p.identifier {
                ptr.each(payload, &mut |indices, value| {
                    let Some(value) = scalar(value) else { return ControlFlow::Continue(()) };
                    let scheme = match &p.scheme {
                        Scheme::Fixed(s) => Some(s.clone()),
                        // The scheme beside the value: read at the same items, or else the first.
                        Scheme::At(list) => list
                            .iter()
                            .find_map(|s| s.first_at(indices, payload))
                            .and_then(|v| scalar(&v))
                            .or_else(|| list.iter().find_map(|s| s.first_at(&[], payload)).and_then(|v| scalar(&v))),
                    };
                    if let Some(scheme) = scheme {
                        // As the submitter's is named, so a party is one whoever reads it.
                        let scheme = r.scheme_names.get(&scheme).unwrap_or(&scheme);
                        f.parties.push((role.clone(), format!("{scheme}:{value}")));
                    }
                    ControlFlow::Continue(())
                });
            }
        }
        f.value = sum(&r.value, payload);
        f.currency = first_text(&r.currency, payload);
        f.gross_mass = sum(&r.gross_mass, payload);
        f.quantity = sum(&r.quantity, payload);
        f.hs_codes = r
            .hs_codes
            .iter()
            .flat_map(|p| p.reached(payload))
            .filter_map(|v| v.as_str().map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>()))
            .filter(|c| !c.is_empty())
            .collect();
        let mut origins: Vec<String> = r.origin_of_goods.iter().flat_map(|p| p.reached(payload)).filter_map(|v| v.as_str().map(str::to_owned)).collect();
        origins.sort();
        origins.dedup();
        f.origins_of_goods = origins;
        let read = |list: &[TableReading]| list.iter().find_map(|p| p.first_at(&[], payload)).and_then(|v| scalar(&v));
        f.border_post = read(&r.border_post);
        f.mode_of_transport = read(&r.mode_of_transport).map(|m| r.modes.get(&m).cloned().unwrap_or(m));
        f.platform = first_text(&r.platform, payload);
        f
    }
}

/// A string, or a number's digits.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first_text(list: &[PayloadPointer], payload: &Value) -> Option<String> {
    list.iter().find_map(|p| p.reached(payload).into_iter().next()).and_then(scalar)
}

/// The values of the first pointer that finds any, added up (one total, or every line's).
fn sum(list: &[PayloadPointer], payload: &Value) -> Option<f64> {
    list.iter().find_map(|p| {
        let numbers: Vec<f64> = p.reached(payload).into_iter().filter_map(number).collect();
        (!numbers.is_empty()).then(|| numbers.iter().sum())
    })
}

/// A number, or a string that holds one (some standards write amounts as text).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
}

