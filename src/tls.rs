//! TLS for the HTTP front, with rustls (ring provider): TLS 1.2 and 1.3 only. With a
//! participant CA configured, clients may present a certificate; the handshake refuses any
//! that is expired, not yet valid or not signed by that CA, and a verified certificate is
//! mapped to a participant by its SHA-256 fingerprint (see `http::auth`). Clients without a
//! certificate can still authenticate with a bearer token.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Extensions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsFiles;

/// Why TLS cannot be set up; each names the file to fix. Key material is never printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read PEM from {path}: {source}")]
    Pem { path: PathBuf, #[source] source: rustls::pki_types::pem::Error },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("the participant CA in {path} cannot be used: {source}")]
    ClientCa { path: PathBuf, #[source] source: rustls::Error },
    #[error("client certificate verification cannot be set up: {0}")]
    Verifier(String),
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem { path: path.to_owned(), source };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem)?.collect::<Result<Vec<_>, _>>().map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The server's TLS configuration from its files.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Pem { path: files.key.clone(), source })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots.add(c).map_err(|source| TlsError::ClientCa { path: ca.clone(), source })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The verified client certificate of a connection, by its SHA-256 fingerprint (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub String);

/// `HttpServer::on_connect` hook: records the client certificate the handshake verified.
pub fn record_peer_certificate(connection: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = connection.downcast_ref::<Tls>() {
        if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            data.insert(PeerCertificate(crate::digest::sha256_hex(cert.as_ref())));
        }
    }
}
