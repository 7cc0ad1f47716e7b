//! What the gateway reads in a document of each type: its submitting party, the facts routing
//! looks at and the consignment reference, found by JSON pointers the region file gives per type
//! (`[document_types.<type>]`). A document type is its schema files plus this table: onboarding
//! a standard's document needs no code, and no type name is written in the gateway's rules.
//!
//! A pointer is RFC 6901, with one addition: a `*` token stands for every item of an array
//! (`/goodsItems/*/hsCode` is the HS code of every goods item). Where a setting lists several
//! pointers, a single value (the party's identifier, the transport mode...) is the first one
//! the payload has; HS codes are read from all of them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use std::ops::ControlFlow;

use serde_json::Value;

use crate::config::{DocumentTypeConfig, SubmitterConfig};
use crate::pointer::Violation;

/// A pointer into a payload, `*` standing for every item of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadPointer {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    EveryItem,
}

impl PayloadPointer {
    /// Parses `/a/*/b` (RFC 6901 escapes `~0` and `~1` apply to member names).
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("{text:?} is not a JSON pointer: it must start with \"/\" (for example \"/declarant/identifier/value\")"));
        };
        let mut steps = Vec::new();
        for token in rest.split('/') {
            if token == "*" {
                steps.push(Step::EveryItem);
                continue;
            }
            if token.replace("~0", "").replace("~1", "").contains('~') {
                return Err(format!("{text:?}: \"~\" in a JSON pointer must be written ~0 (and \"/\" inside a name ~1)"));
            }
            steps.push(Step::Member(token.replace("~1", "/").replace("~0", "~")));
        }
        Ok(PayloadPointer { text: text.to_owned(), steps })
    }

    /// Its tokens: a member name (or an array index, as written), `None` for `*`.
    pub fn tokens(&self) -> impl Iterator<Item = Option<&str>> {
        self.steps.iter().map(|s| match s {
            Step::Member(m) => Some(m.as_str()),
            Step::EveryItem => None,
        })
    }

    /// The pointer as written in the region file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Calls `found` with each value it reaches in `payload`, in document order, and the index
    /// taken at each `*` on the way, until `found` breaks. Nothing is allocated for a pointer
    /// without `*`; the indices of one with `*` are kept in one vector.
    pub fn each<'a>(&self, payload: &'a Value, found: &mut dyn FnMut(&[usize], &'a Value) -> ControlFlow<()>) {
        fn go<'a>(steps: &[Step], v: &'a Value, indices: &mut Vec<usize>, found: &mut dyn FnMut(&[usize], &'a Value) -> ControlFlow<()>) -> ControlFlow<()> {
            let Some((step, rest)) = steps.split_first() else {
                return found(indices, v);
            };
            match (step, v) {
                (Step::EveryItem, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        indices.push(i);
                        let flow = go(rest, item, indices, found);
                        indices.pop();
                        flow?;
                    }
                    ControlFlow::Continue(())
                }
                (Step::Member(name), Value::Object(map)) => map.get(name).map_or(ControlFlow::Continue(()), |next| go(rest, next, indices, found)),
                (Step::Member(index), Value::Array(items)) => {
                    index.parse::<usize>().ok().and_then(|i| items.get(i)).map_or(ControlFlow::Continue(()), |next| go(rest, next, indices, found))
                }
                _ => ControlFlow::Continue(()),
            }
        }
        let _ = go(&self.steps, payload, &mut Vec::new(), found);
    }

    /// The concrete pointer of a value reached with `indices` (each `*` replaced by its index).
    pub fn concrete(&self, indices: &[usize]) -> String {
        let mut at = String::new();
        let mut taken = indices.iter();
        for step in &self.steps {
            at.push('/');
            match step {
                Step::Member(name) => at.push_str(&crate::pointer::escape(name)),
                Step::EveryItem => match taken.next() {
                    Some(i) => at.push_str(&i.to_string()),
                    None => at.push('*'),
                },
            }
        }
        at
    }

    /// Every value it reaches in `payload`, with its concrete pointer (`*` replaced by the index).
    pub fn values<'a>(&self, payload: &'a Value) -> Vec<(String, &'a Value)> {
        let mut out = Vec::new();
        self.each(payload, &mut |indices, v| {
            out.push((self.concrete(indices), v));
            ControlFlow::Continue(())
        });
        out
    }

    /// Every value it reaches in `payload`, without their pointers (no text built per value).
    pub fn reached<'a>(&self, payload: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        self.each(payload, &mut |_, v| {
            out.push(v);
            ControlFlow::Continue(())
        });
        out
    }

    /// The first value it reaches, and its concrete pointer (the only text built).
    pub fn first<'a>(&self, payload: &'a Value) -> Option<(String, &'a Value)> {
        let mut first = None;
        self.each(payload, &mut |indices, v| {
            first = Some((self.concrete(indices), v));
            ControlFlow::Break(())
        });
        first
    }

    /// The first value it reaches taking, at its first `*`s, the items `indices` name (another
    /// pointer's value's, to read what is beside it: a party's scheme beside its identifier);
    /// a `*` past them takes every item.
    pub fn first_at<'a>(&self, indices: &[usize], payload: &'a Value) -> Option<&'a Value> {
        let mut v = payload;
        let mut taken = indices.iter();
        for (k, step) in self.steps.iter().enumerate() {
            v = match (step, v) {
                (Step::EveryItem, Value::Array(items)) => match taken.next() {
                    Some(i) => items.get(*i)?,
                    None => {
                        let rest = PayloadPointer { text: String::new(), steps: self.steps[k..].to_vec() };
                        return rest.first(v).map(|(_, v)| v);
                    }
                },
                (Step::Member(name), Value::Object(map)) => map.get(name)?,
                (Step::Member(index), Value::Array(items)) => items.get(index.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }
}

/// Where a fact of a type's table is read (issue 29, item 3): at a JSON pointer; computed from
/// fields, in a small vocabulary that is not a language; or the same for every document.
///
/// | written | read |
/// |---|---|
/// | `/a/*/b` | the value there |
/// | `locode:/a/b` | the country of the UN/LOCODE there (`ARBUE` is `AR`) |
/// | `country-name:/a/b` | the ISO code of the country named there (`México` is `MX`; a name not known is kept as written) |
/// | `{/a/country}-{/a/type}` | a text built from fields, each `{pointer}` replaced by its value (a scheme from a country and a type: `AR-CUIT`) |
/// | `=sea` | the text after `=`, for every document of the type |
#[derive(Debug, Clone)]
pub enum Reading {
    At(PayloadPointer),
    LocodeCountry(PayloadPointer),
    CountryName(PayloadPointer),
    /// The literal text between fields, and the fields; it gives a value only where every field
    /// has one (read at the first field's items).
    Template(Vec<TemplatePart>),
    Constant(String),
}

/// What a reading gives for one value it is computed from: the fact, or (`Err`) that value,
/// which gives none.
pub type Computed<'a> = Result<Cow<'a, Value>, &'a Value>;

/// A piece of a [`Reading::Template`].
#[derive(Debug, Clone)]
pub enum TemplatePart {
    Text(String),
    Field(PayloadPointer),
}

impl Reading {
    /// Parses a setting as the region file writes it (the table above).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with('/') {
            return PayloadPointer::parse(text).map(Reading::At);
        }
        if let Some(rest) = text.strip_prefix("locode:") {
            return PayloadPointer::parse(rest).map(Reading::LocodeCountry);
        }
        if let Some(rest) = text.strip_prefix("country-name:") {
            return PayloadPointer::parse(rest).map(Reading::CountryName);
        }
        if let Some(rest) = text.strip_prefix('=') {
            if rest.is_empty() {
                return Err(format!("{text:?}: a constant gives its value after \"=\" (\"=sea\")"));
            }
            return Ok(Reading::Constant(rest.to_owned()));
        }
        if text.contains('{') {
            let mut parts = Vec::new();
            let mut rest = text;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    parts.push(TemplatePart::Text(rest[..open].to_owned()));
                }
                let Some(close) = rest[open..].find('}') else {
                    return Err(format!("{text:?}: a field opened with \"{{\" is closed with \"}}\""));
                };
                let field = PayloadPointer::parse(&rest[open + 1..open + close]).map_err(|e| format!("{text:?}: {e}"))?;
                parts.push(TemplatePart::Field(field));
                rest = &rest[open + close + 1..];
            }
            if !rest.is_empty() {
                parts.push(TemplatePart::Text(rest.to_owned()));
            }
            return Ok(Reading::Template(parts));
        }
        Err(format!(
            "{text:?} is not a JSON pointer (it must start with \"/\", for example \"/declarant/identifier/value\"), \
             nor a computed fact: \"locode:/pointer\", \"country-name:/pointer\", \"{{/pointer}}-{{/pointer}}\" or \"=constant\""
        ))
    }

    /// The pointers it reads (none for a constant), for the start to check against the schema.
    pub fn pointers(&self) -> Vec<&PayloadPointer> {
        match self {
            Reading::At(p) | Reading::LocodeCountry(p) | Reading::CountryName(p) => vec![p],
            Reading::Template(parts) => parts.iter().filter_map(|p| if let TemplatePart::Field(f) = p { Some(f) } else { None }).collect(),
            Reading::Constant(_) => Vec::new(),
        }
    }

    /// The pointer whose values drive it: each of its values is one of the reading's.
    fn driver(&self) -> Option<&PayloadPointer> {
        self.pointers().into_iter().next()
    }

    /// What it gives for one value of its driver, reached with `indices` at its `*`s.
    fn computed<'a>(&self, indices: &[usize], v: &'a Value, payload: &'a Value) -> Option<Cow<'a, Value>> {
        let text = |s: String| Some(Cow::Owned(Value::String(s)));
        match self {
            Reading::At(_) => Some(Cow::Borrowed(v)),
            Reading::LocodeCountry(_) => text(crate::countries::of_locode(v.as_str()?)?),
            Reading::CountryName(_) => {
                let name = v.as_str()?;
                text(crate::countries::of_name(name).map_or_else(|| name.to_owned(), str::to_owned))
            }
            Reading::Template(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        TemplatePart::Text(t) => out.push_str(t),
                        TemplatePart::Field(f) => match f.first_at(indices, payload)? {
                            Value::String(s) => out.push_str(s),
                            Value::Number(n) => out.push_str(&n.to_string()),
                            _ => return None,
                        },
                    }
                }
                text(out)
            }
            Reading::Constant(c) => text(c.clone()),
        }
    }

    /// Calls `found` with each value it gives in `payload` and the index taken at each `*` of
    /// the pointer it is read from, until `found` breaks (see [`PayloadPointer::each`]). A value
    /// it is computed from that gives nothing (a text that is no UN/LOCODE) is passed over.
    pub fn each<'a>(&self, payload: &'a Value, found: &mut dyn FnMut(&[usize], Cow<'a, Value>) -> ControlFlow<()>) {
        self.each_or_not(payload, &mut |indices, v| match v {
            Ok(value) => found(indices, value),
            Err(_) => ControlFlow::Continue(()),
        });
    }

    /// [`Reading::each`], with each value it is computed from that gives nothing as `Err`, so
    /// that a check can refuse it rather than pass it over.
    pub fn each_or_not<'a>(&self, payload: &'a Value, found: &mut dyn FnMut(&[usize], Computed<'a>) -> ControlFlow<()>) {
        match self.driver() {
            None => {
                if let Some(v) = self.computed(&[], payload, payload) {
                    let _ = found(&[], Ok(v));
                }
            }
            Some(driver) => driver.each(payload, &mut |indices, v| found(indices, self.computed(indices, v, payload).ok_or(v))),
        }
    }

    /// Why a value it is computed from gave nothing, in words for the submitter.
    pub fn gives_nothing(&self) -> &'static str {
        match self {
            Reading::LocodeCountry(_) => "it is not a UN/LOCODE (the two letters of a country and three of a place, as BRSSZ)",
            Reading::CountryName(_) => "it is not a country's name",
            Reading::Template(_) => "a field it is built from is missing or not a text",
            Reading::At(_) | Reading::Constant(_) => "it gives nothing",
        }
    }

    /// Where a value it gave was read: the concrete pointer of the field it comes from (the
    /// first field of a template), empty for a constant.
    pub fn concrete(&self, indices: &[usize]) -> String {
        self.driver().map(|p| p.concrete(indices)).unwrap_or_default()
    }

    /// The first value it gives reading, at its pointer's first `*`s, the items `indices` name
    /// (see [`PayloadPointer::first_at`]).
    pub fn first_at<'a>(&self, indices: &[usize], payload: &'a Value) -> Option<Cow<'a, Value>> {
        if let Reading::At(p) = self {
            return p.first_at(indices, payload).map(Cow::Borrowed);
        }
        let Some(driver) = self.driver() else { return self.computed(&[], payload, payload) };
        // Every `*` of the pointer given an item: one value, reached straight (a party's scheme
        // read beside each of its identifiers costs no walk over the others).
        let stars = driver.tokens().filter(Option::is_none).count();
        if indices.len() >= stars {
            let at = &indices[..stars];
            return driver.first_at(at, payload).and_then(|v| self.computed(at, v, payload));
        }
        let mut first = None;
        driver.each(payload, &mut |reached, v| {
            if !reached.starts_with(&indices[..indices.len().min(reached.len())]) {
                return ControlFlow::Continue(());
            }
            first = self.computed(reached, v, payload);
            if first.is_some() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        first
    }
}

