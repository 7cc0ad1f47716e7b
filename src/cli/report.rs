//! `ventanilla report release-times`: the WTO TFA Art. 7.6 publication of average release times
//! per segment, with its method and the public threshold applied; `ventanilla report tfa`: a
//! country's TFA monitor for its trade facilitation committee. As HTML, CSV or PDF.

use std::path::PathBuf;

use clap::Subcommand;

use ventanilla::config::RegionConfig;
use ventanilla::domain::AgencyId;

use super::{Failure, Open, StoreArgs};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Release times of the consignments lodged in [--from, --to), as HTML, CSV or PDF (PDF
    /// prints the HTML with Chromium, which must be installed).
    ReleaseTimes {
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
        config: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// First day (2026-11-01) or time (RFC 3339, UTC) of lodgement.
        #[arg(long)]
        from: String,
        /// Day or time before which consignments were lodged.
        #[arg(long)]
        to: String,
        #[arg(long, value_parser = ["html", "csv", "pdf"], default_value = "html")]
        format: String,
        /// Where to write it (standard output when left out; required for PDF).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One importing country's TFA monitor over a calendar period, per article: its value, the
    /// region's median of the countries, its value in the period before, and the definition
    /// (docs/tfa.md). As HTML, CSV or PDF (PDF prints the HTML with Chromium).
    Tfa {
        #[arg(long, env = "VENTANILLA_CONFIG", default_value = "config")]
        config: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        /// The importing country (ISO 3166-1 alpha-2): the consignments' destination.
        #[arg(long)]
        country: String,
        /// A quarter (2026-Q3), a month (2026-11) or a year (2026), UTC.
        #[arg(long)]
        period: String,
        /// The document types of expedited shipments (Art. 7.8), comma-separated.
        #[arg(long, default_value = ventanilla::indicators::tfa::DEFAULT_EXPEDITED_TYPE)]
        expedited_types: String,
        #[arg(long, value_parser = ["html", "csv", "pdf"], default_value = "html")]
        format: String,
        /// Where to write it (standard output when left out; required for PDF).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(r: ReportCommand) -> Result<(), Failure> {
    match r {
        ReportCommand::ReleaseTimes { config, store, from, to, format, out } => release_times(config, store, from, to, format, out).await,
        ReportCommand::Tfa { config, store, country, period, expedited_types, format, out } => {
            tfa(config, store, country, period, expedited_types, format, out).await
        }
    }
}

async fn tfa(
    config: PathBuf,
    store: StoreArgs,
    country: String,
    period: String,
    expedited_types: String,
    format: String,
    out: Option<PathBuf>,
) -> Result<(), Failure> {
    use ventanilla::indicators::{tfa, tfa_report};
    let region = RegionConfig::load(&config)?;
    let country = ventanilla::domain::CountryCode::parse(&country).map_err(|e| format!("--country {country:?}: {e}"))?;
    let period = tfa_report::CalendarPeriod::parse(&period)?;
    let expedited_types: Vec<String> = expedited_types.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let store = store.open(Open::Existing).await?;
    let router = ventanilla::routing::Router::new(&region);
    let kind_of = |a: &AgencyId| router.kind_of(a).unwrap_or("unknown").to_owned();
    let request = tfa::TfaRequest {
        group_by: tfa::TfaGroup::Country,
        expedited_types,
        joint_window_ms: region.indicators.tfa_joint_window_ms(),
    };
    let report = tfa_report::build(&*store, country.as_str(), period, request, region.indicators.public_min_count, &kind_of).await?;
    let text = match format.as_str() {
        "csv" => tfa_report::csv(&report),
        _ => tfa_report::html(&report),
    };
    write(&format, &text, out)
}

/// Writes a report in `format` to `out` (standard output when none; a PDF needs a file).
fn write(format: &str, text: &str, out: Option<PathBuf>) -> Result<(), Failure> {
    match (format, out) {
        ("pdf", Some(out)) => print_to_pdf(text, &out)?,
        ("pdf", None) => return Err("--format pdf needs --out FILE".into()),
        (_, Some(out)) => std::fs::write(&out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?,
        (_, None) => print!("{text}"),
    }
    Ok(())
}

async fn release_times(config: PathBuf, store: StoreArgs, from: String, to: String, format: String, out: Option<PathBuf>) -> Result<(), Failure> {
    let region = RegionConfig::load(&config)?;
    let time = |name: &str, s: &str| {
        ventanilla::clock::parse_rfc3339(s)
            .ok_or_else(|| format!("--{name} {s:?} is not a date (2026-11-01) or an RFC 3339 time in UTC {}", ventanilla::clock::RANGE))
    };
    let (from, to) = (time("from", &from)?, time("to", &to)?);
    if from >= to {
        return Err("--from must be before --to".into());
    }
    let store = store.open(Open::Existing).await?;
    let router = ventanilla::routing::Router::new(&region);
    let kind_of = |a: &AgencyId| router.kind_of(a).unwrap_or("unknown").to_owned();
    let indicators = &region.indicators;
    let settle_ms = i64::from(indicators.public_settle_days) * 86_400_000;
    let report = ventanilla::indicators::report::build(&*store, from, to, indicators.public_min_count, settle_ms, &kind_of).await?;
    let text = match format.as_str() {
        "csv" => ventanilla::indicators::report::csv(&report),
        _ => ventanilla::indicators::report::html(&report),
    };
    write(&format, &text, out)
}

/// Prints `html` to the PDF file `out` with headless Chromium.
fn print_to_pdf(html: &str, out: &std::path::Path) -> Result<(), Failure> {
    let dir = std::env::temp_dir().join(format!("ventanilla-report-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("report.html");
    std::fs::write(&page, html)?;
    let out = std::path::absolute(out)?;
    let printed = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg("--no-pdf-header-footer")
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let status =
        printed.map_err(|e| format!("chromium could not run ({e}): install it (Debian: apt-get install chromium) or use --format html"))?;
    if !status.status.success() || !out.exists() {
        return Err(format!("chromium did not print the PDF: {}", String::from_utf8_lossy(&status.stderr)).into());
    }
    Ok(())
}
