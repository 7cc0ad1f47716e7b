//! Typed, layered configuration, checked once at start: the region file
//! (`<config>/ventanilla.toml`: countries, agencies, participants, routes, limits), then the
//! command line and environment (`VENTANILLA_*`) for where to bind, store and publish.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{AgencyId, CountryCode, DocumentType, Role};

/// Why the configuration cannot be used. Each variant names the file or setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    #[error("the configuration file {path} is not valid TOML for Ventanilla: {source}")]
    Parse { path: PathBuf, #[source] source: toml::de::Error },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Tls(String),
}

/// Everything `serve` needs, after layering file, environment and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP front binds; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Directory of the embedded store (`ventanilla.db`).
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers; `None` starts librdkafka's in-process mock cluster.
    pub kafka_brokers: Option<String>,
    /// Directory that holds `ventanilla.toml` (the region).
    pub config_dir: PathBuf,
    /// TLS for the HTTP front; `None` serves plain HTTP (loopback only, unless opted out).
    pub tls: Option<TlsFiles>,
    /// The region file's content.
    pub region: RegionConfig,
    /// With the embedded cluster: a loopback port that always reaches its broker, so agencies'
    /// `kcat` lines stay the same from one start to the next. `None`: only the cluster's own
    /// port, which changes at every start.
    pub embedded_kafka_port: Option<u16>,
}

impl Settings {
    /// The region file's path inside `config_dir`.
    pub fn region_path(config_dir: &Path) -> PathBuf {
        config_dir.join("ventanilla.toml")
    }

    /// Where the schemas live: `gateway.schemas_dir`, relative to the configuration directory.
    pub fn schemas_dir(&self) -> PathBuf {
        self.region.schemas_dir(&self.config_dir)
    }

    /// Where the keys that sign receipts are (`gateway.receipt_keys_dir`).
    pub fn receipt_keys_dir(&self) -> PathBuf {
        match &self.region.gateway.receipt_keys_dir {
            Some(dir) => self.config_dir.join(dir),
            None => self.data_dir.join("receipt-keys"),
        }
    }

    /// The store: `[store] url` (or what `--store` set there), else the SQLite file under the
    /// data directory. The URL was checked at load.
    pub fn store_url(&self) -> Result<StoreUrl, ConfigError> {
        match &self.region.store.url {
            Some(url) => StoreUrl::parse(url).map_err(|message| ConfigError::Invalid { path: Self::region_path(&self.config_dir), message }),
            None => Ok(StoreUrl::embedded(&self.data_dir)),
        }
    }

    /// The settings of `serve`: the region file in `config_dir`, then what the command line
    /// and environment say of where to bind, store and publish (`options`).
    pub fn load(config_dir: PathBuf, options: ServeOptions) -> Result<Self, ConfigError> {
        let mut region = RegionConfig::load(&config_dir)?;
        let ServeOptions { bind, data_dir, kafka_brokers, topic_prefix, tls } = options;
        if let Some(p) = topic_prefix {
            region.kafka.topic_prefix = p;
        }
        let kafka_brokers = kafka_brokers.filter(|b| !b.trim().is_empty());
        Ok(Settings { bind, data_dir, kafka_brokers, config_dir, tls, region, embedded_kafka_port: None })
    }
}

/// What `serve` takes from the command line and environment, beside the region file.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address the HTTP front binds; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Kafka bootstrap servers; `None` (or blank) starts the embedded cluster.
    pub kafka_brokers: Option<String>,
    /// Overrides the region file's `kafka.topic_prefix`.
    pub topic_prefix: Option<String>,
    /// TLS for the HTTP front.
    pub tls: Option<TlsFiles>,
}

impl ServeOptions {
    /// Plain HTTP on `bind`, the store under `data_dir`, the embedded broker: what tests and
    /// tools start from.
    pub fn local(bind: SocketAddr, data_dir: PathBuf) -> Self {
        ServeOptions { bind, data_dir, kafka_brokers: None, topic_prefix: None, tls: None }
    }
}

impl RegionConfig {
    /// The region file of `config_dir` (`ventanilla.toml`), parsed and checked, with the Kafka
    /// secrets the environment holds (`VENTANILLA_KAFKA_SASL_PASSWORD`,
    /// `VENTANILLA_KAFKA_SSL_KEY_PASSWORD`): what every command reads, `serve` or not.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let path = Settings::region_path(config_dir);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let mut region: RegionConfig = toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.clone(), source })?;
        let secret = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).map(Secret::new);
        region.kafka.security.sasl_password = secret("VENTANILLA_KAFKA_SASL_PASSWORD");
        region.kafka.security.ssl_key_password = secret("VENTANILLA_KAFKA_SSL_KEY_PASSWORD");
        region.check().map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(region)
    }

    /// Where its schemas live: `gateway.schemas_dir`, relative to `config_dir`.
    pub fn schemas_dir(&self, config_dir: &Path) -> PathBuf {
        config_dir.join(&self.gateway.schemas_dir)
    }
}

/// Where the HTTP front's certificate, key and participant CA are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (`VENTANILLA_TLS_CERT`).
    pub cert: PathBuf,
    /// Its private key (`VENTANILLA_TLS_KEY`); only the path is ever shown.
    pub key: PathBuf,
    /// The CA that signs participants' client certificates (`VENTANILLA_TLS_CLIENT_CA`);
    /// `None` asks for no client certificates.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// From the three settings: certificate and key together or neither; a client CA only
    /// with them.
    pub fn from_parts(cert: Option<PathBuf>, key: Option<PathBuf>, client_ca: Option<PathBuf>) -> Result<Option<Self>, ConfigError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key, client_ca })),
            (None, None) if client_ca.is_none() => Ok(None),
            _ => Err(ConfigError::Tls(
                "VENTANILLA_TLS_CERT and VENTANILLA_TLS_KEY go together, and VENTANILLA_TLS_CLIENT_CA needs both".into(),
            )),
        }
    }
}

/// The region file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub indicators: IndicatorsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub quotas: QuotasConfig,
    pub agencies: Vec<AgencyConfig>,
    #[serde(default)]
    pub participants: Vec<ParticipantConfig>,
    pub routes: Vec<RouteConfig>,
    /// How to read each document type (`[document_types.<type>]`): a folder of schemas is a
    /// document type that can be submitted only when the region describes it here.
    #[serde(default)]
    pub document_types: std::collections::BTreeMap<String, DocumentTypeConfig>,
    /// Party identifier schemes checked as their country defines them (`crate::identifiers`):
    /// scheme (`AR-CUIT`) -> the check.
    #[serde(default)]
    pub identifier_schemes: std::collections::BTreeMap<String, IdentifierSchemeConfig>,
    /// Risk profiling: rules, inspection budgets (`crate::risk`).
    #[serde(default)]
    pub risk: RiskConfig,
}

/// How a party identifier scheme's values are checked (`[identifier_schemes.<scheme>]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierSchemeConfig {
    /// One of the gateway's checks: `ar-cuit`, `br-cnpj`, `br-cpf`, `uy-rut`.
    pub check: String,
}

