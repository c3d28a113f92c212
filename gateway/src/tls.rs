//! TLS with rustls (ring provider): the server certificate and key, and, with a CA file,
//! client certificates required and verified against it (mutual TLS, as go-swagger's
//! `--tls-ca` does).

use crate::config::TlsConfig;
use crate::error::GatewayError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

fn tls_err(what: impl Into<String>) -> GatewayError {
    GatewayError::Tls { what: what.into() }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, GatewayError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(format!("reading {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("parsing {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!("no certificate in {}", path.display())));
    }
    Ok(certs)
}

/// The acceptor for `cfg`.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, GatewayError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs(&cfg.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| tls_err(format!("reading the key {}: {e}", cfg.key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match &cfg.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| tls_err(format!("CA {}: {e}", ca.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