/// A value as a violation quotes it: JSON, cut at 60 characters.
fn short_value(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// Compiles a setting's readings; an error names the setting (`what`).
pub(crate) fn readings(what: &str, list: &[String]) -> Result<Vec<Reading>, String> {
    list.iter().map(|p| Reading::parse(p).map_err(|e| format!("{what}: {e}"))).collect()
}

/// The first text any of `list` gives in `payload` (a string, or a number's digits).
fn first_text(list: &[Reading], payload: &Value) -> Option<String> {
    list.iter().find_map(|r| r.first_at(&[], payload)).and_then(|v| crate::identifiers::as_text(&v))
}

/// Where a party identifier's scheme is: in the payload, or the same for every document of the
/// type (a standard whose parties are all identified one way).
#[derive(Debug, Clone)]
pub(crate) enum Scheme {
    At(Vec<Reading>),
    Fixed(String),
}

/// How to read one document type.
#[derive(Debug, Clone)]
struct TypeReading {
    description: Option<String>,
    party: String,
    identifier: Vec<PayloadPointer>,
    scheme: Scheme,
    /// The region's names of schemes read from the payload (`scheme_names`), when they differ.
    scheme_names: BTreeMap<String, String>,
    country: Vec<Reading>,
    origin: Vec<Reading>,
    destination: Vec<Reading>,
    hs_codes: Vec<PayloadPointer>,
    mode_of_transport: Vec<Reading>,
    modes: BTreeMap<String, String>,
    border_post: Vec<Reading>,
    consignment_reference: Vec<Reading>,
    /// The compatibility its versions keep, when the region declares it (`crate::schema_diff`).
    compatibility: Option<crate::schema_diff::Mode>,
    /// What the region adds to the publisher's schema (`crate::overlays`).
    overlays: Vec<crate::config::OverlayConfig>,
}

/// The party that submits a document, as its payload names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittingParty {
    /// What the party is in this type (`declarant`, `shipper`...), for messages.
    pub role: String,
    /// Its identifier, when the payload has both a scheme and a value.
    pub identifier: Option<PartyIdentifier>,
    /// The country of its address, when the payload has it.
    pub country: Option<String>,
}

