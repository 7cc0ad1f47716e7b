//! TLS and mutual TLS with real clients (reqwest over rustls, and curl) and certificates made
//! here with rcgen: a registered client certificate identifies its participant; no
//! certificate falls back to bearer tokens; expired, not-yet-valid, foreign-CA and
//! unregistered certificates are refused; plain HTTP to the TLS port gets nowhere. And the
//! gateway refuses to serve plain HTTP on a public address unless told to.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use ventanilla::config::{ParticipantConfig, ServeOptions, Settings, TlsFiles};
use ventanilla::domain::Role;

use crate::helpers::{repo, spawn_app_configured};

/// An operator's bearer token (not a demo one: with TLS, demo participants are off).
const OPS_TOKEN: &str = "ops-token-3c1f";

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    Ca { cert: p.self_signed(&key).unwrap(), key }
}

/// A certificate signed by `ca`, valid from `from` to `to` (years), written as PEM to `dir`.
fn issue(dir: &Path, name: &str, ca: &Ca, server: bool, from: i32, to: i32) -> (PathBuf, PathBuf, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(if server { vec!["localhost".to_owned()] } else { Vec::new() }).unwrap();
    if server {
        p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    p.distinguished_name.push(DnType::CommonName, name);
    p.not_before = rcgen::date_time_ymd(from, 1, 1);
    p.not_after = rcgen::date_time_ymd(to, 1, 1);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, ventanilla::digest::sha256_hex(cert.der()))
}

/// curl's answer: the HTTP status, or `Err(exit code)` when no HTTP answer came.
fn curl(url: &str, ca: &Path, client: Option<(&Path, &Path)>, token: Option<&str>) -> Result<u16, i32> {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert"]).arg(ca);
    if let Some((cert, key)) = client {
        c.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = c.arg(url).output().expect("curl runs");
    match (out.status.code(), String::from_utf8_lossy(&out.stdout).parse::<u16>()) {
        (Some(0), Ok(status)) => Ok(status),
        (code, _) => Err(code.unwrap_or(-1)),
    }
}

fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap());
    if let Some((cert, key)) = identity {
        let pem = [std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()].concat();
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

#[tokio::test]
async fn mutual_tls_identifies_registered_certificates_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let authority = ca("Ventanilla test participant CA");
    std::fs::write(d.join("ca.pem"), authority.cert.pem()).unwrap();
    let ca_pem = d.join("ca.pem");
    let (server_cert, server_key, _) = issue(d, "gateway", &authority, true, 2024, 2099);
    let (good, good_key, good_fp) = issue(d, "ops-console", &authority, false, 2024, 2099);
    let (expired, expired_key, expired_fp) = issue(d, "expired", &authority, false, 2020, 2021);
    let (early, early_key, early_fp) = issue(d, "not-yet-valid", &authority, false, 2090, 2099);
    let (stranger, stranger_key, _) = issue(d, "unregistered", &authority, false, 2024, 2099);
    let other = ca("Some other CA");
    let (foreign, foreign_key, foreign_fp) = issue(d, "foreign", &other, false, 2024, 2099);

    let app = spawn_app_configured(None, |s: &mut Settings| {
        s.tls = Some(TlsFiles { cert: server_cert.clone(), key: server_key.clone(), client_ca: Some(ca_pem.clone()) });
        s.region.participants.push(ParticipantConfig {
            id: "ops-by-token".into(),
            role: Role::Operator,
            agency: None,
            country: None,
            token_sha256: Some(ventanilla::digest::sha256_hex(OPS_TOKEN.as_bytes())),
            cert_sha256: None,
            acts_for: Vec::new(),
            demo: false,
        });
        for (id, fp) in [("ops-console", &good_fp), ("expired-one", &expired_fp), ("early-one", &early_fp), ("foreign-one", &foreign_fp)] {
            s.region.participants.push(ParticipantConfig {
                id: id.into(),
                role: Role::Operator,
                agency: None,
                country: None,
                token_sha256: None,
                cert_sha256: Some(fp.clone()),
                acts_for: Vec::new(),
                demo: false,
            });
        }
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/v1/deliveries/failed");

    // The registered certificate is the operator it belongs to: reqwest over rustls, and curl.
    let r = client(&ca_pem, Some((&good, &good_key))).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "a registered client certificate authenticates");
    assert_eq!(curl(&url, &ca_pem, Some((&good, &good_key)), None), Ok(200));

    // No certificate: bearer tokens still work, and nothing is 401.
    assert_eq!(curl(&url, &ca_pem, None, None), Ok(401));
    assert_eq!(curl(&url, &ca_pem, None, Some(OPS_TOKEN)), Ok(200));
    assert_eq!(curl(&url, &ca_pem, None, Some("demo-operator")), Ok(401), "demo tokens are off with TLS");
    assert_eq!(client(&ca_pem, None).get(&url).bearer_auth(OPS_TOKEN).send().await.unwrap().status(), 200);

    // Signed by the CA but registered to nobody: 401, even with a valid token.
    let r = client(&ca_pem, Some((&stranger, &stranger_key))).get(&url).bearer_auth(OPS_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("not registered to any participant"));
    assert_eq!(curl(&url, &ca_pem, Some((&stranger, &stranger_key)), None), Ok(401));

    // Expired, not yet valid, another CA: the handshake fails, though each is "registered".
    for (what, cert, key) in [("expired", &expired, &expired_key), ("not yet valid", &early, &early_key), ("foreign CA", &foreign, &foreign_key)] {
        assert!(curl(&url, &ca_pem, Some((cert, key)), None).is_err(), "curl with a {what} certificate is refused");
        let r = client(&ca_pem, Some((cert, key))).get(&url).send().await;
        assert!(r.is_err(), "reqwest with a {what} certificate is refused: {:?}", r.map(|r| r.status()));
    }

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/v1/deliveries/failed")).bearer_auth(OPS_TOKEN).send().await;
    assert!(plain.is_err() || plain.unwrap().status() == 400, "plain HTTP is not served on the TLS port");
    // TLS 1.2 and 1.3 are both served. (That 1.1 and older are not is rustls' own: it has no
    // code for them. curl cannot show it here, as this machine's OpenSSL refuses 1.1 itself.)
    let pinned = |version: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("--tlsv{version}"), "--tls-max", version, "-H", "Authorization: Bearer ops-token-3c1f", "--cacert"])
            .arg(&ca_pem)
            .arg(&url)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(pinned("1.2"), "200", "TLS 1.2 is served");
    assert_eq!(pinned("1.3"), "200", "TLS 1.3 is served");
}

#[tokio::test]
async fn plain_http_on_a_public_address_is_refused_unless_the_operator_opts_out() {
    ventanilla::telemetry::init_for_tests();
    let settings = |allow: bool| {
        let data = tempfile::tempdir().unwrap();
        let mut s = Settings::load(repo().join("config"), ServeOptions::local("0.0.0.0:0".parse().unwrap(), data.path().to_owned())).unwrap();
        s.region.gateway.allow_plaintext_on_public_address = allow;
        (s, data)
    };
    let (refused, _d1) = settings(false);
    let err = ventanilla::startup::Application::build(refused).await.err().expect("refused to start");
    let msg = err.to_string();
    assert!(msg.contains("refusing to serve plain HTTP") && msg.contains("allow_plaintext_on_public_address"), "{msg}");
    let (allowed, _d2) = settings(true);
    assert!(ventanilla::startup::Application::build(allowed).await.is_ok(), "starts when the operator opts out");
}