/// Where the gateway finds, in a document of one type, what its rules look at: JSON pointers
/// into the payload (`crate::document_types`; `*` stands for every item of an array). Each
/// setting takes one pointer or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentTypeConfig {
    /// What the document is, in a sentence (shown in `/openapi.json`).
    #[serde(default)]
    pub description: Option<String>,
    /// The party that submits it: a trader must act for it, a national single window be of
    /// its country.
    pub submitter: SubmitterConfig,
    /// The consignment's reference (UCR) in the payload, when it carries one: it must be the
    /// envelope's `ucr`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub consignment_reference: Vec<String>,
    /// The country of departure in the payload, when it states one: it must be the envelope's
    /// `origin`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub origin: Vec<String>,
    /// The country of destination in the payload: it must be the envelope's `destination`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub destination: Vec<String>,
    /// The payload states neither country (a packing list, a border-crossing notice), and the
    /// region knows it: routes take the envelope's `origin` and `destination` as given, and the
    /// start does not warn that they are never checked.
    #[serde(default)]
    pub countries_from_envelope: bool,
    /// HS codes of the goods (routes' `hs_chapters`; the indicators' HS chapter).
    #[serde(default, deserialize_with = "one_or_many")]
    pub hs_codes: Vec<String>,
    /// The transport mode (routes' `modes_of_transport`; the indicators' transport mode).
    #[serde(default, deserialize_with = "one_or_many")]
    pub mode_of_transport: Vec<String>,
    /// The payload's transport-mode codes in the region's words (`"3" = "road"`, UN/ECE
    /// Recommendation 19), for standards that code them; a code not listed is kept as it is.
    #[serde(default)]
    pub modes: std::collections::BTreeMap<String, String>,
    /// The border post the document names (routes' `border_posts`; a document naming one is the
    /// arrival of the goods in the release-time indicators).
    #[serde(default, deserialize_with = "one_or_many")]
    pub border_post: Vec<String>,
    /// How each version must stay compatible with the one before it (`backward`,
    /// `backward-open`, `forward`, `full`, `none`), over what the newer schema file declares
    /// (`x-compatibility`): a publisher's file is not edited to say it.
    #[serde(default)]
    pub compatibility: Option<String>,
    /// The facts a risk analyst's rules and the risk model read (`[document_types.<type>.risk]`,
    /// `crate::risk`).
    #[serde(default)]
    pub risk: RiskFactsConfig,
    /// What the region adds to the publisher's schema, without editing its file
    /// (`[[document_types.<type>.overlays]]`, `crate::overlays`).
    #[serde(default)]
    pub overlays: Vec<OverlayConfig>,
}

/// One addition to a publisher's schema, by JSON pointer into its file (`crate::overlays`): the
/// region enforces more than the standard asks (a required member, a pattern, an enumeration,
/// bounds) and says it in its own words (`hint`), and the publisher's file stays as published.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    /// The file, as a place under the schemas directory (`billOfLading/3.0.0.json`); every
    /// version of the type when not given.
    #[serde(default)]
    pub file: Option<String>,
    /// The schema object in it the additions go to (`/properties/shipper`, `/$defs/Party`).
    pub at: String,
    /// Members that must be present (added to the schema's `required`).
    #[serde(default)]
    pub required: Vec<String>,
    /// A pattern the value must match too.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The values allowed (with the publisher's own, if any: both must hold).
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<serde_json::Value>>,
    /// Bounds: beside the publisher's own, if any (both hold).
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub min_items: Option<u64>,
    #[serde(default)]
    pub max_items: Option<u64>,
    /// What the value must be, in the region's words, with an example (`x-hint`): it tells every
    /// violation of a pattern, enumeration, format or bound there, the publisher's included.
    #[serde(default)]
    pub hint: Option<String>,
}

/// Where a document type states the facts of risk profiling (`crate::risk::facts`): JSON
/// pointers into the payload, as the type's other settings (`*` for every item).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskFactsConfig {
    /// Every party the document names, by its role (`seller`, `consignee`, `exporter`...).
    #[serde(default)]
    pub parties: std::collections::BTreeMap<String, RiskPartyConfig>,
    /// The declared value: one total, or every line's (summed).
    #[serde(default, deserialize_with = "one_or_many")]
    pub value: Vec<String>,
    /// The declared value's currency (ISO 4217).
    #[serde(default, deserialize_with = "one_or_many")]
    pub currency: Vec<String>,
    /// The gross mass in kilograms: one total, or every line's (summed).
    #[serde(default, deserialize_with = "one_or_many")]
    pub gross_mass: Vec<String>,
    /// The quantity: one total, or every line's (summed).
    #[serde(default, deserialize_with = "one_or_many")]
    pub quantity: Vec<String>,
    /// The country of origin of the goods, of every line.
    #[serde(default, deserialize_with = "one_or_many")]
    pub origin_of_goods: Vec<String>,
    /// The e-commerce platform the document came through (its identifier's value).
    #[serde(default, deserialize_with = "one_or_many")]
    pub platform: Vec<String>,
}

/// A party of a document, for risk profiling: its identifier as `SCHEME:VALUE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskPartyConfig {
    /// Its identifier's value (with `*`, every party of that role).
    #[serde(deserialize_with = "one_or_many")]
    pub identifier: Vec<String>,
    /// Its identifier's scheme: a JSON pointer, or the scheme itself when fixed for the type.
    #[serde(deserialize_with = "one_or_many")]
    pub scheme: Vec<String>,
}

/// Risk profiling (`[risk]`, `crate::risk`): the analysts' rules and each agency's inspection
/// budget.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// The share of each budget chosen at random among the documents not selected otherwise, so
    /// that outcomes are learned from documents no rule or model pointed at.
    pub exploration: f64,
    /// Rules that analysts write (`[[risk.rules]]`).
    pub rules: Vec<RiskRuleConfig>,
    /// Inspection rates per agency (`[[risk.budgets]]`).
    pub budgets: Vec<RiskBudgetConfig>,
    /// Hours between trainings of a risk model on the findings so far (`crate::risk::learning`);
    /// 0: only on demand (`POST /v1/risk/models`).
    pub training_every_hours: u64,
    /// Per destination country, the value under which a green-channel parcel is released by
    /// its agencies' standing instruction (`[[risk.de_minimis]]`).
    pub de_minimis: Vec<DeMinimisConfig>,
}

/// A destination's de minimis: documents of `document_types` declaring less than `below` in
/// `currency`, sent to the green channel, are released by each agency's standing instruction as
/// they are accepted, recorded as that agency's decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeMinimisConfig {
    pub destination: String,
    pub below: f64,
    pub currency: String,
    pub document_types: Vec<String>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig { exploration: 0.10, rules: Vec::new(), budgets: Vec::new(), training_every_hours: 24, de_minimis: Vec::new() }
    }
}

