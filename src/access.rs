//! Who may do what: the one rule set, applied by the gateway to every way in.
//!
//! | role     | submit                                   | amend, withdraw, respond to a query | acknowledge            | read consignments                      | operate (retries) |
//! |----------|------------------------------------------|--------------------------------------|------------------------|----------------------------------------|-------------------|
//! | trader   | only as itself: the document's submitting party is one of its `acts_for` identifiers | its own documents | no | those it submitted to, its own documents only | no |
//! | nsw      | for traders of its own country: the submitting party's identifier is of its country's scheme (its address, for an international scheme) | its own, and those of its country's traders | no | as a trader | no |
//! | platform | only its own shipments: documents whose submitting party is a `platform` (its type's table says), one of its `acts_for` identifiers | its own documents | no | as a trader; and its sellers' irregularity rates, never the rules | no |
//! | agency   | no                                       | no                                   | only deliveries routed to it | those routed to it, its own deliveries only | no |
//! | operator | no                                       | no                                   | no                     | everything                             | yes               |
//!
//! A UCR of the WCO's form names its exporter (`5AR30714255831-C0781`: AR-CUIT 30714255831):
//! only a participant acting for that party, or the NSW of its country, may use it
//! ([`may_use_ucr`]), so no one can take the UCR another trader will declare under.
//!
//! A consignment a participant may not read is reported as not found, so its existence does
//! not leak; likewise an acknowledgment about a document not routed to the agency.

use serde_json::Value;

use crate::document_types::{DocumentTypes, PartyIdentifier, SubmittingParty};
use crate::domain::{AgencyId, CountryCode, Role, Ucr};
use crate::identifiers::{scheme_country, IdentifierSchemes};
use crate::store::ConsignmentView;

/// Who is asking: the authenticated participant, by role, each with what its role acts on, so
/// that an agency without its agency or an NSW without its country cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Participant {
    /// Submits as the parties it acts for.
    Trader {
        id: String,
        /// Party identifiers (`SCHEME:VALUE`, e.g. `AR-CUIT:30714255831`) it submits as.
        acts_for: Vec<String>,
    },
    /// A national single window: submits for the traders of its country.
    Nsw { id: String, country: CountryCode },
    /// An e-commerce platform: submits its own shipments, as the platform identifiers it holds.
    Platform {
        id: String,
        /// Its platform identifiers (`SCHEME:VALUE`), as its shipments' platform party reads.
        acts_for: Vec<String>,
    },
    /// Answers for one agency, and reads what is routed to it.
    Agency { id: String, agency: AgencyId },
    /// Runs the gateway: reads everything, operates, never submits.
    Operator { id: String },
}

impl Participant {
    /// A participant of the region file, or why its entry lacks what its role needs (the
    /// region file's check refuses those at start).
    pub fn of(p: &crate::config::ParticipantConfig) -> Result<Self, String> {
        let id = p.id.clone();
        Ok(match p.role {
            Role::Trader => Participant::Trader { id, acts_for: p.acts_for.clone() },
            Role::Platform => Participant::Platform { id, acts_for: p.acts_for.clone() },
            Role::Operator => Participant::Operator { id },
            Role::Nsw => match &p.country {
                Some(country) => Participant::Nsw { id, country: country.clone() },
                None => return Err(format!("participant {id} has role nsw but no `country`")),
            },
            Role::Agency => match &p.agency {
                Some(agency) => Participant::Agency { id, agency: agency.clone() },
                None => return Err(format!("participant {id} has role agency but no `agency`")),
            },
        })
    }

    /// Its id: in the region file, on its documents and in the audit log.
    pub fn id(&self) -> &str {
        match self {
            Participant::Trader { id, .. }
            | Participant::Nsw { id, .. }
            | Participant::Platform { id, .. }
            | Participant::Agency { id, .. }
            | Participant::Operator { id } => id,
        }
    }

    /// Its role.
    pub fn role(&self) -> Role {
        match self {
            Participant::Trader { .. } => Role::Trader,
            Participant::Nsw { .. } => Role::Nsw,
            Participant::Platform { .. } => Role::Platform,
            Participant::Agency { .. } => Role::Agency,
            Participant::Operator { .. } => Role::Operator,
        }
    }

    /// The agency it answers for, if it is an agency.
    pub fn agency(&self) -> Option<&AgencyId> {
        match self {
            Participant::Agency { agency, .. } => Some(agency),
            _ => None,
        }
    }
}

