//! The trade vocabulary as types. Each newtype is built by `parse`, so a value of it is valid
//! by construction ("parse, don't validate"); the JSON Schemas say the same to submitters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a piece of text is not a valid value of a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {rule}")]
pub struct ParseError {
    /// The domain type that refused the value.
    pub what: &'static str,
    /// The refused text (truncated to 80 characters, so an error never echoes a huge input).
    pub value: String,
    /// The rule the value breaks, in words.
    pub rule: &'static str,
}

impl ParseError {
    fn new(what: &'static str, value: &str, rule: &'static str) -> Self {
        ParseError { what, value: value.chars().take(80).collect(), rule }
    }
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string" })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// A Unique Consignment Reference (WCO / ISO 15459): 1 to 35 characters, digits, capital
    /// letters and hyphens, starting with a digit or letter. It names one consignment across
    /// every document and agency, and is the Kafka key that keeps a consignment's order.
    Ucr
);

impl Ucr {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 35
            && s.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_digit() || b.is_ascii_uppercase() || (i > 0 && b == b'-')
            });
        if ok {
            Ok(Ucr(s.to_owned()))
        } else {
            Err(ParseError::new(
                "UCR",
                s,
                "1 to 35 characters: digits, capital letters and '-', not starting with '-'",
            ))
        }
    }

    /// The party a UCR of the WCO's recommended form names: a year digit, the country's ISO
    /// code, the identifier its exporter is known by there, `-`, and the exporter's own
    /// reference (`5AR30714255831-C0781`: 2025, Argentina, CUIT 30714255831, C0781). The
    /// country and the identifier, or `None` for a UCR of another form. Whether the identifier
    /// is one is for the country's schemes to say (`IdentifierSchemes::parties_of`).
    pub fn wco_party(&self) -> Option<(&str, &str)> {
        let (head, reference) = self.0.split_once('-')?;
        let b = head.as_bytes();
        let form = b.len() > 3 && b[0].is_ascii_digit() && b[1].is_ascii_uppercase() && b[2].is_ascii_uppercase() && !reference.is_empty();
        form.then(|| (&head[1..3], &head[3..]))
    }
}

string_newtype!(
    /// An ISO 3166-1 alpha-2 country code such as `AR`. Which codes exist is checked by the
    /// schemas; this type only guarantees the shape.
    CountryCode
);

impl CountryCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(CountryCode(s.to_owned()))
        } else {
            Err(ParseError::new("country code", s, "two capital letters (ISO 3166-1 alpha-2)"))
        }
    }
}

string_newtype!(
    /// An agency's identifier: its country in lower case, a hyphen, and a name, e.g.
    /// `br-customs`. It also names the agency's Kafka topic, hence the narrow alphabet.
    AgencyId
);

impl AgencyId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        // As the acknowledgment schema's pattern: `^[a-z]{2}-[a-z][a-z0-9-]{1,40}$`.
        let ok = (5..=44).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[1].is_ascii_lowercase()
            && b[2] == b'-'
            && b[3].is_ascii_lowercase()
            && b[3..].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if ok {
            Ok(AgencyId(s.to_owned()))
        } else {
            Err(ParseError::new(
                "agency id",
                s,
                "a two-letter country code in lower case, '-', then lower-case letters, digits or '-' (e.g. br-customs)",
            ))
        }
    }

    /// The agency's country, from the first two letters of its id.
    pub fn country(&self) -> CountryCode {
        CountryCode(self.0[..2].to_ascii_uppercase())
    }
}

string_newtype!(
    /// A harmonized document type, e.g. `customsDeclaration`: a letter then up to 63 letters
    /// or digits. Which types exist is the schema registry's business.
    DocumentType
);

impl DocumentType {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphabetic()
            && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(DocumentType(s.to_owned()))
        } else {
            Err(ParseError::new("document type", s, "a letter followed by up to 63 letters or digits"))
        }
    }
}

