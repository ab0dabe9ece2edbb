//! Checking the server's certificate and explaining a refused connection. [`Verifier`] is the
//! rustls verifier of one [`Verify`] level that puts what it found wrong in words (the CA
//! expected and the issuer that came, the host and the names in the certificate, the
//! expiry); [`explain`] turns a failed connection into one line with its fix: that, a client
//! certificate refused or missing, TLS required but not allowed, or not offered but required.
//! No I/O; key material is never printed.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::material::LoadedRoots;
use super::policy::{Attempt, Verify};
use crate::pg::conninfo::SslMode;

/// The rustls error somewhere in `e`'s sources (inside an `io::Error` too).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

/// The fix for a client certificate the server refused or missed.
const CLIENT_CERT_FIX: &str = "give a client certificate signed by the CA in the server's ssl_ca_file, with the user name as its CN, in sslcert/sslkey or spec.database.tls.clientCertificateSecretRef";

/// The one-line explanation of a TLS-related connection failure, or `None` when it is not one.
pub(super) fn explain(
    e: &tokio_postgres::Error,
    mode: SslMode,
    attempt: Attempt,
    sent_cert: bool,
    direct: bool,
    problem: Option<String>,
) -> Option<String> {
    if let Some(r) = rustls_error(e) {
        return Some(match r {
            rustls::Error::InvalidCertificate(c) => problem.unwrap_or_else(|| format!("the server's certificate was refused: {c:?}")),
            rustls::Error::AlertReceived(alert) if sent_cert => {
                format!("the server refused the client certificate (TLS alert {alert:?}); fix: {CLIENT_CERT_FIX}")
            }
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
                format!("the server requires a client certificate and none was given; fix: {CLIENT_CERT_FIX}")
            }
            rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol) if direct => {
                "the server does not accept sslnegotiation=direct (it needs PostgreSQL 17 or later); fix: leave out sslnegotiation".into()
            }
            rustls::Error::AlertReceived(alert) => format!(
                "the server ended the TLS handshake (alert {alert:?}); fix: check ssl_min_protocol_version/ssl_max_protocol_version against the server's"
            ),
            other if direct => format!(
                "the server did not answer a direct TLS handshake ({other}); sslnegotiation=direct needs PostgreSQL 17 or later; fix: leave out sslnegotiation"
            ),
            other => format!("TLS failed: {other}"),
        });
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    if direct && text.contains("TLS handshake") {
        // a server without direct TLS reads the ClientHello as a startup packet and hangs up
        return Some(format!(
            "the server did not answer a direct TLS handshake ({text}); sslnegotiation=direct needs PostgreSQL 17 or later; fix: leave out sslnegotiation"
        ));
    }
    if text.contains("server does not support TLS") {
        return Some(format!(
            "the server does not offer TLS, but sslmode={mode} requires it; fix: turn on ssl in the server's postgresql.conf, \
             or (on a network you trust) use sslmode=prefer"
        ));
    }
    let db = e.as_db_error()?;
    let said = db.message();
    if attempt == Attempt::Plain && said.contains("no encryption") {
        return Some(format!(
            "the server refused an unencrypted connection ({said}); fix: use sslmode=verify-full with the server's CA in sslrootcert or \
             spec.database.tls.caBundle (Amazon RDS: global-bundle.pem), or at least sslmode=require"
        ));
    }
    if said.contains("requires a valid client certificate") {
        return Some(format!(
            "the server requires a client certificate and none was given ({said}); fix: {CLIENT_CERT_FIX}"
        ));
    }
    if said.contains("certificate authentication failed") || said.contains("certificate") && db.code().code() == "28000" {
        return Some(format!(
            "the server refused the client certificate ({said}); fix: {CLIENT_CERT_FIX}"
        ));
    }
    None
}

/// The subject of a certificate, RFC 4514 (`CN=…,O=…`), or a placeholder.
pub(super) fn subject(der: &CertificateDer<'_>) -> String {
    names(der).map(|(s, _)| s).unwrap_or_else(|| "an unreadable certificate".into())
}