/// One rule of a risk profile: when every condition given holds, it adds `points` to the
/// document's score, or sends it to `channel` whatever the budget. The same form in the region
/// file and in `PUT /v1/risk/rules`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskRuleConfig {
    /// Unique, shown to the agency among a selection's reasons.
    pub name: String,
    /// Why, in words an inspector reads.
    pub reason: String,
    /// Points added to the score when the rule holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<f64>,
    /// A mandatory channel (`yellow` or `red`) when the rule holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The agency kinds the rule speaks to (`customs`, `sanitary`...); every kind when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agency_kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub document_types: Vec<String>,
    /// HS codes by prefix or range of prefixes: `"0201"`, `"0201-0206"`, `"85"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hs_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins_of_goods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub border_posts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes_of_transport: Vec<String>,
    /// Parties (`SCHEME:VALUE`) of which the document must name one, in any role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_above: Option<f64>,
    /// Declared value per kilogram of gross mass below this (undervaluation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_per_kg_below: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_per_kg_above: Option<f64>,
    /// A value just under a threshold (a de minimis, a licence's): `{ threshold, within }`,
    /// `within` a share of the threshold (0.1: the 10% under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_near: Option<ValueNearConfig>,
}

/// A value in `[threshold × (1 - within), threshold)`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueNearConfig {
    pub threshold: f64,
    pub within: f64,
}

/// The inspection rates of the agencies of one kind and country (and border post).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBudgetConfig {
    pub agency_kind: String,
    pub country: String,
    /// Only the documents naming this border post; the budget without one covers the rest.
    #[serde(default)]
    pub border_post: Option<String>,
    /// The share of documents inspected physically (red channel).
    pub red: f64,
    /// The share inspected on documents (yellow channel).
    pub yellow: f64,
}

/// The submitting party of a document type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitterConfig {
    /// What the party is called in this type (`declarant`, `shipper`), for messages; by default
    /// the first member name of `identifier`.
    #[serde(default)]
    pub party: Option<String>,
    /// Its identifier's value.
    #[serde(deserialize_with = "one_or_many")]
    pub identifier: Vec<String>,
    /// Its identifier's scheme (`AR-CUIT`, `BR-CNPJ`...): a JSON pointer, or the scheme itself
    /// when every document of the type uses one.
    #[serde(deserialize_with = "one_or_many")]
    pub scheme: Vec<String>,
    /// The country of its address (a national single window submits for its own country's).
    #[serde(default, deserialize_with = "one_or_many")]
    pub country: Vec<String>,
    /// The region's name of a scheme the payload gives otherwise (`"AR-TAX" = "AR-CUIT"`), for
    /// a scheme read from the payload or built from its fields; a scheme not listed is kept.
    #[serde(default)]
    pub scheme_names: std::collections::BTreeMap<String, String>,
}

/// A setting written as one string or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What one participant may use of the gateway (`[quotas.<role>]`, `[quotas.participants.<id>]`):
/// so that no participant's load, however heavy or hostile, can slow or starve another's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    pub trader: Quota,
    pub nsw: Quota,
    /// An e-commerce platform's: a country's parcels in batches of up to 10,000, as an NSW's.
    pub platform: Quota,
    pub agency: Quota,
    pub operator: Quota,
    /// The quota of demo participants (public tokens, loopback only) when set, over their
    /// role's: the repository's region file sets one large enough for the tests' and the
    /// benchmark's load.
    pub demo: Option<Quota>,
    /// Overrides for named participants, over their role's quota.
    pub participants: std::collections::BTreeMap<String, QuotaOverride>,
}

/// One participant's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests of any kind per second, sustained.
    pub requests_per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Submissions, batches and acknowledgments in progress at once.
    pub concurrent_writes: u32,
    /// Event streams and long polls open at once.
    pub open_streams: u32,
    /// Request bodies being read, the trees they are parsed into, and stream pages being
    /// sent, in bytes, at once.
    pub bytes_in_flight: u64,
    /// Milliseconds of CPU a second the gateway spends parsing, validating and routing this
    /// participant's documents, sustained (a second's worth may be spent at once).
    #[serde(default = "default_cpu_millis_per_second")]
    pub cpu_millis_per_second: u32,
}

/// A participant's CPU quota where its role's table does not set one: half a core.
fn default_cpu_millis_per_second() -> u32 {
    500
}

/// A participant's own quota: what it sets replaces its role's.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub concurrent_writes: Option<u32>,
    pub open_streams: Option<u32>,
    pub bytes_in_flight: Option<u64>,
    pub cpu_millis_per_second: Option<u32>,
}

impl Quota {
    /// This quota with `o`'s settings over it.
    pub fn with(self, o: &QuotaOverride) -> Quota {
        Quota {
            requests_per_second: o.requests_per_second.unwrap_or(self.requests_per_second),
            burst: o.burst.unwrap_or(self.burst),
            concurrent_writes: o.concurrent_writes.unwrap_or(self.concurrent_writes),
            open_streams: o.open_streams.unwrap_or(self.open_streams),
            bytes_in_flight: o.bytes_in_flight.unwrap_or(self.bytes_in_flight),
            cpu_millis_per_second: o.cpu_millis_per_second.unwrap_or(self.cpu_millis_per_second),
        }
    }
}

impl Default for QuotasConfig {
    fn default() -> Self {
        let mib = 1024 * 1024;
        // A trader or an agency: tens of documents a second at most in practice; a national
        // single window forwards a country's; an operator reads and retries.
        let trader = Quota {
            requests_per_second: 100,
            burst: 200,
            concurrent_writes: 32,
            open_streams: 4,
            // One batch body (`gateway.max_batch_body_bytes`) and one item's parsed tree.
            bytes_in_flight: 64 * mib,
            cpu_millis_per_second: 500,
        };
        QuotasConfig {
            trader,
            nsw: Quota { requests_per_second: 500, burst: 1000, concurrent_writes: 128, open_streams: 8, bytes_in_flight: 128 * mib, cpu_millis_per_second: 1000 },
            platform: Quota { requests_per_second: 500, burst: 1000, concurrent_writes: 128, open_streams: 8, bytes_in_flight: 128 * mib, cpu_millis_per_second: 1000 },
            agency: Quota { concurrent_writes: 64, open_streams: 8, ..trader },
            operator: Quota { requests_per_second: 50, burst: 100, concurrent_writes: 8, open_streams: 4, bytes_in_flight: 64 * mib, cpu_millis_per_second: 250 },
            demo: None,
            participants: Default::default(),
        }
    }
}

impl QuotasConfig {
    /// The quota of participant `id` of `role` (a demo participant when `demo`).
    pub fn of(&self, id: &str, role: Role, demo: bool) -> Quota {
        let base = match (demo, self.demo, role) {
            (true, Some(q), _) => q,
            (_, _, Role::Trader) => self.trader,
            (_, _, Role::Nsw) => self.nsw,
            (_, _, Role::Platform) => self.platform,
            (_, _, Role::Agency) => self.agency,
            (_, _, Role::Operator) => self.operator,
        };
        self.participants.get(id).map_or(base, |o| base.with(o))
    }

    /// The table a setting of participant `id`'s quota comes from, as the region file names it:
    /// its own when `set_by_override` (it sets that one), else `[quotas.demo]` for a demo
    /// participant when there is one, else its role's.
    fn source_of(&self, id: &str, role: Role, demo: bool, set_by_override: bool) -> String {
        match (set_by_override, demo && self.demo.is_some()) {
            (true, _) => format!("[quotas.participants.{id}]"),
            (false, true) => "[quotas.demo]".to_owned(),
            (false, false) => format!("[quotas.{}]", role.as_str()),
        }
    }

