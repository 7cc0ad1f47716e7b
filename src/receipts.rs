//! Signed receipts: the non-repudiation of an accepted document. Each receipt carries a JWS
//! (RFC 7515, compact serialization, `EdDSA` with Ed25519) whose payload is the receipt itself
//! (every member but `signature`, including `bodySha256`, the hash of the document as sent), so
//! anyone holding the gateway's public key can prove later what the gateway accepted and when.
//!
//! **Keys.** Ed25519 keys in PKCS#8 files, `<kid>.pk8`, in one directory (`receipts.keys_dir`,
//! by default `<data dir>/receipt-keys`; gateways sharing a store share it). The key with the
//! greatest `kid` signs; every key of the directory is published at `/.well-known/jwks.json`,
//! so receipts signed before a rotation still verify. A gateway that finds no key makes one.
//! `ventanilla receipt rotate-key` adds a newer one (taken at the next start);
//! `ventanilla receipt verify FILE` checks a receipt offline: it only reads the directory
//! ([`ReceiptKeys::published`]), and an empty or missing one is an error, never a new key.
//!
//! **Signed when answered.** The writer, one thread that every commit goes through, does not
//! sign: it stores each receipt with its signature's input and an empty signature
//! (`<header>.<payload>.`, [`ReceiptKeys::signing_input`]), and the request's own worker completes
//! it as it answers ([`ReceiptKeys::complete`]). Ed25519 is deterministic (RFC 8032): the same
//! input and key give the same signature, so a replay is answered the first receipt with the
//! same members and the same signature, by the key its header names (the newest key of the
//! directory when that key is gone). A receipt stored signed by an earlier build is answered as stored.
//!
//! **`bodySha256`** is the SHA-256 of the document as the gateway read it ([`document_sha256`]):
//! the submission envelope (the body of `POST /v1/documents`, one item of a batch, the
//! `document` of an amendment) parsed as JSON and written back in one canonical form, so the
//! same document hashes the same however it was formatted. That form: UTF-8, no whitespace
//! between tokens, every object's members sorted by name (by bytes); in strings, `"`, `\` and
//! control characters escaped (`\n`, `\u001f`) and every other character as itself; an integer
//! that fits in 64 bits as its digits, any other number as the shortest decimal that reads back
//! as the same double (`2.50` is `2.5`, `1e2` is `100.0`). `verify --document FILE` computes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde_json::{json, Value};

/// Why receipts cannot be signed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptKeyError {
    #[error("the receipt keys' directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("{path} is not an Ed25519 key in PKCS#8 (make a new one with `ventanilla receipt rotate-key`)")]
    BadKey { path: PathBuf },
    #[error("a new Ed25519 key could not be made")]
    Generate,
    #[error(
        "no receipt keys in {dir}: a gateway's keys are <kid>.pk8 files in its gateway.receipt_keys_dir (by default \
         <data dir>/receipt-keys); give that directory with --keys-dir, or the gateway's saved /.well-known/jwks.json with --jwks"
    )]
    NoKeys { dir: PathBuf },
}

/// One public key, as published.
#[derive(Debug, Clone)]
struct PublicKey {
    kid: String,
    key: Vec<u8>,
}

/// The keys of a gateway: the newest signs, all verify.
pub struct ReceiptKeys {
    signing: (String, Ed25519KeyPair),
    /// The directory's older keys, by id: a receipt stored awaiting its signature is signed by
    /// the key its header names, whichever key is newest when it is answered.
    older: BTreeMap<String, Ed25519KeyPair>,
    public: Vec<PublicKey>,
    /// Where they were read: the published set is read again from it, so keys that gateways
    /// sharing the directory made or added since are published too.
    dir: PathBuf,
}

impl std::fmt::Debug for ReceiptKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptKeys").field("signing", &self.signing.0).field("keys", &self.public.len()).finish()
    }
}

/// A new key's id: when it was made, so the newest sorts last.
fn new_kid() -> String {
    let now = crate::clock::rfc3339(crate::clock::now_millis());
    format!("ventanilla-{}", now.replace([':', '-', '.'], "").trim_end_matches('Z').replace('T', "-"))
}