impl SubmittingParty {
    /// A document of a type the region does not describe: nobody is its submitting party.
    pub fn unknown() -> Self {
        SubmittingParty { role: "submitting party".into(), identifier: None, country: None }
    }
}

/// A party's identifier as the payload gives it: the scheme and the value kept apart (a scheme
/// may itself hold a `:`), and where the value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyIdentifier {
    /// `AR-CUIT`: the issuing scheme, read beside the value or fixed for the type.
    pub scheme: String,
    /// `30714255831`: a string, or a number's digits.
    pub value: String,
    /// The value's concrete JSON pointer in the payload, for a violation to point at.
    pub at: String,
}

impl PartyIdentifier {
    /// `SCHEME:VALUE`, as participants' `acts_for` lists it.
    pub fn qualified(&self) -> String {
        format!("{}:{}", self.scheme, self.value)
    }
}

/// What the gateway read in one payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PayloadFacts {
    /// HS chapters (1..=99) of every goods line, ascending, each once.
    pub hs_chapters: Vec<u8>,
    /// The transport mode, in the region's words (`road`, `sea`...), after the type's `modes`.
    pub mode_of_transport: Option<String>,
    /// The border post the document names (a UN/LOCODE, typically).
    pub border_post: Option<String>,
}

/// Routing values the envelope states and the payload may state again: both must agree.
pub struct EnvelopeFacts<'a> {
    pub ucr: &'a str,
    pub origin: &'a str,
    pub destination: &'a str,
}

