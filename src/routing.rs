//! Routing: configured rules turn one validated document into the list of agencies that must
//! receive it (one *delivery* each). Rules only add agencies; their union, without repeats and
//! in rule order, is the routing decision.

use crate::config::{ChapterRange, RegionConfig, RouteConfig, RouteTarget};
use crate::domain::{AgencyId, CountryCode, DocumentType};

/// The facts about a document that rules look at: the envelope's, and what its type's table
/// (`crate::document_types`) reads in the payload.
#[derive(Debug, Clone)]
pub struct RoutingFacts {
    pub document_type: DocumentType,
    pub origin: CountryCode,
    pub destination: CountryCode,
    /// HS chapters (1..=99) of every goods line, ascending.
    pub hs_chapters: Vec<u8>,
    /// The transport mode, when the document states one.
    pub mode_of_transport: Option<String>,
    /// The border post, when the document names one.
    pub border_post: Option<String>,
}

/// The first of `routes` that sends a `document_type` by its origin country, and the first by
/// its destination (as its target's country, or a condition on it): their names. A type whose
/// payload does not repeat a country read here is routed by its envelope's word alone.
pub fn routed_by_country<'a>(routes: &'a [RouteConfig], document_type: &str) -> (Option<&'a str>, Option<&'a str>) {
    let applies = |r: &&RouteConfig| r.document_types.is_empty() || r.document_types.iter().any(|t| t.as_str() == document_type);
    let origin = routes.iter().filter(applies).find(|r| matches!(r.to, RouteTarget::Origin { .. }) || !r.origins.is_empty());
    let destination =
        routes.iter().filter(applies).find(|r| matches!(r.to, RouteTarget::Destination { .. }) || !r.destinations.is_empty());
    (origin.map(|r| r.name.as_str()), destination.map(|r| r.name.as_str()))
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    document_types: Vec<DocumentType>,
    origins: Vec<CountryCode>,
    destinations: Vec<CountryCode>,
    hs_chapters: Vec<ChapterRange>,
    modes: Vec<String>,
    border_posts: Vec<String>,
    target: RouteTarget,
}

impl Rule {
    fn matches(&self, f: &RoutingFacts) -> bool {
        (self.document_types.is_empty() || self.document_types.contains(&f.document_type))
            && (self.origins.is_empty() || self.origins.contains(&f.origin))
            && (self.destinations.is_empty() || self.destinations.contains(&f.destination))
            && (self.hs_chapters.is_empty()
                || f.hs_chapters.iter().any(|c| self.hs_chapters.iter().any(|r| r.contains(*c))))
            && (self.modes.is_empty()
                || f.mode_of_transport.as_ref().is_some_and(|m| self.modes.contains(m)))
            && (self.border_posts.is_empty()
                || f.border_post.as_ref().is_some_and(|p| self.border_posts.contains(p)))
    }
}

/// One agency chosen for a document, and the rule that chose it (kept for the audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedDelivery {
    pub agency: AgencyId,
    pub rule: String,
}

/// The compiled rule set of a region.
#[derive(Debug, Clone)]
pub struct Router {
    rules: Vec<Rule>,
    /// (agency, kind) of every agency in the region.
    agencies: Vec<(AgencyId, String)>,
}