/// Makes a new key in `dir`; its id.
pub fn rotate(dir: &Path) -> Result<String, ReceiptKeyError> {
    // Whoever made the directory, a private key in it never reaches a commit.
    crate::private_dir::create(dir)
        .and_then(|()| crate::private_dir::keep_out_of_git(dir))
        .map_err(|source| ReceiptKeyError::Io { dir: dir.to_owned(), source })?;
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| ReceiptKeyError::Generate)?;
    let kid = new_kid();
    let path = dir.join(format!("{kid}.pk8"));
    // Readable by the gateway's user only from its first byte: created so, never widened after.
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file.mode(0o600);
    }
    let written = file.open(&path).and_then(|mut f| {
        use std::io::Write;
        f.write_all(pkcs8.as_ref())?;
        f.sync_all()
    });
    written.map_err(|source| ReceiptKeyError::Io { dir: dir.to_owned(), source })?;
    Ok(kid)
}

/// The key files of `dir`, by id (the newest last); none when it does not exist.
fn key_files(dir: &Path) -> Result<Vec<PathBuf>, ReceiptKeyError> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "pk8")).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(ReceiptKeyError::Io { dir: dir.to_owned(), source }),
    };
    files.sort();
    Ok(files)
}

/// The key in `path`, with its id (the file's name).
fn read_key(path: &Path) -> Result<(String, Ed25519KeyPair), ReceiptKeyError> {
    let bytes = std::fs::read(path).map_err(|source| ReceiptKeyError::Io { dir: path.to_owned(), source })?;
    let pair = Ed25519KeyPair::from_pkcs8(&bytes)
        .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes))
        .map_err(|_| ReceiptKeyError::BadKey { path: path.to_owned() })?;
    let kid = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((kid, pair))
}

