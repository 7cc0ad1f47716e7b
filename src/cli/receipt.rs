//! `ventanilla receipt`: verify a signed receipt offline against the gateway's keys, or make a
//! newer signing key.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Failure, Verdict};

#[derive(Subcommand)]
pub enum ReceiptCommand {
    /// Checks a receipt (JSON file): its signature by one of the keys, and its members the ones
    /// signed; with --document, that its `bodySha256` is that document's. Exit 1 when it does
    /// not verify, 2 when it cannot check (no keys where they were looked for). Never writes.
    Verify {
        /// The receipt, as the gateway answered it.
        file: PathBuf,
        /// The gateway's public keys: its `/.well-known/jwks.json` URL (`https://`, or
        /// `http://` from a gateway on this machine: `http://127.0.0.1:8080/.well-known/jwks.json`),
        /// or that document saved to a file (wins over --keys-dir).
        #[arg(long)]
        jwks: Option<String>,
        /// The gateway's keys directory (`gateway.receipt_keys_dir`; by default `<data dir>/receipt-keys`),
        /// only read: a missing or empty one is an error.
        #[arg(long, env = "VENTANILLA_RECEIPT_KEYS", default_value = "./data/receipt-keys")]
        keys_dir: PathBuf,
        /// The document the receipt is for: the envelope as submitted (for an amendment, its
        /// `document`; for a batch, the item). Its SHA-256 in the gateway's canonical form (JSON
        /// without whitespace, members sorted by name; see `src/receipts.rs`) must be `bodySha256`,
        /// however the file is formatted.
        #[arg(long)]
        document: Option<PathBuf>,
    },
    /// Makes a new signing key in the keys directory; prints its id.
    RotateKey {
        #[arg(long, env = "VENTANILLA_RECEIPT_KEYS", default_value = "./data/receipt-keys")]
        keys_dir: PathBuf,
    },
}

pub async fn run(action: ReceiptCommand) -> Result<(), Failure> {
    match action {
        ReceiptCommand::RotateKey { keys_dir } => {
            println!("{}", ventanilla::receipts::rotate(&keys_dir)?);
            Ok(())
        }
        ReceiptCommand::Verify { file, jwks, keys_dir, document } => {
            let jwks = match jwks {
                Some(place) if place.starts_with("http://") || place.starts_with("https://") => Some(fetch_jwks(&place).await?),
                Some(path) => Some(super::read_json(std::path::Path::new(&path))?),
                None => None,
            };
            verify(file, jwks, keys_dir, document)
        }
    }
}

/// The longest a JWKS download may take.
const JWKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest JWKS taken from a URL: a set of Ed25519 keys is a few hundred bytes each.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The key set at `url` (a gateway's `/.well-known/jwks.json`): over `https://`, or plain
/// `http://` from a gateway on this machine (keys that anyone on the way could swap would
/// verify anything).
async fn fetch_jwks(url: &str) -> Result<serde_json::Value, Failure> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if parsed.scheme() != "https" && !loopback {
        return Err(format!("{url}: fetch the keys over https (plain http only from a gateway on this machine), or save them to a file").into());
    }
    let client = reqwest::Client::builder().timeout(JWKS_TIMEOUT).build()?;
    let mut answer =
        client.get(parsed).send().await.map_err(|e| format!("cannot fetch the keys from {url}: {}", ventanilla::telemetry::error_chain(&e)))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(format!("cannot fetch the keys from {url}: the server answered {status}").into());
    }
    let too_large = || format!("{url} answered more than {MAX_JWKS_BYTES} bytes: not a key set");
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| format!("cannot read the keys from {url}: {e}"))? {
        if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_large().into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{url} did not answer a JSON key set: {e}"))?)
}

/// Checks the receipt in `file` against `jwks` (else the keys of `keys_dir`), and that it is
/// `document`'s when one is given.
fn verify(file: PathBuf, jwks: Option<serde_json::Value>, keys_dir: PathBuf, document: Option<PathBuf>) -> Result<(), Failure> {
    let bytes = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let receipt = super::read_json(&file)?;
    // Read, never written: a check that found no keys says where it looked.
    let jwks = match jwks {
        Some(set) => set,
        None => ventanilla::receipts::ReceiptKeys::published(&keys_dir)?,
    };
    let document_hash = match &document {
        Some(path) => Some(
            ventanilla::receipts::document_sha256(&bytes(path)?)
                .map_err(|e| format!("{} is not a JSON document: {e}", path.display()))?,
        ),
        None => None,
    };
    let signed = ventanilla::receipts::verify(&receipt, &jwks).map_err(|e| Verdict(format!("{}: {e}", file.display())))?;
    let body_sha256 = signed["bodySha256"].as_str().unwrap_or("?");
    if let (Some(path), Some(hash)) = (&document, &document_hash) {
        if hash != body_sha256 {
            return Err(Verdict(format!(
                "{}: the receipt is signed, but for another document: its bodySha256 is {body_sha256}, and {} hashes to {hash} \
                 (the SHA-256 of the envelope as JSON without whitespace, members sorted by name)",
                file.display(),
                path.display()
            ))
            .into());
        }
    }
    println!(
        "receipt verified: document {} of {} accepted at {}, body sha256 {body_sha256}{}",
        signed["documentId"].as_str().unwrap_or("?"),
        signed["ucr"].as_str().unwrap_or("?"),
        signed["submittedAt"].as_str().unwrap_or("?"),
        document.map(|p| format!(", which is that of {}", p.display())).unwrap_or_default()
    );
    Ok(())
}