    /// Each participant's quota can do something, holds one body and its parsed tree
    /// (`max_body_bytes` + `max_parsed_bytes`), and leaves some of the gateway's write pool
    /// (`max_concurrent_writes`) and of its bytes in flight (`pool_bytes`) to the others.
    fn check(
        &self,
        participants: &[ParticipantConfig],
        max_body_bytes: usize,
        max_parsed_bytes: usize,
        max_concurrent_writes: usize,
        pool_bytes: u64,
    ) -> Result<(), String> {
        for id in self.participants.keys() {
            if !participants.iter().any(|p| &p.id == id) {
                return Err(format!("quotas.participants.{id}: no such participant"));
            }
        }
        for p in participants {
            let q = self.of(&p.id, p.role, p.demo);
            let zero = [("requests_per_second", u64::from(q.requests_per_second)), ("burst", u64::from(q.burst)),
                ("concurrent_writes", u64::from(q.concurrent_writes)), ("open_streams", u64::from(q.open_streams)), ("bytes_in_flight", q.bytes_in_flight),
                ("cpu_millis_per_second", u64::from(q.cpu_millis_per_second))];
            if let Some((name, _)) = zero.iter().find(|(_, v)| *v == 0) {
                return Err(format!("the quota of participant {} sets {name} to 0: it could do nothing (remove the participant instead)", p.id));
            }
            // The writes pool and the bytes in flight are shared by all participants (streams have
            // no pool beyond each participant's own).
            if q.concurrent_writes as usize >= max_concurrent_writes {
                let overridden = self.participants.get(&p.id).is_some_and(|o| o.concurrent_writes.is_some());
                return Err(format!(
                    "participant {} (role {}{}) may have {} writes in progress at once (concurrent_writes in {}), and \
                     gateway.max_concurrent_writes, the pool every participant shares, is {max_concurrent_writes}: it alone could \
                     take every write permit, and every other participant would be answered 503 overloaded. Set its \
                     concurrent_writes below {max_concurrent_writes} (a fraction of the pool), or raise gateway.max_concurrent_writes",
                    p.id,
                    p.role.as_str(),
                    if p.demo { ", demo" } else { "" },
                    q.concurrent_writes,
                    self.source_of(&p.id, p.role, p.demo, overridden),
                ));
            }
            let one_body = max_body_bytes as u64 + max_parsed_bytes as u64;
            if q.bytes_in_flight < one_body {
                return Err(format!(
                    "the quota of participant {} allows {} bytes in flight, less than one body of gateway.max_body_bytes or gateway.max_batch_body_bytes ({max_body_bytes}) \
                     and its parsed tree (gateway.max_json_parsed_bytes, {max_parsed_bytes}): raise its bytes_in_flight to at least {one_body}",
                    p.id, q.bytes_in_flight
                ));
            }
            if q.bytes_in_flight >= pool_bytes {
                return Err(format!(
                    "the quota of participant {} allows {} bytes in flight, as much as the whole gateway's gateway.max_bytes_in_flight ({pool_bytes}): \
                     one participant could crowd out every other. Lower its bytes_in_flight below {pool_bytes}, or raise the pool",
                    p.id, q.bytes_in_flight
                ));
            }
        }
        Ok(())
    }
}

/// Where the store is (`[store]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (a file) or `postgres://user@host:port/db`; `--store` and
    /// `VENTANILLA_STORE` win over it. Absent: `sqlite://<data dir>/ventanilla.db`.
    pub url: Option<String>,
}

/// The store a URL names, checked once at start.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded store: one SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database that several gateways may share (the URL, password included).
    Postgres(String),
}

impl StoreUrl {
    /// The embedded store of `data_dir`: its SQLite file.
    pub fn embedded(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.join("ventanilla.db"))
    }

    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("store URL {url:?}: sqlite:// needs the database file's path, e.g. sqlite://./data/ventanilla.db"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        Err(format!(
            "store URL {:?}: use sqlite://PATH or postgres://user@host:port/db",
            StoreUrl::Postgres(url.to_owned()).to_string()
        ))
    }
}

/// Shown without the password a PostgreSQL URL may carry.
impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => {
                let masked = url.split_once("://").and_then(|(scheme, rest)| {
                    let (userinfo, host) = rest.rsplit_once('@')?;
                    let (user, _password) = userinfo.split_once(':')?;
                    Some(format!("{scheme}://{user}:***@{host}"))
                });
                f.write_str(masked.as_deref().unwrap_or(url))
            }
        }
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// Limits and locations of the HTTP front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Largest accepted request body; larger answers 413.
    pub max_body_bytes: usize,
    /// Schemas directory, relative to the configuration directory.
    pub schemas_dir: PathBuf,
    /// Submissions and acknowledgments handled at once; more are answered 503 with
    /// `Retry-After` instead of queueing without bound.
    pub max_concurrent_writes: usize,
    /// Open connections each HTTP worker thread holds at most; more wait in the listen
    /// backlog, so a flood of idle or slow connections cannot exhaust memory or descriptors.
    pub max_connections_per_worker: usize,
    /// A client that has not sent its request head, or then its body, within this time each
    /// is cut off (the body with 408).
    pub client_timeout_ms: u64,
    /// Deepest nesting of a JSON body (422 beyond), checked before parsing.
    pub max_json_depth: usize,
    /// Most items in one JSON array, or members in one object (422 beyond).
    pub max_json_items: usize,
    /// Longest JSON string, in bytes as sent (422 beyond).
    pub max_json_string_bytes: usize,
    /// Most values and member names in one JSON body or batch item (422 beyond).
    pub max_json_nodes: usize,
    /// Most memory one JSON body or batch item may take once parsed, as estimated before
    /// parsing (422 beyond): a body of many small values takes up to a hundred times its length.
    /// The estimate also counts in the sender's `bytes_in_flight` while the request runs.
    pub max_json_parsed_bytes: usize,
    /// Bytes in flight for all participants together (bodies being read, their parsed trees,
    /// stream pages): past it, 503 with `Retry-After`. Each participant's `bytes_in_flight`
    /// must be less, so no one participant can take it all.
    pub max_bytes_in_flight: u64,
    /// An agency's event stream ends after this many seconds; the client reconnects with
    /// `Last-Event-ID` and loses nothing.
    pub stream_max_seconds: u64,
    /// Longest long poll (`?wait=`) on the event streams; a longer wait is cut to this.
    pub max_poll_wait_seconds: u64,
    /// Most documents in one `POST /v1/documents:batch` (413 beyond).
    pub max_batch_items: usize,
    /// Largest batch body (413 beyond); a single document's bound is `max_body_bytes`.
    pub max_batch_body_bytes: usize,
    /// Serve plain HTTP on a non-loopback address. Off by default: without TLS the gateway
    /// refuses to start anywhere but loopback unless the operator opts out here (behind a
    /// TLS-terminating proxy on the same host, say).
    pub allow_plaintext_on_public_address: bool,
    /// Deliveries waiting for the broker beyond which submissions are answered 503 with
    /// `Retry-After`: an outage fills the store only this far.
    pub max_outbox_backlog: u64,
    /// Whether a document of a released consignment may still be amended or withdrawn. Off
    /// by default: once every agency has released the goods, a change would no longer be seen
    /// by anyone who decides on them; a region whose agencies accept post-release corrections
    /// turns it on.
    pub change_after_release: bool,
    /// The most documents one sender keeps of one type in one consignment: the first version
    /// and each amendment count, and so does each document that replaces a withdrawn one. Past
    /// it an amendment or a new document is answered 409 `too-many-versions`; every operation on
    /// a document's history, and its consignment's view, stays bounded by it.
    pub max_document_versions: u32,
    /// Where the keys that sign receipts are (`crate::receipts`), absolute or relative to the
    /// configuration directory; by default `<data dir>/receipt-keys`. Gateways sharing a store
    /// share it.
    pub receipt_keys_dir: Option<PathBuf>,
}