/// Every described document type, compiled once at start.
#[derive(Debug, Clone, Default)]
pub struct DocumentTypes {
    types: BTreeMap<String, TypeReading>,
}

/// Compiles a setting's pointers; an error names the setting (`what`).
pub(crate) fn pointers(what: &str, list: &[String]) -> Result<Vec<PayloadPointer>, String> {
    list.iter().map(|p| PayloadPointer::parse(p).map_err(|e| format!("{what}: {e}"))).collect()
}

/// Compiles an identifier's scheme setting (`what`): pointers, or the scheme itself.
pub(crate) fn scheme_of(what: &str, list: &[String]) -> Result<Scheme, String> {
    match list {
        [] => Err(format!("{what}: give the JSON pointer of the identifier's scheme, or the scheme itself")),
        // A scheme's name (`AR-CUIT`, or `=AR-CUIT` as any constant): not a pointer, not built
        // from fields.
        [one] if !one.starts_with('/') && !one.contains('{') => {
            let name = one.strip_prefix('=').unwrap_or(one);
            if name.is_empty() || name.contains(':') {
                return Err(format!(
                    "{what}: {one:?} is neither a JSON pointer, nor a scheme name (such as AR-CUIT), nor built from fields ({{/a/countryCode}}-{{/a/type}})"
                ));
            }
            Ok(Scheme::Fixed(name.to_owned()))
        }
        list => Ok(Scheme::At(readings(what, list)?)),
    }
}

impl DocumentTypes {
    /// Compiles the region's tables; an error names the type and the setting.
    pub fn new(config: &BTreeMap<String, DocumentTypeConfig>) -> Result<Self, String> {
        let mut types = BTreeMap::new();
        for (name, c) in config {
            let at = |setting: &str| format!("[document_types.{name}] {setting}");
            let SubmitterConfig { party, identifier, scheme, country, scheme_names } = &c.submitter;
            let identifier = pointers(&at("submitter.identifier"), identifier)?;
            let Some(first) = identifier.first() else {
                return Err(format!("{}: give the JSON pointer of the submitting party's identifier", at("submitter.identifier")));
            };
            let party = party.clone().or_else(|| match first.steps.first() {
                Some(Step::Member(m)) => Some(m.clone()),
                _ => None,
            });
            let country = readings(&at("submitter.country"), country)?;
            if identifier.iter().chain(country.iter().flat_map(Reading::pointers)).any(|p| p.steps.contains(&Step::EveryItem)) {
                return Err(format!("{}: a submitting party is one party: its pointers take no \"*\"", at("submitter")));
            }
            if scheme.len() > 1 && scheme.len() != identifier.len() {
                return Err(format!(
                    "{}: give one scheme, or one per identifier pointer (the scheme read beside the identifier found)",
                    at("submitter.scheme")
                ));
            }
            let scheme = scheme_of(&at("submitter.scheme"), scheme)?;
            let reading = TypeReading {
                description: c.description.clone(),
                party: party.unwrap_or_else(|| "submitting party".into()),
                identifier,
                scheme,
                scheme_names: scheme_names.clone(),
                country,
                origin: readings(&at("origin"), &c.origin)?,
                destination: readings(&at("destination"), &c.destination)?,
                hs_codes: pointers(&at("hs_codes"), &c.hs_codes)?,
                mode_of_transport: readings(&at("mode_of_transport"), &c.mode_of_transport)?,
                modes: c.modes.clone(),
                border_post: readings(&at("border_post"), &c.border_post)?,
                consignment_reference: readings(&at("consignment_reference"), &c.consignment_reference)?,
                compatibility: c
                    .compatibility
                    .as_deref()
                    .map(crate::schema_diff::Mode::parse)
                    .transpose()
                    .map_err(|e| format!("{}: {e}", at("compatibility")))?,
                overlays: c.overlays.clone(),
            };
            types.insert(name.clone(), reading);
        }
        Ok(DocumentTypes { types })
    }