impl Router {
    /// Compiles the region's rules: the region file's loader parsed and checked them (targets,
    /// chapter ranges, agencies and kinds), so compiling cannot fail.
    pub fn new(region: &RegionConfig) -> Self {
        let rules = region
            .routes
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                document_types: r.document_types.clone(),
                origins: r.origins.clone(),
                destinations: r.destinations.clone(),
                hs_chapters: r.hs_chapters.clone(),
                modes: r.modes_of_transport.clone(),
                border_posts: r.border_posts.clone(),
                target: r.to.clone(),
            })
            .collect();
        let agencies = region.agencies.iter().map(|a| (a.id.clone(), a.kind.clone())).collect();
        Router { rules, agencies }
    }

    /// Checks that every route names document types the registry has (`known`); the error
    /// names the route and the type.
    pub fn check_types(&self, known: impl Fn(&str) -> bool) -> Result<(), String> {
        for rule in &self.rules {
            if let Some(t) = rule.document_types.iter().find(|t| !known(t.as_str())) {
                return Err(format!(
                    "route {:?} names document type {t:?}, which is not one of the region's: a document type is its schemas \
                     (schemas/{t}/<version>.json) and its [document_types.{t}] table in the region file",
                    rule.name
                ));
            }
        }
        Ok(())
    }

    fn agencies_of<'a>(&'a self, country: &'a CountryCode, kind: &'a str) -> impl Iterator<Item = &'a AgencyId> + 'a {
        self.agencies
            .iter()
            .filter(move |(id, k)| k == kind && &id.country() == country)
            .map(|(id, _)| id)
    }

    /// The kind of `agency` (`customs`, `sanitary`, `border`, ...), if it is the region's.
    pub fn kind_of(&self, agency: &AgencyId) -> Option<&str> {
        self.agencies.iter().find(|(id, _)| id == agency).map(|(_, k)| k.as_str())
    }

    /// The deliveries a document needs, in rule order, each agency once.
    pub fn route(&self, facts: &RoutingFacts) -> Vec<RoutedDelivery> {
        let mut out: Vec<RoutedDelivery> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.matches(facts)) {
            let chosen: Vec<AgencyId> = match &rule.target {
                RouteTarget::Agency(a) => vec![a.clone()],
                RouteTarget::Origin { kind } => self.agencies_of(&facts.origin, kind).cloned().collect(),
                RouteTarget::Destination { kind } => self.agencies_of(&facts.destination, kind).cloned().collect(),
                RouteTarget::Country { country, kind } => self.agencies_of(country, kind).cloned().collect(),
            };
            for agency in chosen {
                if !out.iter().any(|d| d.agency == agency) {
                    out.push(RoutedDelivery { agency, rule: rule.name.clone() });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The repository's demo region, so the rules tested are the ones shipped.
    fn demo_router() -> Router {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml"))
            .expect("config/ventanilla.toml is part of the repository");
        let region: RegionConfig = toml::from_str(&text).expect("the demo region parses");
        Router::new(&region)
    }

    /// What the shipped `[document_types]` tables read in `payload`.
    fn facts(t: &str, o: &str, d: &str, payload: Value) -> RoutingFacts {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
        let region: RegionConfig = toml::from_str(&text).unwrap();
        let types = crate::document_types::DocumentTypes::new(&region.document_types).unwrap();
        let envelope = crate::document_types::EnvelopeFacts { ucr: "X", origin: o, destination: d };
        let read = types.read(t, &envelope, &payload).unwrap();
        RoutingFacts {
            document_type: DocumentType::parse(t).unwrap(),
            origin: CountryCode::parse(o).unwrap(),
            destination: CountryCode::parse(d).unwrap(),
            hs_chapters: read.hs_chapters,
            mode_of_transport: read.mode_of_transport,
            border_post: read.border_post,
        }
    }

    fn agencies(r: &Router, f: &RoutingFacts) -> Vec<String> {
        r.route(f).into_iter().map(|d| d.agency.to_string()).collect()
    }

    #[test]
    fn a_route_to_a_kind_the_region_lacks_or_to_an_unknown_type_is_named() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
        let mut region: RegionConfig = toml::from_str(&text).unwrap();
        let mut typo = region.routes[0].clone();
        typo.name = "sanitary typo".into();
        typo.to = RouteTarget::Destination { kind: "sanitry".into() };
        region.routes.push(typo);
        let err = region.check().expect_err("refused");
        assert!(err.contains("route \"sanitary typo\"") && err.contains("\"sanitry\"") && err.contains("sanitary"), "{err}");

        let router = demo_router();
        assert!(router.check_types(|t| t != "spsCertificate").unwrap_err().contains("spsCertificate"));
        assert!(router.check_types(|_| true).is_ok());
    }

    #[test]
    fn facts_are_read_where_the_type_keeps_them() {
        let f = facts(
            "customsDeclaration",
            "AR",
            "BR",
            json!({"modeOfTransport": "road", "goodsItems": [{"hsCode": "870323"}, {"hsCode": "020130"}], "x": {"hsCode": "100199"}}),
        );
        assert_eq!(f.hs_chapters, vec![2, 87], "goods items only: an hsCode elsewhere is not a goods line");
        assert_eq!(f.mode_of_transport.as_deref(), Some("road"));
        let f = facts("packingList", "AR", "BR", json!({"packages": [{"contents": [{"hsCode": "100199"}]}, {"contents": [{"hsCode": "020130"}]}]}));
        assert_eq!(f.hs_chapters, vec![2, 10]);
    }

    #[test]
    fn a_route_may_name_border_posts() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
        let mut region: RegionConfig = toml::from_str(&text).unwrap();
        let mut post = region.routes[0].clone();
        post.name = "Uruguaiana's notices to Brazil's sanitary agency".into();
        post.border_posts = vec!["BRURG".into()];
        post.to = RouteTarget::Agency(AgencyId::parse("br-sanitary").unwrap());
        region.routes.push(post);
        let r = Router::new(&region);
        let at = |unlocode: &str| facts("borderCrossingNotice", "AR", "BR", json!({"modeOfTransport": "road", "crossingPoint": {"unLocode": unlocode}}));
        assert!(agencies(&r, &at("BRURG")).contains(&"br-sanitary".to_string()));
        assert!(!agencies(&r, &at("BRFOZ")).contains(&"br-sanitary".to_string()));
    }

    #[test]
    fn any_document_goes_to_the_destination_customs() {
        let r = demo_router();
        let f = facts("commercialInvoice", "AR", "BR", json!({"lines": [{"hsCode": "847130"}]}));
        assert_eq!(agencies(&r, &f), vec!["br-customs"]);
    }

    #[test]
    fn declarations_also_go_to_the_origin_customs() {
        let r = demo_router();
        let f = facts("customsDeclaration", "UY", "AR", json!({"modeOfTransport": "sea", "goodsItems": [{"hsCode": "300490"}]}));
        assert_eq!(agencies(&r, &f), vec!["ar-customs", "uy-customs"]);
    }

    #[test]
    fn food_animal_and_plant_chapters_add_the_destination_sanitary_agency() {
        let r = demo_router();
        for (hs, sanitary) in [("010229", true), ("240120", true), ("250100", false), ("870323", false)] {
            let f = facts("commercialInvoice", "BR", "UY", json!({"lines": [{"hsCode": hs}]}));
            assert_eq!(agencies(&r, &f).contains(&"uy-sanitary".to_string()), sanitary, "{hs}");
        }
    }

    #[test]
    fn sps_certificates_always_reach_the_destination_sanitary_agency() {
        let r = demo_router();
        let f = facts("spsCertificate", "AR", "UY", json!({"modeOfTransport": "sea", "commodities": [{"hsCode": "440710"}]}));
        assert_eq!(agencies(&r, &f), vec!["uy-customs", "uy-sanitary"]);
    }

    #[test]
    fn road_and_rail_declarations_add_the_destination_border_agency() {
        let r = demo_router();
        for (mode, border) in [("road", true), ("rail", true), ("sea", false), ("air", false)] {
            let f = facts("customsDeclaration", "AR", "BR", json!({"modeOfTransport": mode, "goodsItems": [{"hsCode": "847130"}]}));
            assert_eq!(agencies(&r, &f).contains(&"br-border".to_string()), border, "{mode}");
        }
    }

    #[test]
    fn border_crossing_notices_always_reach_the_destination_border_agency() {
        let r = demo_router();
        let f = facts("borderCrossingNotice", "UY", "AR", json!({"modeOfTransport": "sea", "cargoSummary": {"goods": [{"hsCode": "470321"}]}}));
        assert_eq!(agencies(&r, &f), vec!["ar-customs", "ar-border"]);
    }

    #[test]
    fn a_destination_outside_the_region_routes_nowhere() {
        let r = demo_router();
        let f = facts("commercialInvoice", "AR", "CL", json!({"lines": [{"hsCode": "847130"}]}));
        assert!(r.route(&f).is_empty());
    }

    #[test]
    fn chapter_ranges_parse_and_refuse_nonsense() {
        let parse = |s: &str| ChapterRange::parse(s).map(|r| (1..=99).filter(|c| r.contains(*c)).collect::<Vec<u8>>());
        assert_eq!(parse("01-24").unwrap(), (1..=24).collect::<Vec<u8>>());
        assert_eq!(parse("84").unwrap(), vec![84]);
        assert!(parse("24-01").is_err());
        assert!(parse("1").is_err());
        assert!(parse("00").is_err());
        // The region file's loader reads them, and refuses nonsense naming the field.
        let route = |chapters: &str| format!("name = \"r\"\nhs_chapters = [{chapters}]\nto = {{ agency = \"br-customs\" }}\n");
        let read: RouteConfig = toml::from_str(&route("\"01-24\", \"84\"")).unwrap();
        assert_eq!(read.hs_chapters, vec![ChapterRange::parse("01-24").unwrap(), ChapterRange::parse("84").unwrap()]);
        let refused = toml::from_str::<RouteConfig>(&route("\"24-01\"")).unwrap_err().to_string();
        assert!(refused.contains("hs_chapters") && refused.contains("runs backwards"), "{refused}");
        let refused = toml::from_str::<RouteConfig>("name = \"r\"\nto = { country = \"Brazil\", kind = \"customs\" }\n").unwrap_err().to_string();
        assert!(refused.contains("to.country") && refused.contains("\"Brazil\""), "{refused}");
    }
}