/// A schema version `MAJOR.MINOR.PATCH`; ordered numerically so `1.10.0` follows `1.9.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl SchemaVersion {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let err = || ParseError::new("schema version", s, "MAJOR.MINOR.PATCH, e.g. 1.0.0");
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, ParseError> {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let v = SchemaVersion { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl schemars::JsonSchema for SchemaVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$" })
    }
}

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What an agency answers about one delivery. `released` and `rejected` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// The agency has the document and will look at it.
    Received,
    /// The agency accepts the document; release may still follow.
    Accepted,
    /// The agency refuses the document (final).
    Rejected,
    /// The agency asks the trader a question; the consignment waits for the answer.
    Query,
    /// The agency holds the goods (inspection, sampling).
    Hold,
    /// The agency releases the goods as far as it is concerned (final).
    Released,
}

impl AckStatus {
    pub const ALL: [AckStatus; 6] = [
        AckStatus::Received,
        AckStatus::Accepted,
        AckStatus::Rejected,
        AckStatus::Query,
        AckStatus::Hold,
        AckStatus::Released,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Received => "received",
            AckStatus::Accepted => "accepted",
            AckStatus::Rejected => "rejected",
            AckStatus::Query => "query",
            AckStatus::Hold => "hold",
            AckStatus::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        AckStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(
                    "acknowledgment status",
                    s,
                    "one of received, accepted, rejected, query, hold, released",
                )
            })
    }

    /// Final answers: nothing the agency says afterwards changes the delivery.
    pub fn is_final(self) -> bool {
        matches!(self, AckStatus::Released | AckStatus::Rejected)
    }
}

/// The history line of a trader's answer to a query (`crate::lifecycle`).
pub const RESPONDED: &str = "responded";

/// The source of an answer the gateway records for an agency by its standing instruction (a
/// de minimis release, `crate::submission`).
pub const STANDING_INSTRUCTION: &str = "standing-instruction";

/// Where one (document, agency) delivery stands. Shown as one word: `pending`, `dispatched`,
/// or the agency's latest effective answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Committed, waiting for the relay to publish it to the agency's topic.
    Pending,
    /// The broker confirmed the record on the agency's topic.
    Dispatched,
    /// The agency has answered; its latest effective answer.
    Answered(AckStatus),
    /// The broker refused the record on every attempt; it went to the dead-letter topic and
    /// waits for an operator to send it again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Dispatched => "dispatched",
            DeliveryStatus::Answered(a) => a.as_str(),
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "dispatched" => Ok(DeliveryStatus::Dispatched),
            "failed" => Ok(DeliveryStatus::Failed),
            other => AckStatus::parse(other).map(DeliveryStatus::Answered).map_err(|_| {
                ParseError::new("delivery status", s, "pending, dispatched, failed or an acknowledgment status")
            }),
        }
    }
}

impl schemars::JsonSchema for DeliveryStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeliveryStatus".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let own = [DeliveryStatus::Pending, DeliveryStatus::Dispatched, DeliveryStatus::Failed];
        let every: Vec<&str> =
            own.iter().map(|s| s.as_str()).chain(AckStatus::ALL.iter().map(|a| a.as_str())).collect();
        schemars::json_schema!({ "type": "string", "enum": every })
    }
}