/// Why a participant may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("participant {0} may not submit documents")]
    NotASubmitter(String),
    #[error("participant {participant} may submit only as {acts_for:?}, but the document's {party} is {found}")]
    NotYourParty { participant: String, party: String, acts_for: Vec<String>, found: String },
    #[error(
        "participant {participant} is an e-commerce platform: it submits only documents whose submitting party is the platform \
         (an e-commerce shipment), and this document's submitting party is its {party}"
    )]
    NotAPlatformDocument { participant: String, party: String },
    #[error("participant {participant} submits for traders of {country}, but the document's {party} is {found}")]
    NotYourCountry { participant: String, party: String, country: String, found: String },
    #[error(
        "the UCR {ucr} names its exporter, {named} (the WCO form: year digit, country, the exporter's identifier, '-', \
         reference), and participant {participant} does not act for that party: use a UCR of a party you act for"
    )]
    UcrOfAnotherParty { participant: String, ucr: String, named: String },
    #[error("participant {participant} may not answer for agency {agency}")]
    NotYourAgency { participant: String, agency: String },
    #[error("participant {0} is not an operator")]
    NotAnOperator(String),
    #[error("participant {0} reads the sellers of no platform: a platform reads its own, an operator any platform's")]
    NotYourPlatform(String),
    #[error(
        "participant {0} may not group its figures by risk channel: a consignment's strictest channel tells one agency's \
         selection to its trader and to its other agencies (whoever learns the profile can evade it); operators read it, \
         and the public figures publish it, suppressed"
    )]
    RiskChannelSegment(String),
    #[error("participant {0} submits no consignments, so it has no status changes to be sent")]
    NoConsignments(String),
    #[error(
        "participant {0} reads no TFA monitor: it measures a country's and its agencies' practice (an operator reads the \
         region's, a national single window its country's, an agency its own decisions'); a trader's own consignments are \
         in /v1/indicators/release-times, and the region's in /v1/public/indicators/tfa"
    )]
    NoTfaScope(String),
}

/// The submitting party's name, in a type's table, of the documents a platform submits.
pub const PLATFORM_PARTY: &str = "platform";

/// May `by` submit a document whose submitting party (read by its type's table in the region
/// file, `crate::document_types`) is `party`?
pub fn may_submit(by: &Participant, party: &SubmittingParty) -> Result<(), Refusal> {
    match by {
        Participant::Platform { id, .. } if party.role != PLATFORM_PARTY => {
            Err(Refusal::NotAPlatformDocument { participant: id.clone(), party: party.role.clone() })
        }
        Participant::Trader { id, acts_for } | Participant::Platform { id, acts_for } => {
            match party.identifier.as_ref().map(PartyIdentifier::qualified) {
                Some(found) if acts_for.contains(&found) => Ok(()),
                found => Err(Refusal::NotYourParty {
                    participant: id.clone(),
                    party: party.role.clone(),
                    acts_for: acts_for.clone(),
                    found: found.unwrap_or_else(|| "without an identifier".to_owned()),
                }),
            }
        }
        Participant::Nsw { id, country } => {
            // The country that issued the party's identifier, whatever address the document
            // gives it; the address only for an identifier of an international scheme.
            let (found, how) = match party.identifier.as_ref().and_then(|i| scheme_country(&i.scheme).map(|c| (c, i))) {
                Some((c, id)) => (Some(c), format!("a {c} party (identified by {})", id.qualified())),
                None => match party.country.as_deref() {
                    Some(c) => (Some(c), format!("in {c} (by its address: its identifier's scheme names no country)")),
                    None => (None, "of no country (neither its identifier's scheme nor an address names one)".to_owned()),
                },
            };
            if Some(country.as_str()) == found {
                Ok(())
            } else {
                Err(Refusal::NotYourCountry { participant: id.clone(), party: party.role.clone(), country: country.to_string(), found: how })
            }
        }
        Participant::Agency { id, .. } | Participant::Operator { id } => Err(Refusal::NotASubmitter(id.clone())),
    }
}

/// May `by` use `ucr` for a document whose submitting party is `party`? A UCR of the WCO's form
/// ([`Ucr::wco_party`]) whose identifier is valid under a scheme of its country the region
/// checks names that party: only the document's submitting party, a trader acting for it, or
/// the NSW of its country may use it. Any other UCR is anyone's (the first to open it keeps it).
pub fn may_use_ucr(by: &Participant, ucr: &Ucr, party: &SubmittingParty, schemes: &IdentifierSchemes) -> Result<(), Refusal> {
    let Some((country, identifier)) = ucr.wco_party() else { return Ok(()) };
    let named = schemes.parties_of(country, identifier);
    if named.is_empty() {
        return Ok(());
    }
    let submitting = party.identifier.as_ref().map(PartyIdentifier::qualified);
    let acts_for_it = named.iter().any(|n| submitting.as_ref() == Some(n))
        || match by {
            Participant::Trader { acts_for, .. } | Participant::Platform { acts_for, .. } => named.iter().any(|n| acts_for.contains(n)),
            Participant::Nsw { country: own, .. } => own.as_str() == country,
            Participant::Agency { .. } | Participant::Operator { .. } => false,
        };
    if acts_for_it {
        Ok(())
    } else {
        Err(Refusal::UcrOfAnotherParty { participant: by.id().to_owned(), ucr: ucr.to_string(), named: named.join(" or ") })
    }
}