impl GatewayConfig {
    pub fn json_limits(&self) -> crate::json::JsonLimits {
        crate::json::JsonLimits {
            max_depth: self.max_json_depth,
            max_items: self.max_json_items,
            max_string_bytes: self.max_json_string_bytes,
            max_nodes: self.max_json_nodes,
            max_parsed_bytes: self.max_json_parsed_bytes,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 1024 * 1024,
            schemas_dir: PathBuf::from("../schemas"),
            max_concurrent_writes: 512,
            max_connections_per_worker: 10_000,
            client_timeout_ms: 10_000,
            max_json_depth: 32,
            max_json_items: 10_000,
            max_json_string_bytes: 64 * 1024,
            max_json_nodes: 200_000,
            max_json_parsed_bytes: 16 * 1024 * 1024,
            max_bytes_in_flight: 256 * 1024 * 1024,
            max_outbox_backlog: 100_000,
            allow_plaintext_on_public_address: false,
            stream_max_seconds: 300,
            max_poll_wait_seconds: 60,
            // An e-commerce platform's manifest: 10,000 parcels of about 2 KB each.
            max_batch_items: 10_000,
            max_batch_body_bytes: 32 * 1024 * 1024,
            change_after_release: false,
            max_document_versions: DEFAULT_MAX_DOCUMENT_VERSIONS,
            receipt_keys_dir: None,
        }
    }
}

/// Topic names and client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Prefix of every topic name, so several regions or test runs can share one cluster.
    pub topic_prefix: String,
    /// Partitions of each topic the gateway creates.
    pub partitions: i32,
    /// Copies of each partition of the topics the gateway creates; `None` takes the broker's
    /// `default.replication.factor`. A cluster that must survive a lost broker wants 3.
    pub replication_factor: Option<i32>,
    /// The topics' `min.insync.replicas`: with `acks=all`, a record is confirmed only once this
    /// many copies hold it. `None` takes the broker's default. With 3 copies, 2 keeps every
    /// confirmed record through the loss of one broker while still accepting records.
    pub min_insync_replicas: Option<u32>,
    /// Consumer group of the gateway's acknowledgment consumer.
    pub consumer_group: String,
    /// Attempts a delivery gets when the broker refuses its record (too large, not authorized,
    /// unknown topic...). Past them it goes to the dead-letter topic and shows `failed`. Time
    /// the broker is unreachable does not use attempts up: an outage waits, it does not fail.
    pub max_delivery_attempts: u32,
    /// Wait after a delivery's first failed attempt; doubled on each further one, with jitter.
    pub retry_initial_backoff_ms: u64,
    /// Longest wait between two attempts of a delivery.
    pub retry_max_backoff_ms: u64,
    /// Largest record the producer sends (librdkafka's `message.max.bytes`), and the
    /// `max.message.bytes` of the topics the gateway creates; an existing topic that takes less
    /// is refused at start. At least `gateway.max_body_bytes` plus [`RECORD_HEADROOM_BYTES`].
    pub max_message_bytes: usize,
    /// How the gateway's clients authenticate to Kafka and encrypt (`[kafka.security]`).
    pub security: KafkaSecurity,
}

/// The release-time indicators (`[indicators]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorsConfig {
    /// The public figures suppress every cell of fewer consignments than this, or of fewer
    /// besides its largest owner's, and others with it so that none follows from the rest
    /// (`crate::indicators::public`; docs/release-times.md: what is left).
    pub public_min_count: usize,
    /// A calendar month's public figures are published this many days after it ends, and count
    /// the intervals that closed by then: once published, they do not change.
    pub public_settle_days: u32,
    /// Two agencies' physical inspections of one consignment decided at most this many minutes
    /// apart are counted as joint by the TFA monitor (Art. 8; docs/tfa.md).
    pub tfa_joint_inspection_window_minutes: u32,
    /// The document types `ventanilla simulate` writes for each consignment.
    pub simulation: Option<SimulationConfig>,
}

impl IndicatorsConfig {
    /// [`IndicatorsConfig::tfa_joint_inspection_window_minutes`] in milliseconds.
    pub fn tfa_joint_window_ms(&self) -> crate::clock::Millis {
        i64::from(self.tfa_joint_inspection_window_minutes) * 60_000
    }
}

impl Default for IndicatorsConfig {
    fn default() -> Self {
        IndicatorsConfig { public_min_count: 5, public_settle_days: 7, tfa_joint_inspection_window_minutes: 120, simulation: None }
    }
}

/// What `ventanilla simulate` writes per consignment (`[indicators.simulation]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationConfig {
    /// The type that lodges the consignment (naming no border post).
    pub declaration: DocumentType,
    /// The type whose first answer is the goods' arrival (its table gives a `border_post`).
    pub border_notice: DocumentType,
    /// The type of express parcels (`--express`), when the region has one.
    #[serde(default)]
    pub express: Option<DocumentType>,
}

/// Webhooks: where traders may have their status changes POSTed, and how failures are retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Lets webhooks use plain `http://` and loopback or private addresses: for development
    /// only, since a registered URL makes the gateway send requests inside its own network.
    pub allow_insecure_urls: bool,
    /// Webhooks one participant may register.
    pub max_per_participant: usize,
    /// Wait after a webhook's first failed attempt; doubled on each further one, with jitter.
    pub initial_backoff_ms: u64,
    /// Longest wait between two attempts; the event is retried until the URL takes it.
    pub max_backoff_ms: u64,
    /// How long a URL has to answer one POST.
    pub timeout_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig { allow_insecure_urls: false, max_per_participant: 5, initial_backoff_ms: 1_000, max_backoff_ms: 600_000, timeout_ms: 10_000 }
    }
}

/// A secret from the environment: shown as `***` in every `Debug`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The value, for the one place that needs it (the Kafka client's configuration).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// TLS and SASL for the gateway's Kafka clients (producer, ack consumer, admin). Plaintext
/// when absent. Passwords come only from the environment (`VENTANILLA_KAFKA_SASL_PASSWORD`,
/// `VENTANILLA_KAFKA_SSL_KEY_PASSWORD`), never from the file, and are never shown.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (librdkafka's `security.protocol`).
    pub protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    /// CA that signs the brokers' certificates (PEM).
    pub ssl_ca: Option<PathBuf>,
    /// The gateway's client certificate and key for brokers that ask for one (PEM).
    pub ssl_certificate: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
    #[serde(skip)]
    pub ssl_key_password: Option<Secret>,
}