impl Serialize for DeliveryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The overall state of a consignment, derived from all its deliveries (see `tracking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsignmentState {
    Submitted,
    InReview,
    OnHold,
    DeliveryFailed,
    Refused,
    Released,
    /// Every document of the consignment was withdrawn.
    Withdrawn,
}

impl ConsignmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsignmentState::Submitted => "submitted",
            ConsignmentState::InReview => "in_review",
            ConsignmentState::OnHold => "on_hold",
            ConsignmentState::DeliveryFailed => "delivery_failed",
            ConsignmentState::Refused => "refused",
            ConsignmentState::Released => "released",
            ConsignmentState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Ok(match s {
            "submitted" => ConsignmentState::Submitted,
            "in_review" => ConsignmentState::InReview,
            "on_hold" => ConsignmentState::OnHold,
            "delivery_failed" => ConsignmentState::DeliveryFailed,
            "refused" => ConsignmentState::Refused,
            "released" => ConsignmentState::Released,
            "withdrawn" => ConsignmentState::Withdrawn,
            _ => return Err(ParseError::new("consignment state", s, "a known consignment state")),
        })
    }
}

/// What a participant may do, decided by its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A trader or customs broker: submits documents, follows its own consignments.
    Trader,
    /// A national single window submitting for the traders of its country.
    Nsw,
    /// An e-commerce platform: submits its shipments for its many sellers, follows their parcels,
    /// reads its sellers' irregularity rates (never the rules).
    Platform,
    /// A customs, sanitary or border agency: receives deliveries and acknowledges them.
    Agency,
    /// The gateway's operator: reads everything, changes only operational state.
    Operator,
}

impl Role {
    /// The role as the region file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Trader => "trader",
            Role::Nsw => "nsw",
            Role::Platform => "platform",
            Role::Agency => "agency",
            Role::Operator => "operator",
        }
    }
}

/// What an acknowledgment did to its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckOutcome {
    /// The delivery took the new status.
    Applied,
    /// The delivery already had this status: nothing changed.
    Duplicate,
    /// The delivery already had a final answer: nothing changed.
    Late,
    /// The answer is older news than the delivery's current one: nothing changed.
    Stale,
}

impl AckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AckOutcome::Applied => "applied",
            AckOutcome::Duplicate => "duplicate",
            AckOutcome::Late => "late",
            AckOutcome::Stale => "stale",
        }
    }

    pub fn changed(self) -> bool {
        self == AckOutcome::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucr_accepts_wco_shapes_and_refuses_others() {
        assert!(Ucr::parse("6AR30712345678-2026-000123").is_ok());
        assert!(Ucr::parse(&"A".repeat(35)).is_ok());
        assert!(Ucr::parse(&"A".repeat(36)).is_err());
        assert!(Ucr::parse("").is_err());
        assert!(Ucr::parse("-ABC").is_err());
        assert!(Ucr::parse("abc").is_err());
        assert!(Ucr::parse("AB/../C").is_err());
    }

    #[test]
    fn a_wco_form_ucr_names_its_country_and_exporter() {
        let party = |s: &str| Ucr::parse(s).unwrap().wco_party().map(|(c, i)| (c.to_owned(), i.to_owned()));
        assert_eq!(party("5AR30714255831-C0781"), Some(("AR".into(), "30714255831".into())));
        assert_eq!(party("5BR45678912000155-V0042-2"), Some(("BR".into(), "45678912000155".into())));
        for other in ["AUTHZ-OWN-1", "5AR30714255831", "5AR30714255831-", "5AR-C0781", "SAR30714255831-C1", "5A130714255831-C1"] {
            assert_eq!(party(other), None, "{other}");
        }
    }

    #[test]
    fn agency_id_names_its_country() {
        let a = AgencyId::parse("br-customs").unwrap();
        assert_eq!(a.country().as_str(), "BR");
        assert!(AgencyId::parse("BR-customs").is_err());
        assert!(AgencyId::parse("br_customs").is_err());
        assert!(AgencyId::parse("br-").is_err());
        assert!(AgencyId::parse("br-../x").is_err());
    }

    #[test]
    fn schema_versions_order_numerically() {
        let a = SchemaVersion::parse("1.9.0").unwrap();
        let b = SchemaVersion::parse("1.10.0").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1.10.0");
        assert!(SchemaVersion::parse("1.0").is_err());
        assert!(SchemaVersion::parse("1.0.0.0").is_err());
        assert!(SchemaVersion::parse("1.x.0").is_err());
    }

    #[test]
    fn statuses_round_trip_through_text() {
        for a in AckStatus::ALL {
            assert_eq!(AckStatus::parse(a.as_str()).unwrap(), a);
            let d = DeliveryStatus::Answered(a);
            assert_eq!(DeliveryStatus::parse(d.as_str()).unwrap(), d);
        }
        assert!(AckStatus::parse("approved").is_err());
        assert_eq!(DeliveryStatus::parse("pending").unwrap(), DeliveryStatus::Pending);
        assert_eq!(DeliveryStatus::parse("failed").unwrap(), DeliveryStatus::Failed);
    }
}