/// Does `by`'s role submit documents at all? Checked before anything is read or held for the
/// request; each document's own party is checked by [`may_submit`].
pub fn submits_documents(by: &Participant) -> Result<(), Refusal> {
    match by.role() {
        Role::Trader | Role::Nsw | Role::Platform => Ok(()),
        Role::Agency | Role::Operator => Err(Refusal::NotASubmitter(by.id().to_owned())),
    }
}

/// Does `by`'s role answer for an agency at all? Checked before anything is read or held.
pub fn answers_for_an_agency(by: &Participant) -> Result<(), Refusal> {
    match by {
        Participant::Agency { .. } => Ok(()),
        _ => Err(Refusal::NotYourAgency { participant: by.id().to_owned(), agency: "any".into() }),
    }
}

/// May `by` answer for `agency`?
pub fn may_acknowledge(by: &Participant, agency: &AgencyId) -> Result<(), Refusal> {
    if by.agency() == Some(agency) {
        Ok(())
    } else {
        Err(Refusal::NotYourAgency { participant: by.id().to_owned(), agency: agency.to_string() })
    }
}

/// May `by` amend, withdraw or answer a query on `doc`? Its sender, and the national single
/// window of the country of the document's submitting party (acting for its trader), as `types`
/// reads it. To anyone else the document reads as unknown.
pub fn may_change(by: &Participant, doc: &crate::store::StoredDocument, types: &DocumentTypes) -> bool {
    match by.role() {
        Role::Trader | Role::Platform => by.id() == doc.record.sender,
        Role::Nsw => {
            by.id() == doc.record.sender
                || serde_json::from_str::<Value>(&doc.payload)
                    .is_ok_and(|p| may_submit(by, &types.submitting_party(doc.record.document_type.as_str(), &p)).is_ok())
        }
        Role::Agency | Role::Operator => false,
    }
}

/// Whose release-time facts a participant reads. (The public, without identity, reads the
/// published figures only: `crate::indicators::public`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndicatorScope {
    /// Every consignment (operators).
    All,
    /// The consignments it opened (traders, national single windows, platforms).
    Owner(String),
    /// Its own part in the consignments routed to it (agencies).
    Agency(AgencyId),
}

/// The release-time facts `by` may read.
pub fn indicator_scope(by: &Participant) -> IndicatorScope {
    match by {
        Participant::Operator { .. } => IndicatorScope::All,
        Participant::Trader { id, .. } | Participant::Nsw { id, .. } | Participant::Platform { id, .. } => IndicatorScope::Owner(id.clone()),
        Participant::Agency { agency, .. } => IndicatorScope::Agency(agency.clone()),
    }
}

/// Whose TFA monitor figures `by` reads: an operator the region's, a national single window
/// its country's (the consignments into it), an agency its own parts'; a trader or a platform
/// none.
pub fn tfa_scope(by: &Participant) -> Result<crate::indicators::tfa::TfaScope, Refusal> {
    use crate::indicators::tfa::TfaScope;
    match by {
        Participant::Operator { .. } => Ok(TfaScope::Region),
        Participant::Nsw { country, .. } => Ok(TfaScope::Country(country.to_string())),
        Participant::Agency { agency, .. } => Ok(TfaScope::Agency(agency.clone())),
        Participant::Trader { id, .. } | Participant::Platform { id, .. } => Err(Refusal::NoTfaScope(id.clone())),
    }
}

/// May `by` change operational state (send failed deliveries again, list them)?
pub fn may_operate(by: &Participant) -> Result<(), Refusal> {
    if by.role() == Role::Operator { Ok(()) } else { Err(Refusal::NotAnOperator(by.id().to_owned())) }
}

/// May `by` have its consignments' status changes POSTed to a URL? Those who submit them.
pub fn may_register_webhook(by: &Participant) -> Result<(), Refusal> {
    match by.role() {
        Role::Trader | Role::Nsw | Role::Platform => Ok(()),
        Role::Agency | Role::Operator => Err(Refusal::NoConsignments(by.id().to_owned())),
    }
}