impl KafkaSecurity {
    /// librdkafka properties, secrets included: for client configurations only, never for display.
    pub fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let path = |v: &Option<PathBuf>| v.as_ref().map(|p| p.display().to_string());
        for (k, v) in [
            ("security.protocol", self.protocol.clone()),
            ("sasl.mechanism", self.sasl_mechanism.clone()),
            ("sasl.username", self.sasl_username.clone()),
            ("sasl.password", self.sasl_password.as_ref().map(|s| s.expose().to_owned())),
            ("ssl.ca.location", path(&self.ssl_ca)),
            ("ssl.certificate.location", path(&self.ssl_certificate)),
            ("ssl.key.location", path(&self.ssl_key)),
            ("ssl.key.password", self.ssl_key_password.as_ref().map(|s| s.expose().to_owned())),
        ] {
            if let Some(v) = v {
                p.push((k, v));
            }
        }
        p
    }

    fn check(&self) -> Result<(), String> {
        let protocol = self.protocol.as_deref().unwrap_or("plaintext");
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol) {
            return Err(format!("kafka.security.protocol {protocol:?}: use plaintext, ssl, sasl_plaintext or sasl_ssl"));
        }
        if protocol.starts_with("sasl") {
            match self.sasl_mechanism.as_deref() {
                Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512") => {}
                other => return Err(format!("kafka.security.sasl_mechanism {other:?}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")),
            }
            if self.sasl_username.is_none() || self.sasl_password.is_none() {
                return Err("kafka.security: SASL needs sasl_username in the file and VENTANILLA_KAFKA_SASL_PASSWORD in the environment".into());
            }
        }
        for (name, file) in [("ssl_ca", &self.ssl_ca), ("ssl_certificate", &self.ssl_certificate), ("ssl_key", &self.ssl_key)] {
            if let Some(f) = file.as_ref().filter(|f| !f.is_file()) {
                return Err(format!("kafka.security.{name}: no file at {}", f.display()));
            }
        }
        Ok(())
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            topic_prefix: "ventanilla.".into(),
            partitions: 3,
            replication_factor: None,
            min_insync_replicas: None,
            consumer_group: "ventanilla-gateway".into(),
            max_delivery_attempts: 8,
            retry_initial_backoff_ms: 500,
            retry_max_backoff_ms: 60_000,
            // 1 MiB documents, with room for their headers.
            max_message_bytes: 1024 * 1024 + RECORD_HEADROOM_BYTES,
            security: KafkaSecurity::default(),
        }
    }
}

/// One agency of the region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyConfig {
    pub id: AgencyId,
    /// `customs`, `sanitary`, `border`, or any other kind the routes name.
    pub kind: String,
    /// Its official name, for people reading the consignment view.
    pub name: String,
}

/// One participant and how it proves who it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantConfig {
    pub id: String,
    pub role: Role,
    /// For the agency role: the agency it speaks for.
    pub agency: Option<AgencyId>,
    /// For the NSW role: its country.
    pub country: Option<CountryCode>,
    /// SHA-256 (hex) of its bearer token: the token itself is never stored.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// SHA-256 (hex) of its TLS client certificate (DER): a connection presenting that
    /// certificate, signed by the participant CA, is this participant.
    #[serde(default)]
    pub cert_sha256: Option<String>,
    /// For the trader and platform roles: the party identifiers (`SCHEME:VALUE`, e.g.
    /// `AR-CUIT:30714255831`) it submits as; a document whose submitting party is another
    /// is refused.
    #[serde(default)]
    pub acts_for: Vec<String>,
    /// A demo participant is honoured only while the gateway is bound to a loopback address.
    #[serde(default)]
    pub demo: bool,
}

/// One routing rule: when every condition holds, the document goes to the target agency.
/// An empty condition list means "any".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub document_types: Vec<DocumentType>,
    #[serde(default)]
    pub origins: Vec<CountryCode>,
    #[serde(default)]
    pub destinations: Vec<CountryCode>,
    /// HS chapters as `"01-24"` ranges or single `"84"` chapters; any goods line matching counts.
    #[serde(default)]
    pub hs_chapters: Vec<ChapterRange>,
    /// Modes of transport (`road`, `rail`, ...) as the document type's `mode_of_transport`
    /// reads them (after its `modes`).
    #[serde(default)]
    pub modes_of_transport: Vec<String>,
    /// Border posts (UN/LOCODEs, as the document type's `border_post` reads them).
    #[serde(default)]
    pub border_posts: Vec<String>,
    pub to: RouteTarget,
}

/// Where a route sends the document, parsed from the region file's `to = { agency = "..." }` or
/// `to = { country = "origin" | "destination" | "AR", kind = "customs" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RouteTargetText")]
pub enum RouteTarget {
    /// One named agency.
    Agency(AgencyId),
    /// The agency of a kind in the document's origin country.
    Origin { kind: String },
    /// The agency of a kind in the document's destination country.
    Destination { kind: String },
    /// The agency of a kind in one named country.
    Country { country: CountryCode, kind: String },
}

impl RouteTarget {
    /// The kind of agency it sends to, when it names a kind rather than an agency.
    pub fn kind(&self) -> Option<&str> {
        match self {
            RouteTarget::Agency(_) => None,
            RouteTarget::Origin { kind } | RouteTarget::Destination { kind } | RouteTarget::Country { kind, .. } => Some(kind),
        }
    }
}

/// A route target as the region file writes it, before [`RouteTarget`] reads its country.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, untagged)]
enum RouteTargetText {
    Agency { agency: AgencyId },
    Kind { country: String, kind: String },
}

impl TryFrom<RouteTargetText> for RouteTarget {
    type Error = String;
    fn try_from(text: RouteTargetText) -> Result<Self, String> {
        Ok(match text {
            RouteTargetText::Agency { agency } => RouteTarget::Agency(agency),
            RouteTargetText::Kind { country, kind } if country == "origin" => RouteTarget::Origin { kind },
            RouteTargetText::Kind { country, kind } if country == "destination" => RouteTarget::Destination { kind },
            RouteTargetText::Kind { country, kind } => match CountryCode::parse(&country) {
                Ok(country) => RouteTarget::Country { country, kind },
                Err(_) => return Err(format!("`to.country` {country:?} must be \"origin\", \"destination\" or a country code")),
            },
        })
    }
}

/// A range of HS chapters a route names: `"01-24"`, or one chapter, `"84"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ChapterRange(RangeInclusive<u8>);

impl ChapterRange {
    /// Parses `"01-24"` or `"84"`: two digits each, 01 to 99, the first not above the second.
    pub fn parse(s: &str) -> Result<Self, String> {
        let chapter = |t: &str| -> Result<u8, String> {
            let t = t.trim();
            match t.parse::<u8>() {
                Ok(n) if t.len() == 2 && (1..=99).contains(&n) => Ok(n),
                _ => Err(format!("HS chapter {t:?} must be two digits, 01 to 99")),
            }
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (chapter(a)?, chapter(b)?);
                if a > b {
                    return Err(format!("HS chapter range {s:?} runs backwards"));
                }
                Ok(ChapterRange(a..=b))
            }
            None => chapter(s).map(|c| ChapterRange(c..=c)),
        }
    }
    /// Whether chapter `c` is in the range.
    pub fn contains(&self, c: u8) -> bool {
        self.0.contains(&c)
    }
}