/// Subject and issuer of a certificate.
fn names(der: &CertificateDer<'_>) -> Option<(String, String)> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    Some((cert.tbs_certificate.subject.to_string(), cert.tbs_certificate.issuer.to_string()))
}

/// Checks the server's certificate at one [`Verify`] level, and says in words what is wrong.
#[derive(Debug)]
pub(super) struct Verifier {
    level: Verify,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    roots: String,
    problem: Arc<Mutex<Option<String>>>,
}

impl Verifier {
    /// A verifier at `level` against `roots`, putting what it finds wrong into `problem`.
    pub(super) fn new(
        level: Verify,
        roots: Option<&LoadedRoots>,
        provider: &Arc<CryptoProvider>,
        problem: Arc<Mutex<Option<String>>>,
    ) -> Result<Verifier, String> {
        let webpki = match (level, roots) {
            (Verify::Nothing, _) => None,
            (_, Some(r)) => Some(
                WebPkiServerVerifier::builder_with_provider(r.store.clone(), provider.clone())
                    .build()
                    .map_err(|e| format!("root CAs: {e}"))?,
            ),
            (_, None) => return Err("verification needs root CAs".into()),
        };
        Ok(Verifier {
            level,
            webpki,
            algorithms: provider.signature_verification_algorithms,
            roots: roots.map(|r| r.described.clone()).unwrap_or_default(),
            problem,
        })
    }

    /// What is wrong with the server's certificate `end_entity`, in one line with the fix.
    fn describe(&self, e: &rustls::Error, end_entity: &CertificateDer<'_>) -> String {
        let (subject, issuer) = names(end_entity).unwrap_or_else(|| ("?".into(), "?".into()));
        let when = |t: &UnixTime| {
            jiff::Timestamp::from_second(t.as_secs() as i64)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| t.as_secs().to_string())
        };
        match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate (\"{subject}\") was issued by \"{issuer}\", which is not among the root CAs {}; \
                 fix: give the CA that issued it in sslrootcert or spec.database.tls.caBundle (Amazon RDS: global-bundle.pem), or sslmode=require to encrypt without verifying",
                self.roots
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }) => format!(
                "the server's certificate is for {} but the connection is to \"{}\"; fix: connect with a host name the certificate names, or use sslmode=verify-ca to verify the CA only",
                if presented.is_empty() {
                    "no host name".to_owned()
                } else {
                    presented
                        .iter()
                        .map(|p| format!("\"{}\"", presented_name(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                expected.to_str()
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "the server's certificate (\"{subject}\") does not name the host connected to; fix: connect with a host name the certificate names, or use sslmode=verify-ca"
            ),
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => format!(
                "the server's certificate (\"{subject}\") expired at {} (now {}); fix: renew the server's certificate",
                when(not_after),
                when(time)
            ),
            rustls::Error::InvalidCertificate(CertificateError::Expired) => {
                format!("the server's certificate (\"{subject}\") has expired; fix: renew the server's certificate")
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { not_before, .. }) => format!(
                "the server's certificate (\"{subject}\") is valid only from {}; fix: check the server's and the worker's clocks",
                when(not_before)
            ),
            other => format!("the server's certificate (\"{subject}\", issued by \"{issuer}\") was refused: {other}"),
        }
    }
}

/// A name as rustls presents it (`DnsName("db.example")`, `IpAddress(10.0.0.1)`), bare.
fn presented_name(p: &str) -> &str {
    let inner = p.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).unwrap_or(p);
    inner.trim_matches('"')
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(v) => Ok(v),
            // webpki checks the name only after the chain: verify-ca stops here
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
                if self.level == Verify::Chain =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                *self.problem.lock().expect("problem") = Some(self.describe(&e, end_entity));
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(presented_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("db.example"), "db.example");
    }
}