/// Whose risk-selection performance `by` reads when it asks for `agency`'s (`None`: every
/// agency's): an operator any agency's, or all; an agency its own only.
pub fn performance_read(by: &Participant, agency: Option<AgencyId>) -> Result<Option<AgencyId>, Refusal> {
    match by {
        Participant::Operator { .. } => Ok(agency),
        Participant::Agency { agency: own, .. } if agency.is_none() || agency.as_ref() == Some(own) => Ok(Some(own.clone())),
        Participant::Agency { id, .. } => {
            Err(Refusal::NotYourAgency { participant: id.clone(), agency: agency.map(|a| a.to_string()).unwrap_or_default() })
        }
        _ => Err(Refusal::NotAnOperator(by.id().to_owned())),
    }
}

/// Whose sellers `by` reads when it asks for `platform`'s (`None`: its own, or for an operator
/// every submitter's): a platform its own only, an operator any platform's.
pub fn sellers_read(by: &Participant, platform: Option<String>) -> Result<Option<String>, Refusal> {
    match (by, platform) {
        (Participant::Platform { id, .. }, None) => Ok(Some(id.clone())),
        (Participant::Platform { id, .. }, Some(p)) if &p == id => Ok(Some(p)),
        (Participant::Operator { .. }, p) => Ok(p),
        _ => Err(Refusal::NotYourPlatform(by.id().to_owned())),
    }
}

/// May `by` read `agency`'s stream of documents? The agency itself, and operators.
pub fn may_read_agency_stream(by: &Participant, agency: &AgencyId) -> bool {
    by.role() == Role::Operator || by.agency() == Some(agency)
}

/// The pages of earlier versions of the documents a view still shows, only.
fn retain_earlier_versions(view: &mut ConsignmentView) {
    let shown: Vec<uuid::Uuid> = view.documents.iter().map(|d| d.chain).collect();
    view.earlier_versions.retain(|e| shown.contains(&e.document_id));
}