impl TryFrom<String> for ChapterRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ChapterRange::parse(&s)
    }
}

/// `gateway.max_document_versions` when the region does not set it.
pub const DEFAULT_MAX_DOCUMENT_VERSIONS: u32 = 100;

/// What a record adds to its document's bytes, at most: the CloudEvents headers, the key and
/// the record's framing. `kafka.max_message_bytes` must leave this much above
/// `gateway.max_body_bytes`.
pub const RECORD_HEADROOM_BYTES: usize = 16 * 1024;

impl RegionConfig {
    /// Checks what a field alone cannot: that the region's parts agree with each other.
    pub(crate) fn check(&self) -> Result<(), String> {
        let g = &self.gateway;
        let positive = [
            ("gateway.max_body_bytes", g.max_body_bytes as u64),
            ("gateway.max_concurrent_writes", g.max_concurrent_writes as u64),
            ("gateway.max_connections_per_worker", g.max_connections_per_worker as u64),
            ("gateway.max_json_depth", g.max_json_depth as u64),
            ("gateway.max_json_items", g.max_json_items as u64),
            ("gateway.max_json_string_bytes", g.max_json_string_bytes as u64),
            ("gateway.max_json_nodes", g.max_json_nodes as u64),
            ("gateway.max_json_parsed_bytes", g.max_json_parsed_bytes as u64),
            ("gateway.max_bytes_in_flight", g.max_bytes_in_flight),
            ("gateway.max_outbox_backlog", g.max_outbox_backlog),
            ("gateway.max_batch_items", g.max_batch_items as u64),
            ("gateway.stream_max_seconds", g.stream_max_seconds),
            ("gateway.max_poll_wait_seconds", g.max_poll_wait_seconds),
            ("gateway.max_batch_body_bytes", g.max_batch_body_bytes as u64),
            ("gateway.max_document_versions", u64::from(g.max_document_versions)),
            ("kafka.max_delivery_attempts", u64::from(self.kafka.max_delivery_attempts)),
            ("kafka.max_message_bytes", self.kafka.max_message_bytes as u64),
            ("webhooks.max_per_participant", self.webhooks.max_per_participant as u64),
            ("webhooks.initial_backoff_ms", self.webhooks.initial_backoff_ms),
            ("webhooks.timeout_ms", self.webhooks.timeout_ms),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if g.max_json_depth > 128 {
            // serde_json's own recursion limit; deeper would fail as malformed, not as too deep.
            return Err("gateway.max_json_depth must be at most 128".into());
        }
        self.kafka.security.check()?;
        self.quotas.check(
            &self.participants,
            g.max_body_bytes.max(g.max_batch_body_bytes),
            g.max_json_parsed_bytes,
            g.max_concurrent_writes,
            g.max_bytes_in_flight,
        )?;
        if g.max_body_bytes.saturating_add(RECORD_HEADROOM_BYTES) > self.kafka.max_message_bytes {
            return Err(format!(
                "gateway.max_body_bytes ({}) plus {RECORD_HEADROOM_BYTES} bytes for a record's headers is above kafka.max_message_bytes ({}): \
                 the gateway would accept documents it could never publish. Lower gateway.max_body_bytes to at most {}, \
                 or raise kafka.max_message_bytes to at least {} (the gateway creates its topics with that limit)",
                g.max_body_bytes,
                self.kafka.max_message_bytes,
                self.kafka.max_message_bytes.saturating_sub(RECORD_HEADROOM_BYTES),
                g.max_body_bytes.saturating_add(RECORD_HEADROOM_BYTES)
            ));
        }
        if self.kafka.retry_initial_backoff_ms > self.kafka.retry_max_backoff_ms {
            return Err("kafka.retry_initial_backoff_ms must not exceed kafka.retry_max_backoff_ms".into());
        }
        if self.webhooks.initial_backoff_ms > self.webhooks.max_backoff_ms {
            return Err("webhooks.initial_backoff_ms must not exceed webhooks.max_backoff_ms".into());
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.agencies {
            if !seen.insert(a.id.as_str()) {
                return Err(format!("agency {} is listed twice", a.id));
            }
        }
        let known = |id: &AgencyId| self.agencies.iter().any(|a| &a.id == id);
        let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        let mut ids = std::collections::HashSet::new();
        let mut credentials = std::collections::HashSet::new();
        for p in &self.participants {
            if !ids.insert(p.id.as_str()) {
                return Err(format!("participant {} is listed twice", p.id));
            }
            if ["gateway", "anonymous"].contains(&p.id.as_str()) || p.id.contains(':') || p.id.trim().is_empty() {
                return Err(format!("participant id {:?} is reserved or malformed (the audit log uses gateway, anonymous and kafka:<agency>)", p.id));
            }
            for c in [&p.token_sha256, &p.cert_sha256].into_iter().flatten() {
                if !credentials.insert(c.to_ascii_lowercase()) {
                    return Err(format!("participant {}: its token or certificate is another participant's too", p.id));
                }
            }
            if p.token_sha256.is_none() && p.cert_sha256.is_none() {
                return Err(format!("participant {}: give token_sha256, cert_sha256 or both", p.id));
            }
            if p.token_sha256.as_deref().is_some_and(|h| !hex64(h)) {
                return Err(format!("participant {}: token_sha256 must be 64 hex digits", p.id));
            }
            if p.cert_sha256.as_deref().is_some_and(|h| !hex64(h)) {
                return Err(format!("participant {}: cert_sha256 must be 64 hex digits (sha256 of the certificate's DER)", p.id));
            }
            match (p.role, &p.agency) {
                (Role::Agency, Some(a)) if known(a) => {}
                (Role::Agency, Some(a)) => {
                    return Err(format!("participant {} speaks for unknown agency {a}", p.id))
                }
                (Role::Agency, None) => {
                    return Err(format!("participant {} has role agency but no `agency`", p.id))
                }
                _ => {}
            }
            if p.role == Role::Platform && p.acts_for.is_empty() {
                return Err(format!(
                    "participant {} has role platform but no `acts_for`: name the platform identifiers it submits as (SCHEME:VALUE, as its shipments' platform party reads)",
                    p.id
                ));
            }
            if p.role == Role::Nsw && p.country.is_none() {
                return Err(format!("participant {} has role nsw but no `country`", p.id));
            }
            if let (Role::Nsw, Some(c)) = (p.role, &p.country) {
                if !self.agencies.iter().any(|a| &a.id.country() == c) {
                    let mut countries: Vec<String> = self.agencies.iter().map(|a| a.id.country().to_string()).collect();
                    countries.sort();
                    countries.dedup();
                    return Err(format!(
                        "participant {} is the national single window of {c}, and the region has no agency there (its countries: {})",
                        p.id,
                        countries.join(", ")
                    ));
                }
            }
            if let Some(bad) = p.acts_for.iter().find(|a| a.split_once(':').is_none_or(|(s, v)| s.is_empty() || v.is_empty())) {
                return Err(format!("participant {}: acts_for {bad:?} must be SCHEME:VALUE, as the document types read it (AR-CUIT:30714255831)", p.id));
            }
        }
        for r in &self.routes {
            if let RouteTarget::Agency(agency) = &r.to {
                if !known(agency) {
                    return Err(format!("route {:?} names unknown agency {agency}", r.name));
                }
            }
            // A route to a kind of agency the region has none of routes nothing: a typo, most likely.
            if let Some(kind) = r.to.kind() {
                if !self.agencies.iter().any(|a| a.kind == kind) {
                    let kinds: std::collections::BTreeSet<&str> = self.agencies.iter().map(|a| a.kind.as_str()).collect();
                    return Err(format!(
                        "route {:?} sends to agencies of kind {kind:?}, and the region has none; its kinds: {}",
                        r.name,
                        kinds.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        if self.gateway.max_concurrent_writes == 0 {
            return Err("gateway.max_concurrent_writes must be at least 1".into());
        }
        if let Some(url) = &self.store.url {
            StoreUrl::parse(url)?;
        }
        if self.kafka.partitions < 1 {
            return Err("kafka.partitions must be at least 1".into());
        }
        if let Some(rf) = self.kafka.replication_factor.filter(|rf| *rf < 1) {
            return Err(format!("kafka.replication_factor {rf}: at least 1, or leave it out for the broker's default"));
        }
        if let (Some(isr), Some(rf)) = (self.kafka.min_insync_replicas, self.kafka.replication_factor) {
            if isr < 1 || isr as i64 > rf as i64 {
                return Err(format!(
                    "kafka.min_insync_replicas {isr} with kafka.replication_factor {rf}: between 1 and the replication \
                     factor, or no record could ever be confirmed"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{RegionConfig, StoreUrl, RECORD_HEADROOM_BYTES};

    fn shipped_region() -> RegionConfig {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/ventanilla.toml")).unwrap();
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_body_limit_the_broker_could_not_take_is_refused_naming_both_settings() {
        let mut region = shipped_region();
        region.check().expect("the shipped region file agrees with itself");
        // The case found: 1 MiB bodies, records of at most 1,000,000 bytes.
        region.gateway.max_body_bytes = 1_048_576;
        region.kafka.max_message_bytes = 1_000_000;
        let refused = region.check().unwrap_err();
        assert!(refused.contains("gateway.max_body_bytes (1048576)") && refused.contains("kafka.max_message_bytes (1000000)"), "{refused}");
        assert!(refused.contains(&format!("at most {}", 1_000_000 - RECORD_HEADROOM_BYTES)), "{refused}");
        region.kafka.max_message_bytes = 1_048_576 + RECORD_HEADROOM_BYTES;
        assert!(region.check().is_ok(), "the headers' room is enough");
    }

    /// Issue 26, item 15: the shipped demo quota was the whole write pool (512 of 512).
    #[test]
    fn a_quota_that_could_take_the_whole_write_pool_is_refused_naming_the_participant_and_both_numbers() {
        let mut region = shipped_region();
        let pool = region.gateway.max_concurrent_writes;
        let demo = region.quotas.demo.expect("the shipped file sets [quotas.demo]");
        assert!((demo.concurrent_writes as usize) < pool, "the shipped demo quota leaves some of the pool to the others");
        region.check().expect("the shipped region file agrees with itself");

        region.quotas.demo = Some(super::Quota { concurrent_writes: pool as u32, ..demo });
        let refused = region.check().unwrap_err();
        assert!(refused.contains("participant demo-trader (role trader, demo)") && refused.contains("[quotas.demo]"), "{refused}");
        assert!(refused.contains(&format!("may have {pool} writes")) && refused.contains(&format!("gateway.max_concurrent_writes, the pool every participant shares, is {pool}")), "{refused}");

        // A role's quota, and one participant's own, are held to the same bound.
        region.quotas.demo = None;
        region.gateway.max_concurrent_writes = 100;
        let refused = region.check().unwrap_err();
        assert!(refused.contains("participant demo-nsw-ar (role nsw, demo)") && refused.contains("may have 128 writes in progress at once (concurrent_writes in [quotas.nsw])"), "{refused}");
        region.quotas.nsw.concurrent_writes = 99;
        region.quotas.platform.concurrent_writes = 99;
        region.check().expect("every quota below the pool");
        region.quotas.participants.insert("demo-operator".into(), toml::from_str("concurrent_writes = 100").unwrap());
        let refused = region.check().unwrap_err();
        assert!(refused.contains("participant demo-operator (role operator, demo)") && refused.contains("[quotas.participants.demo-operator]"), "{refused}");
    }

    /// Issue 26, item 2: bytes in flight count a body's parsed tree, and all participants share a
    /// pool of them that no one quota may equal.
    #[test]
    fn a_bytes_quota_must_hold_a_body_and_its_tree_and_leave_the_pool_to_others() {
        let mut region = shipped_region();
        region.check().expect("the shipped region file agrees with itself");
        let demo = region.quotas.demo.expect("the shipped file sets [quotas.demo]");
        assert!(demo.bytes_in_flight < region.gateway.max_bytes_in_flight);

        region.quotas.demo = Some(super::Quota { bytes_in_flight: region.gateway.max_bytes_in_flight, ..demo });
        let refused = region.check().unwrap_err();
        assert!(refused.contains("participant demo-trader allows") && refused.contains("gateway.max_bytes_in_flight"), "{refused}");

        region.quotas.demo = Some(super::Quota { bytes_in_flight: 20 * 1024 * 1024, ..demo });
        let refused = region.check().unwrap_err();
        assert!(refused.contains("its parsed tree (gateway.max_json_parsed_bytes"), "{refused}");
        // The largest body is a batch's (32 MiB), with one item's tree (16 MiB).
        assert!(refused.contains(&format!("at least {}", 32 * 1024 * 1024 + 16 * 1024 * 1024)), "{refused}");
    }

    #[test]
    fn store_urls_name_a_store_and_hide_their_password() {
        assert_eq!(StoreUrl::parse("sqlite://./data/v.db").unwrap(), StoreUrl::Sqlite("./data/v.db".into()));
        let pg = StoreUrl::parse("postgres://gw:s3cret@db.example:5432/ventanilla").unwrap();
        assert_eq!(pg, StoreUrl::Postgres("postgres://gw:s3cret@db.example:5432/ventanilla".into()));
        assert_eq!(pg.to_string(), "postgres://gw:***@db.example:5432/ventanilla");
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert_eq!(StoreUrl::parse("postgres://gw@db:5432/v").unwrap().to_string(), "postgres://gw@db:5432/v");
        assert!(StoreUrl::parse("sqlite://").is_err());
        let refused = StoreUrl::parse("mysql://u:pw@h/db").unwrap_err();
        assert!(refused.contains("use sqlite://PATH or postgres://") && !refused.contains("pw@"), "{refused}");
    }
}