impl ReceiptKeys {
    /// The keys of `dir`, making one when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, ReceiptKeyError> {
        let mut files = key_files(dir)?;
        if files.is_empty() {
            let kid = rotate(dir)?;
            tracing::info!(dir = %dir.display(), kid, "made a key to sign receipts with");
            files.push(dir.join(format!("{kid}.pk8")));
        } else if let Err(e) = crate::private_dir::keep_out_of_git(dir) {
            // Keys made by an earlier version, in a directory that may be read-only (mounted
            // secrets): a directory that cannot take the file is not a reason not to start.
            tracing::debug!(dir = %dir.display(), error = %e, "cannot write a .gitignore beside the receipt keys");
        }
        let mut signing = None;
        let mut older = BTreeMap::new();
        let mut public = Vec::new();
        for path in files {
            let (kid, pair) = read_key(&path)?;
            public.push(PublicKey { kid: kid.clone(), key: pair.public_key().as_ref().to_vec() });
            if let Some((kid, pair)) = signing.replace((kid, pair)) {
                older.insert(kid, pair);
            }
        }
        let signing = signing.ok_or_else(|| ReceiptKeyError::BadKey { path: dir.to_owned() })?;
        Ok(ReceiptKeys { signing, older, public, dir: dir.to_owned() })
    }

    /// The public keys of `dir` as a JSON Web Key Set, read and never written: a directory
    /// that is missing, or holds no key, is [`ReceiptKeyError::NoKeys`]; a key that cannot be
    /// read is an error naming its file.
    pub fn published(dir: &Path) -> Result<Value, ReceiptKeyError> {
        let files = key_files(dir)?;
        if files.is_empty() {
            return Err(ReceiptKeyError::NoKeys { dir: dir.to_owned() });
        }
        let public = files
            .iter()
            .map(|path| read_key(path).map(|(kid, pair)| PublicKey { kid, key: pair.public_key().as_ref().to_vec() }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(jwks_of(&public))
    }

    /// The public keys as a JSON Web Key Set, every key in the directory now (those of this
    /// gateway's start when it cannot be read).
    pub fn current_jwks(&self) -> Value {
        match ReceiptKeys::read_public(&self.dir) {
            Some(public) if !public.is_empty() => jwks_of(&public),
            _ => self.jwks(),
        }
    }

    /// The public keys of the directory, without making any (a file that cannot be read is
    /// left out).
    fn read_public(dir: &Path) -> Option<Vec<PublicKey>> {
        let keys = key_files(dir)
            .ok()?
            .iter()
            .filter_map(|path| read_key(path).ok())
            .map(|(kid, pair)| PublicKey { kid, key: pair.public_key().as_ref().to_vec() })
            .collect();
        Some(keys)
    }

    /// The JWS (compact) of `payload` (JSON text), by the newest key.
    pub fn sign(&self, payload: &str) -> String {
        self.complete(&self.signing_input(payload))
    }

    /// What the newest key will sign for `payload` (JSON text): a JWS awaiting its signature,
    /// `<header>.<payload>.`, as receipts are stored (this module's notes).
    pub fn signing_input(&self, payload: &str) -> String {
        let header = json!({"alg": "EdDSA", "kid": self.signing.0, "typ": "ventanilla-receipt+jws"}).to_string();
        format!("{}.{}.", B64.encode(header), B64.encode(payload))
    }

    /// `jws` signed: a JWS awaiting its signature gets it, by the key its header names (or, when
    /// that key is gone from the directory, over the same payload by the newest); anything else
    /// is answered as it is.
    pub fn complete(&self, jws: &str) -> String {
        let Some(input) = jws.strip_suffix('.').filter(|i| i.matches('.').count() == 1) else { return jws.to_owned() };
        let kid = input
            .split('.')
            .next()
            .and_then(|h| B64.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|h| h["kid"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let named = if kid == self.signing.0 {
            Some(self.signing.1.sign(input.as_bytes()))
        } else if let Some(pair) = self.older.get(&kid) {
            Some(pair.sign(input.as_bytes()))
        } else {
            // A key made after this gateway started, by another gateway sharing the directory.
            self.key_in_directory(&kid).map(|pair| pair.sign(input.as_bytes()))
        };
        match named {
            Some(signature) => format!("{input}.{}", B64.encode(signature.as_ref())),
            None => {
                let payload = input.split('.').nth(1).and_then(|p| B64.decode(p).ok()).and_then(|p| String::from_utf8(p).ok());
                match payload {
                    Some(payload) => self.sign(&payload),
                    None => jws.to_owned(),
                }
            }
        }
    }

    /// The key `kid` of the directory, when its id can name a file there and the file holds one.
    fn key_in_directory(&self, kid: &str) -> Option<Ed25519KeyPair> {
        let plain = !kid.is_empty() && kid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        plain.then(|| read_key(&self.dir.join(format!("{kid}.pk8"))).ok().map(|(_, pair)| pair)).flatten()
    }

    /// The public keys loaded at start, as a JSON Web Key Set (RFC 7517).
    pub fn jwks(&self) -> Value {
        jwks_of(&self.public)
    }
}

fn jwks_of(public: &[PublicKey]) -> Value {
    let keys: Vec<Value> = public
        .iter()
        .map(|k| json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(&k.key), "kid": k.kid, "use": "sig", "alg": "EdDSA"}))
        .collect();
    json!({ "keys": keys })
}

/// Signs receipts for a gateway (cheap to clone).
pub type Sealer = Arc<ReceiptKeys>;

/// `receipt` as stored (`crate::submission`), its signature completed if it awaits one.
pub fn complete(keys: &ReceiptKeys, mut receipt: Value) -> Value {
    if let Some(jws) = receipt.get("signature").and_then(Value::as_str) {
        let signed = keys.complete(jws);
        receipt["signature"] = Value::String(signed);
    }
    receipt
}

/// `receipt` with its `signature`: a JWS over the receipt as it stands.
pub fn seal(keys: &ReceiptKeys, mut receipt: Value) -> Value {
    if let Some(map) = receipt.as_object_mut() {
        map.remove("signature");
    }
    let signature = keys.sign(&receipt.to_string());
    receipt["signature"] = Value::String(signature);
    receipt
}

/// `bodySha256` of a document file: the SHA-256 of the submission envelope in its canonical
/// form (this module's notes), as [`crate::digest::body_sha256`] computes it on submission.
/// The file is parsed as submissions are (a duplicated key is an error).
pub fn document_sha256(bytes: &[u8]) -> Result<String, serde_json::Error> {
    let document = crate::json::parse_strict(bytes)?;
    let payload = document.get("payload").unwrap_or(&Value::Null).to_string();
    Ok(crate::digest::body_sha256(&document, &payload))
}

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotVerified {
    #[error("the receipt has no signature")]
    Unsigned,
    #[error("the signature is not a compact JWS: {0}")]
    Malformed(String),
    #[error("the signature's key {0:?} is not among the gateway's keys")]
    UnknownKey(String),
    #[error("the signature does not match: the receipt, or its signature, was changed")]
    BadSignature,
    #[error("the receipt's members differ from what was signed: {0}")]
    Changed(String),
}

/// Checks `receipt` against the keys of a JWKS (`jwks`): signed by one of them, and its members
/// the ones signed. The signed payload on success.
pub fn verify(receipt: &Value, jwks: &Value) -> Result<Value, NotVerified> {
    let jws = receipt.get("signature").and_then(Value::as_str).ok_or(NotVerified::Unsigned)?;
    let parts: Vec<&str> = jws.split('.').collect();
    let [header, payload, signature] = parts[..] else { return Err(NotVerified::Malformed("not three parts".into())) };
    let decode = |s: &str| B64.decode(s).map_err(|e| NotVerified::Malformed(e.to_string()));
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| NotVerified::Malformed(e.to_string()))?;
    if header["alg"] != "EdDSA" {
        return Err(NotVerified::Malformed(format!("alg {} (EdDSA expected)", header["alg"])));
    }
    let kid = header["kid"].as_str().unwrap_or_default();
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid && k["crv"] == "Ed25519"))
        .and_then(|k| k["x"].as_str())
        .ok_or_else(|| NotVerified::UnknownKey(kid.to_owned()))?;
    let key = decode(key)?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&ED25519, key).verify(signed.as_bytes(), &decode(signature)?).map_err(|_| NotVerified::BadSignature)?;
    let payload: Value = serde_json::from_slice(&decode(payload)?).map_err(|e| NotVerified::Malformed(e.to_string()))?;
    let mut members = receipt.clone();
    if let Some(map) = members.as_object_mut() {
        map.remove("signature");
    }
    if members != payload {
        return Err(NotVerified::Changed("the receipt's members are not those signed".into()));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signing key is the gateway user's only from its first byte, and a key file never
    /// overwritten.
    #[cfg(unix)]
    #[test]
    fn a_new_signing_key_is_created_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let kid = rotate(dir.path()).unwrap();
        let path = dir.path().join(format!("{kid}.pk8"));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(ReceiptKeys::load_or_create(dir.path()).unwrap().jwks()["keys"].as_array().map(Vec::len), Some(1), "the key made is the key loaded");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_sealed_receipt_verifies_and_any_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ReceiptKeys::load_or_create(dir.path()).unwrap();
        let receipt = seal(&keys, json!({"documentId": "d", "bodySha256": "abc", "ucr": "U-1"}));
        let jwks = keys.jwks();
        assert_eq!(verify(&receipt, &jwks).unwrap()["ucr"], "U-1");
        let mut changed = receipt.clone();
        changed["ucr"] = json!("U-2");
        assert!(matches!(verify(&changed, &jwks), Err(NotVerified::Changed(_))));
        let mut forged = receipt.clone();
        // One character of the signature's middle changed.
        let mut sig: Vec<char> = forged["signature"].as_str().unwrap().chars().collect();
        let at = sig.len() - 40;
        sig[at] = if sig[at] == 'A' { 'B' } else { 'A' };
        forged["signature"] = json!(sig.into_iter().collect::<String>());
        assert_eq!(verify(&forged, &jwks), Err(NotVerified::BadSignature));
        assert_eq!(verify(&json!({}), &jwks), Err(NotVerified::Unsigned));
        // After a rotation the new key signs, and the old receipts still verify.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let kid = rotate(dir.path()).unwrap();
        let rotated = ReceiptKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(rotated.signing.0, kid);
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(verify(&receipt, &rotated.jwks()).is_ok(), "signed before the rotation");
        let other = ReceiptKeys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(matches!(verify(&receipt, &other.jwks()), Err(NotVerified::UnknownKey(_))));
        // A key another gateway adds to the shared directory is published at once.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let added = rotate(dir.path()).unwrap();
        assert_eq!(keys.jwks()["keys"].as_array().unwrap().len(), 1, "as loaded at start");
        let current = keys.current_jwks();
        assert_eq!(current["keys"].as_array().unwrap().len(), 3);
        assert!(current["keys"].as_array().unwrap().iter().any(|k| k["kid"] == added));
        assert_eq!(ReceiptKeys::published(dir.path()).unwrap(), current, "read without a gateway");
    }

    #[test]
    fn a_receipt_stored_awaiting_its_signature_is_signed_by_the_key_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let first = ReceiptKeys::load_or_create(dir.path()).unwrap();
        let payload = json!({"documentId": "d", "bodySha256": "abc", "ucr": "U-1"}).to_string();
        let stored = first.signing_input(&payload);
        assert!(stored.ends_with('.') && stored.matches('.').count() == 2, "{stored}");
        assert!(matches!(verify(&json!({"documentId": "d", "bodySha256": "abc", "ucr": "U-1", "signature": stored}), &first.jwks()),
            Err(NotVerified::Malformed(_)) | Err(NotVerified::BadSignature)), "not a signature until completed");
        let signed = first.complete(&stored);
        assert_eq!(signed, first.sign(&payload), "Ed25519 is deterministic: the same input, the same signature");
        assert_eq!(first.complete(&signed), signed, "a signed one is answered as it is");
        let receipt = complete(&first, json!({"documentId": "d", "bodySha256": "abc", "ucr": "U-1", "signature": stored}));
        assert_eq!(verify(&receipt, &first.jwks()).unwrap()["ucr"], "U-1");

        // After a rotation, a receipt stored before it is still signed by its own key: a
        // replay is answered the first receipt, signature and all.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let newer = rotate(dir.path()).unwrap();
        let rotated = ReceiptKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(rotated.signing.0, newer);
        assert_eq!(rotated.complete(&stored), signed);
        // A key another gateway made after this one started is read from the directory.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let later = ReceiptKeys::load_or_create(dir.path()).unwrap();
        let added = rotate(dir.path()).unwrap();
        let by_added = ReceiptKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(by_added.signing.0, added);
        let stored_by_added = by_added.signing_input(&payload);
        assert_eq!(later.complete(&stored_by_added), by_added.complete(&stored_by_added));
        // A key gone from the directory: the newest signs the same payload, and it verifies.
        let elsewhere = ReceiptKeys::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        let resigned = complete(&elsewhere, json!({"documentId": "d", "bodySha256": "abc", "ucr": "U-1", "signature": stored}));
        assert_eq!(verify(&resigned, &elsewhere.jwks()).unwrap()["ucr"], "U-1");
    }

    #[test]
    fn reading_the_published_keys_never_makes_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(ReceiptKeys::published(dir.path()), Err(ReceiptKeyError::NoKeys { .. })));
        assert!(matches!(ReceiptKeys::published(&dir.path().join("missing")), Err(ReceiptKeyError::NoKeys { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");
        std::fs::write(dir.path().join("broken.pk8"), b"not a key").unwrap();
        assert!(matches!(ReceiptKeys::published(dir.path()), Err(ReceiptKeyError::BadKey { .. })));
    }

    #[test]
    fn a_document_hashes_the_same_however_it_is_formatted() {
        let compact = br#"{"ucr":"U-1","payload":{"b":[1,2.5,"\u00e9\u001F\/",1e2],"a":true},"documentType":"x"}"#;
        let pretty = "{\n  \"documentType\": \"x\",\n  \"payload\": { \"a\": true, \"b\": [1, 2.50, \"é\\u001f/\", 100.0] },\n  \"ucr\": \"U-1\"\n}\n";
        // As the module's notes describe it.
        let canonical = r#"{"documentType":"x","payload":{"a":true,"b":[1,2.5,"é\u001f/",100.0]},"ucr":"U-1"}"#;
        let expected = crate::digest::sha256_hex(canonical.as_bytes());
        assert_eq!(document_sha256(compact).unwrap(), expected);
        assert_eq!(document_sha256(pretty.as_bytes()).unwrap(), expected);
        assert!(document_sha256(br#"{"ucr":"A","ucr":"B"}"#).is_err(), "a duplicated key, as a submission");
    }
}