    /// Whether the region describes `document_type` (only described types are submitted).
    pub fn describes(&self, document_type: &str) -> bool {
        self.types.contains_key(document_type)
    }

    /// What the region file says a type is (`description`).
    pub fn description(&self, document_type: &str) -> Option<&str> {
        self.types.get(document_type)?.description.as_deref()
    }

    /// Whether the table of `document_type` reads an origin, and a destination, in the payload
    /// (to be checked against the envelope's).
    pub fn repeats_countries(&self, document_type: &str) -> (bool, bool) {
        self.types.get(document_type).map_or((false, false), |t| (!t.origin.is_empty(), !t.destination.is_empty()))
    }

    /// The compatibility the region declares for `document_type`'s versions, over its files'.
    pub fn compatibility(&self, document_type: &str) -> Option<crate::schema_diff::Mode> {
        self.types.get(document_type).and_then(|t| t.compatibility)
    }

    /// What the region adds to each type's schemas, with the type's name (`crate::overlays`).
    pub fn overlays(&self) -> impl Iterator<Item = (&str, &crate::config::OverlayConfig)> {
        self.types.iter().flat_map(|(name, t)| t.overlays.iter().map(move |o| (name.as_str(), o)))
    }

    /// The described types, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    /// The submitting party of a `document_type` document with this payload.
    pub fn submitting_party(&self, document_type: &str, payload: &Value) -> SubmittingParty {
        let Some(t) = self.types.get(document_type) else {
            return SubmittingParty::unknown();
        };
        // The first identifier pointer the payload has, and the scheme beside it: the scheme
        // pointer of the same rank when there is one per identifier pointer.
        let found = t.identifier.iter().enumerate().find_map(|(i, p)| p.first(payload).map(|(at, v)| (i, at, v)));
        let scheme = match (&t.scheme, &found) {
            (Scheme::Fixed(s), _) => Some(s.clone()),
            (Scheme::At(list), Some((i, _, _))) if list.len() > 1 => first_text(&list[*i..=*i], payload),
            (Scheme::At(list), _) => first_text(list, payload),
        }
        .map(|s| t.scheme_names.get(&s).cloned().unwrap_or(s));
        let identifier = match (scheme, found) {
            (Some(scheme), Some((_, at, v))) => crate::identifiers::as_text(v).map(|value| PartyIdentifier { scheme, value, at }),
            _ => None,
        };
        SubmittingParty { role: t.party.clone(), identifier, country: first_text(&t.country, payload) }
    }

    /// Reads the routing facts of a payload that passed its schema, and checks that what the
    /// payload says of the consignment (its reference, origin, destination) is what the
    /// envelope says: a document routed by one and read by agencies in the other would be
    /// misrouted. Each disagreement is a violation at the payload's pointer.
    pub fn read(&self, document_type: &str, envelope: &EnvelopeFacts<'_>, payload: &Value) -> Result<PayloadFacts, Vec<Violation>> {
        let Some(t) = self.types.get(document_type) else {
            return Ok(PayloadFacts::default());
        };
        let mut violations = Vec::new();
        for (list, stated, what) in [
            (&t.consignment_reference, envelope.ucr, "ucr"),
            (&t.origin, envelope.origin, "origin"),
            (&t.destination, envelope.destination, "destination"),
        ] {
            for reading in list {
                reading.each_or_not(payload, &mut |indices, v| {
                    let v = match v {
                        Ok(v) => v,
                        // A field a fact is computed from that gives none: refused, not passed over.
                        Err(raw) => {
                            violations.push(Violation::new(
                                &format!("/payload{}", reading.concrete(indices)),
                                "const",
                                format!("the document says {} here, which gives no {what}: {}", short_value(raw), reading.gives_nothing()),
                            ));
                            return ControlFlow::Continue(());
                        }
                    };
                    if v.as_str() != Some(stated) {
                        let found = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        // A computed fact says what it was computed from.
                        let read_as = match reading {
                            Reading::At(_) | Reading::Constant(_) => String::new(),
                            Reading::LocodeCountry(_) => " (the country of the UN/LOCODE here)".into(),
                            Reading::CountryName(_) => " (the country named here)".into(),
                            Reading::Template(_) => " (built from the fields here)".into(),
                        };
                        violations.push(Violation::new(
                            &format!("/payload{}", reading.concrete(indices)),
                            "const",
                            format!("the document says {found:?}{read_as}, and the envelope's {what} is {stated:?}: they must be the same"),
                        ));
                    }
                    ControlFlow::Continue(())
                });
            }
        }
        if !violations.is_empty() {
            violations.truncate(crate::pointer::MAX_VIOLATIONS);
            return Err(violations);
        }
        let mut hs_chapters: Vec<u8> = t.hs_codes.iter().flat_map(|p| p.reached(payload)).filter_map(hs_chapter).collect();
        hs_chapters.sort_unstable();
        hs_chapters.dedup();
        let mode_of_transport = first_text(&t.mode_of_transport, payload).map(|m| t.modes.get(&m).cloned().unwrap_or(m));
        Ok(PayloadFacts { hs_chapters, mode_of_transport, border_post: first_text(&t.border_post, payload) })
    }
}