/// The part of a consignment `by` may read, or `None` for none of it.
pub fn visible_consignment(by: &Participant, mut view: ConsignmentView) -> Option<ConsignmentView> {
    match by {
        Participant::Operator { .. } => Some(view),
        Participant::Trader { id, .. } | Participant::Nsw { id, .. } | Participant::Platform { id, .. } => {
            view.documents.retain(|d| &d.sender == id);
            // Whoever learns the profile can evade it: a submitter sees a delivery's channel once
            // its agency has answered, never the score, the source or the reasons.
            for delivery in view.documents.iter_mut().flat_map(|d| d.deliveries.iter_mut()) {
                delivery.inspection = None;
                let channel = delivery.selection.as_ref().and_then(|s| s.get("channel")).cloned();
                delivery.selection = match (&delivery.first_answer_at, channel) {
                    (Some(_), Some(channel)) => Some(serde_json::json!({ "channel": channel })),
                    _ => None,
                };
            }
            let agencies: Vec<AgencyId> = view.documents.iter().flat_map(|d| d.deliveries.iter().map(|x| x.agency.clone())).collect();
            view.time_release.agencies.retain(|a| agencies.contains(&a.agency));
            retain_earlier_versions(&mut view);
            (!view.documents.is_empty()).then_some(view)
        }
        Participant::Agency { agency, .. } => {
            for d in &mut view.documents {
                d.deliveries.retain(|x| &x.agency == agency);
            }
            view.documents.retain(|d| !d.deliveries.is_empty());
            view.time_release.agencies.retain(|a| &a.agency == agency);
            retain_earlier_versions(&mut view);
            (!view.documents.is_empty()).then_some(view)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document_types::PartyIdentifier;

    fn party(scheme: &str, value: &str, country: Option<&str>) -> SubmittingParty {
        SubmittingParty {
            role: "issuer".into(),
            identifier: Some(PartyIdentifier { scheme: scheme.into(), value: value.into(), at: "/issuer/id".into() }),
            country: country.map(str::to_owned),
        }
    }

    /// Issue 29, item 6: a party named by a DID is acted for as any other, by its whole
    /// `SCHEME:VALUE`; its scheme names no country, so an NSW goes by the party's address.
    #[test]
    fn a_party_named_by_a_did_is_acted_for_whole_and_judged_by_its_address() {
        let trader = Participant::Trader { id: "demo-trader".into(), acts_for: vec!["DID:did:web:exporter.example.com".into()] };
        assert!(may_submit(&trader, &party("DID", "did:web:exporter.example.com", None)).is_ok());
        assert!(may_submit(&trader, &party("DID", "did:web:other.example.com", None)).is_err());
        let nsw = |c: &str| Participant::Nsw { id: format!("demo-nsw-{c}"), country: CountryCode::parse(c).unwrap() };
        assert!(may_submit(&nsw("AR"), &party("DID", "did:web:exporter.example.com", Some("AR"))).is_ok(), "by its address");
        assert!(may_submit(&nsw("BR"), &party("DID", "did:web:exporter.example.com", Some("AR"))).is_err());
        assert!(may_submit(&nsw("AR"), &party("DID", "did:web:exporter.example.com", None)).is_err(), "no country, no NSW");
    }

    /// One participant of each role, as the region file's entries make them.
    fn each_role() -> Vec<Participant> {
        let config = |id: &str, role: Role| crate::config::ParticipantConfig {
            id: id.into(),
            role,
            agency: AgencyId::parse("ar-customs").ok().filter(|_| role == Role::Agency),
            country: CountryCode::parse("AR").ok().filter(|_| role == Role::Nsw),
            token_sha256: None,
            cert_sha256: None,
            acts_for: vec!["AR-CUIT:30714255831".into()],
            demo: false,
        };
        [("t", Role::Trader), ("n", Role::Nsw), ("p", Role::Platform), ("a", Role::Agency), ("o", Role::Operator)]
            .into_iter()
            .map(|(id, role)| Participant::of(&config(id, role)).unwrap())
            .collect()
    }

    /// The module's table, one row a rule: what each role may do, in the order trader, NSW,
    /// platform, agency (of ar-customs), operator.
    #[test]
    fn each_role_may_do_what_the_table_says_and_nothing_else() {
        let own = AgencyId::parse("ar-customs").unwrap();
        let other = AgencyId::parse("br-customs").unwrap();
        type Rule = fn(&Participant, &AgencyId, &AgencyId) -> bool;
        let rows: [(&str, Rule, [bool; 5]); 12] = [
            ("submits documents", |p, _, _| submits_documents(p).is_ok(), [true, true, true, false, false]),
            ("answers for an agency", |p, _, _| answers_for_an_agency(p).is_ok(), [false, false, false, true, false]),
            ("acknowledges for its agency", |p, own, _| may_acknowledge(p, own).is_ok(), [false, false, false, true, false]),
            ("acknowledges for another agency", |p, _, other| may_acknowledge(p, other).is_ok(), [false; 5]),
            ("operates", |p, _, _| may_operate(p).is_ok(), [false, false, false, false, true]),
            ("registers webhooks", |p, _, _| may_register_webhook(p).is_ok(), [true, true, true, false, false]),
            ("reads its agency's stream", |p, own, _| may_read_agency_stream(p, own), [false, false, false, true, true]),
            ("reads another agency's stream", |p, _, other| may_read_agency_stream(p, other), [false, false, false, false, true]),
            ("reads its agency's risk performance", |p, own, _| performance_read(p, Some(own.clone())).is_ok(), [false, false, false, true, true]),
            ("reads another agency's risk performance", |p, _, other| performance_read(p, Some(other.clone())).is_ok(), [false, false, false, false, true]),
            ("reads its own sellers", |p, _, _| sellers_read(p, None).is_ok(), [false, false, true, false, true]),
            ("reads another platform's sellers", |p, _, _| sellers_read(p, Some("other".into())).is_ok(), [false, false, false, false, true]),
        ];
        let participants = each_role();
        for (rule, allowed, expected) in rows {
            let found: Vec<bool> = participants.iter().map(|p| allowed(p, &own, &other)).collect();
            assert_eq!(found, expected, "{rule}: trader, NSW, platform, agency, operator");
        }
        let scopes: Vec<IndicatorScope> = participants.iter().map(indicator_scope).collect();
        assert_eq!(
            scopes,
            [
                IndicatorScope::Owner("t".into()),
                IndicatorScope::Owner("n".into()),
                IndicatorScope::Owner("p".into()),
                IndicatorScope::Agency(own),
                IndicatorScope::All
            ]
        );
    }

    #[test]
    fn a_region_entry_without_what_its_role_needs_is_no_participant() {
        let mut entry = crate::config::ParticipantConfig {
            id: "x".into(),
            role: Role::Agency,
            agency: None,
            country: None,
            token_sha256: None,
            cert_sha256: None,
            acts_for: vec![],
            demo: false,
        };
        assert!(Participant::of(&entry).unwrap_err().contains("no `agency`"));
        entry.role = Role::Nsw;
        assert!(Participant::of(&entry).unwrap_err().contains("no `country`"));
        entry.role = Role::Operator;
        assert_eq!(Participant::of(&entry).unwrap(), Participant::Operator { id: "x".into() });
    }
}