/// The chapter of an HS code written as a string (`"020130"`) or a number (`20130`, its
/// leading zero lost: codes have an even number of digits, so an odd count had one).
fn hs_chapter(v: &Value) -> Option<u8> {
    let chapter = match v {
        Value::String(s) => {
            let digits = s.trim().as_bytes();
            match digits {
                [a, b, ..] if a.is_ascii_digit() && b.is_ascii_digit() => (a - b'0') * 10 + (b - b'0'),
                _ => return None,
            }
        }
        Value::Number(n) => {
            let mut code = n.as_u64()?;
            // An odd count of digits lost its leading zero: the chapter is the first one.
            let digits = code.checked_ilog10().map_or(1, |l| l + 1);
            let keep = if digits % 2 == 1 { 1 } else { 2 };
            code /= 10u64.pow(digits.saturating_sub(keep));
            u8::try_from(code).ok()?
        }
        _ => return None,
    };
    Some(chapter).filter(|c| (1..=99).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped() -> DocumentTypes {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
        let region: crate::config::RegionConfig = toml::from_str(&text).unwrap();
        DocumentTypes::new(&region.document_types).expect("the shipped tables compile")
    }

    fn envelope() -> EnvelopeFacts<'static> {
        EnvelopeFacts { ucr: "5AR30714255831-C0781", origin: "AR", destination: "BR" }
    }

    #[test]
    fn pointers_reach_every_item_of_an_array_and_keep_rfc6901_escapes() {
        let v = json!({"packages": [{"contents": [{"hsCode": "0201"}, {"hsCode": "0202"}]}, {"contents": [{"hsCode": "8703"}]}], "a/b": {"~x": 1}});
        let p = PayloadPointer::parse("/packages/*/contents/*/hsCode").unwrap();
        let found: Vec<_> = p.values(&v).into_iter().map(|(at, v)| (at, v.clone())).collect();
        assert_eq!(found, vec![
            ("/packages/0/contents/0/hsCode".to_owned(), json!("0201")),
            ("/packages/0/contents/1/hsCode".to_owned(), json!("0202")),
            ("/packages/1/contents/0/hsCode".to_owned(), json!("8703")),
        ]);
        assert_eq!(PayloadPointer::parse("/a~1b/~0x").unwrap().first(&v).map(|(at, v)| (at, v.clone())), Some(("/a~1b/~0x".into(), json!(1))));
        assert_eq!(PayloadPointer::parse("/packages/1/contents/0/hsCode").unwrap().first(&v).map(|(_, v)| v.clone()), Some(json!("8703")));
        assert!(PayloadPointer::parse("goodsItems/*/hsCode").unwrap_err().contains("must start with \"/\""));
        assert!(PayloadPointer::parse("/a~2b").is_err());
    }

    /// What is beside a value is read at the same items: the scheme of the second package's
    /// first content, not of the first content found.
    #[test]
    fn a_pointer_reads_at_the_items_another_pointer_reached() {
        let v = json!({"packages": [{"contents": [{"id": "A", "scheme": "X"}]}, {"contents": [{"id": "B"}, {"id": "C", "scheme": "Z"}]}]});
        let ids = PayloadPointer::parse("/packages/*/contents/*/id").unwrap();
        let schemes = PayloadPointer::parse("/packages/*/contents/*/scheme").unwrap();
        let mut beside = Vec::new();
        ids.each(&v, &mut |indices, id| {
            beside.push((ids.concrete(indices), id.clone(), schemes.first_at(indices, &v).cloned()));
            ControlFlow::Continue(())
        });
        assert_eq!(beside, vec![
            ("/packages/0/contents/0/id".to_owned(), json!("A"), Some(json!("X"))),
            ("/packages/1/contents/0/id".to_owned(), json!("B"), None),
            ("/packages/1/contents/1/id".to_owned(), json!("C"), Some(json!("Z"))),
        ]);
        // A `*` past the indices given takes the first item that has the value.
        assert_eq!(schemes.first_at(&[1], &v), Some(&json!("Z")));
        assert_eq!(schemes.first_at(&[], &v), Some(&json!("X")));
        // Stopping early: the first value and no more.
        let mut seen = 0;
        ids.each(&v, &mut |_, _| {
            seen += 1;
            ControlFlow::Break(())
        });
        assert_eq!(seen, 1);
    }

    #[test]
    fn hs_codes_are_read_as_strings_or_numbers() {
        assert_eq!(hs_chapter(&json!("020130")), Some(2));
        assert_eq!(hs_chapter(&json!(20130)), Some(2), "a number lost its leading zero");
        assert_eq!(hs_chapter(&json!(870323)), Some(87));
        assert_eq!(hs_chapter(&json!(5)), Some(5), "one digit: chapter 05 written as a number");
        assert_eq!(hs_chapter(&json!(" 0201 ")), Some(2));
        assert_eq!(hs_chapter(&json!(0)), None);
        assert_eq!(hs_chapter(&json!("7")), None, "a string keeps its leading zero: one digit is no chapter");
        assert_eq!(hs_chapter(&json!("O20130")), None);
        assert_eq!(hs_chapter(&json!("00")), None);
        assert_eq!(hs_chapter(&json!(true)), None);
    }

    /// The shipped tables read, in every valid example, the submitting party the examples'
    /// trader acts for and every HS code the payload holds (wherever the type keeps them).
    #[test]
    fn the_shipped_tables_read_every_example() {
        fn every_hs_code(v: &Value, out: &mut Vec<u8>) {
            match v {
                Value::Object(map) => map.iter().for_each(|(k, v)| if k == "hsCode" { out.extend(hs_chapter(v)) } else { every_hs_code(v, out) }),
                Value::Array(items) => items.iter().for_each(|i| every_hs_code(i, out)),
                _ => {}
            }
        }
        let types = shipped();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut read = 0;
        for entry in std::fs::read_dir(root.join("examples")).unwrap() {
            let dir = entry.unwrap().path().join("valid");
            let Ok(files) = std::fs::read_dir(&dir) else { continue };
            for file in files {
                let body: Value = serde_json::from_slice(&std::fs::read(file.unwrap().path()).unwrap()).unwrap();
                let Some(t) = body["documentType"].as_str() else { continue };
                let payload = &body["payload"];
                assert!(types.describes(t), "{t} is described");
                let party = types.submitting_party(t, payload);
                let id = party.identifier.unwrap_or_else(|| panic!("{t}: no identifier")).qualified();
                assert!(id.contains(':') && party.country.is_some(), "{t}: {id}");
                let env = EnvelopeFacts {
                    ucr: body["ucr"].as_str().unwrap(),
                    origin: body["origin"].as_str().unwrap(),
                    destination: body["destination"].as_str().unwrap(),
                };
                let facts = types.read(t, &env, payload).unwrap();
                let mut all = Vec::new();
                every_hs_code(payload, &mut all);
                all.sort_unstable();
                all.dedup();
                assert_eq!(facts.hs_chapters, all, "{t}: every HS code is read");
                assert_eq!(facts.mode_of_transport.as_ref(), payload.get("modeOfTransport").and_then(Value::as_str).map(str::to_owned).as_ref(), "{t}: its mode");
                assert_eq!(facts.border_post.is_some(), payload.get("crossingPoint").is_some(), "{t}: its border post");
                read += 1;
            }
        }
        assert!(read >= 25, "{read} examples read");
    }

    /// A standard that states its facts otherwise than the region routes by (issue 29, item 3):
    /// countries as UN/LOCODEs and as names, the party's scheme as a country code and a type,
    /// the transport mode nowhere (a bill of lading is by sea).
    #[test]
    fn facts_computed_from_fields_read_as_the_region_routes_by_them() {
        let config: BTreeMap<String, DocumentTypeConfig> = toml::from_str(
            r#"
            [billOfLading]
            submitter = { party = "shipper", identifier = "/parties/0/taxReference/value", scheme = "{/parties/0/taxReference/countryCode}-{/parties/0/taxReference/type}", scheme_names = { "AR-TAX" = "AR-CUIT" }, country = "country-name:/shipperAddress/country" }
            origin = "locode:/portOfLoading/UNLocationCode"
            destination = ["locode:/portOfDischarge/UNLocationCode"]
            mode_of_transport = "=sea"
            border_post = "/portOfDischarge/UNLocationCode"
            "#,
        )
        .unwrap();
        let types = DocumentTypes::new(&config).unwrap();
        let payload = json!({
            "parties": [{"taxReference": {"value": "30714255831", "countryCode": "AR", "type": "TAX"}}],
            "shipperAddress": {"country": "República Argentina"},
            "portOfLoading": {"UNLocationCode": "ARBUE"},
            "portOfDischarge": {"UNLocationCode": "BRSSZ"},
        });
        let party = types.submitting_party("billOfLading", &payload);
        assert_eq!(
            party,
            SubmittingParty {
                role: "shipper".into(),
                identifier: Some(PartyIdentifier { scheme: "AR-CUIT".into(), value: "30714255831".into(), at: "/parties/0/taxReference/value".into() }),
                country: Some("AR".into()),
            }
        );
        let facts = types.read("billOfLading", &envelope(), &payload).unwrap();
        assert_eq!(facts, PayloadFacts { hs_chapters: vec![], mode_of_transport: Some("sea".into()), border_post: Some("BRSSZ".into()) });
        // A UN/LOCODE of another country than the envelope's: refused at the field it came from.
        let mut elsewhere = payload.clone();
        elsewhere["portOfDischarge"]["UNLocationCode"] = json!("UYMVD");
        let refused = types.read("billOfLading", &envelope(), &elsewhere).unwrap_err();
        assert_eq!(refused[0].pointer, "/payload/portOfDischarge/UNLocationCode");
        assert!(refused[0].message.contains("\"UY\" (the country of the UN/LOCODE here)"), "{}", refused[0].message);
        // A port that is no UN/LOCODE gives no country: refused at its field, not passed over.
        let mut unreadable = payload.clone();
        unreadable["portOfDischarge"]["UNLocationCode"] = json!("BR-SSZ");
        let refused = types.read("billOfLading", &envelope(), &unreadable).unwrap_err();
        assert_eq!(refused[0].pointer, "/payload/portOfDischarge/UNLocationCode");
        assert!(refused[0].message.contains("gives no destination: it is not a UN/LOCODE"), "{}", refused[0].message);
        // A name the table does not know is kept as written; a scheme not in scheme_names too.
        let mut unknown = payload.clone();
        unknown["shipperAddress"]["country"] = json!("Atlantis");
        unknown["parties"][0]["taxReference"] = json!({"value": "211111110019", "countryCode": "UY", "type": "RUT"});
        let party = types.submitting_party("billOfLading", &unknown);
        assert_eq!(party.country.as_deref(), Some("Atlantis"));
        assert_eq!(party.identifier.map(|i| i.qualified()).as_deref(), Some("UY-RUT:211111110019"));
        // A field of the template missing: no scheme, so no identifier.
        let mut half = payload.clone();
        half["parties"][0]["taxReference"].as_object_mut().unwrap().remove("type");
        assert_eq!(types.submitting_party("billOfLading", &half).identifier, None);

        for (written, refused) in [
            ("locode:parties", "must start with \"/\""),
            ("{/a", "closed with"),
            ("=", "after \"=\""),
            ("Mexico", "nor a computed fact"),
        ] {
            let err = Reading::parse(written).unwrap_err();
            assert!(err.contains(refused), "{written}: {err}");
        }
        assert!(matches!(Reading::parse("=sea"), Ok(Reading::Constant(c)) if c == "sea"));
        // Read at the items another value was found at, or the first that gives one.
        let beside = Reading::parse("{/p/*/c}-{/p/*/t}").unwrap();
        let parties = json!({"p": [{"c": "AR"}, {"c": "AR", "t": "CUIT"}, {"c": "UY", "t": "RUT"}]});
        assert_eq!(beside.first_at(&[2], &parties).as_deref(), Some(&json!("UY-RUT")));
        assert_eq!(beside.first_at(&[0], &parties), None, "the item named, not another");
        assert_eq!(beside.first_at(&[], &parties).as_deref(), Some(&json!("AR-CUIT")), "the first item that gives one");
        assert_eq!(beside.first_at(&[9], &parties), None);
    }

    #[test]
    fn a_type_described_with_a_fixed_scheme_codes_and_references() {
        let config: BTreeMap<String, DocumentTypeConfig> = toml::from_str(
            r#"
            [billOfLading]
            submitter = { party = "shipper", identifier = "/parties/shipper/taxId", scheme = "AR-CUIT", country = ["/parties/shipper/country", "/portOfLoading/country"] }
            consignment_reference = "/reference"
            origin = "/portOfLoading/country"
            destination = "/portOfDischarge/country"
            hs_codes = ["/cargo/*/commodity/hs"]
            mode_of_transport = "/transportModeCode"
            modes = { "1" = "sea", "3" = "road" }
            border_post = "/portOfDischarge/locode"
            "#,
        )
        .unwrap();
        let types = DocumentTypes::new(&config).unwrap();
        let payload = json!({
            "parties": {"shipper": {"taxId": "30714255831"}},
            "reference": "5AR30714255831-C0781",
            "portOfLoading": {"country": "AR"}, "portOfDischarge": {"country": "BR", "locode": "BRSSZ"},
            "cargo": [{"commodity": {"hs": 20130}}, {"commodity": {"hs": "100199"}}],
            "transportModeCode": 1,
        });
        let party = types.submitting_party("billOfLading", &payload);
        assert_eq!(
            party,
            SubmittingParty {
                role: "shipper".into(),
                identifier: Some(PartyIdentifier { scheme: "AR-CUIT".into(), value: "30714255831".into(), at: "/parties/shipper/taxId".into() }),
                country: Some("AR".into()),
            }
        );
        let facts = types.read("billOfLading", &envelope(), &payload).unwrap();
        assert_eq!(facts, PayloadFacts { hs_chapters: vec![2, 10], mode_of_transport: Some("sea".into()), border_post: Some("BRSSZ".into()) });

        let mut elsewhere = payload.clone();
        elsewhere["portOfDischarge"]["country"] = json!("UY");
        elsewhere["reference"] = json!("5AR30714255831-C9999");
        let refused = types.read("billOfLading", &envelope(), &elsewhere).unwrap_err();
        let at: Vec<&str> = refused.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(at, vec!["/payload/reference", "/payload/portOfDischarge/country"]);
        assert!(refused[1].message.contains("\"UY\"") && refused[1].message.contains("destination is \"BR\""), "{}", refused[1].message);

        let bad: BTreeMap<String, DocumentTypeConfig> =
            toml::from_str("[x]\nsubmitter = { identifier = \"parties/shipper\", scheme = \"/s\" }").unwrap();
        let err = DocumentTypes::new(&bad).unwrap_err();
        assert!(err.contains("[document_types.x] submitter.identifier") && err.contains("must start with"), "{err}");
    }
}
