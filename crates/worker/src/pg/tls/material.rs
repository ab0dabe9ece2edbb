//! The TLS material a connection uses: the root CAs (a file, the platform's trust store, or
//! the job's CA bundle) and the client certificate with its key (files, checked for libpq's
//! permissions, or the job's identity from SSM). I/O: reads the files and the trust store.
//! Key material is never put into a message.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsMaterial;
use super::policy::{ClientCert, Roots};
use super::verify::subject;

/// A client certificate chain and its key.
pub(super) struct Identity {
    /// The certificate, then its intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

/// Root CAs and how to name them in an error.
pub(super) struct LoadedRoots {
    /// The roots.
    pub store: Arc<RootCertStore>,
    /// Their names and where they come from, e.g. `"CN=Root CA" (sslrootcert /ca.pem)`.
    pub described: String,
}

/// Reads the root CAs `roots` names (`None` when nothing is verified); the error is one line
/// with the fix.
pub(super) fn load_roots(roots: &Roots, material: &TlsMaterial) -> Result<Option<LoadedRoots>, String> {
    let (certs, whence): (Vec<CertificateDer<'static>>, String) = match roots {
        Roots::Unneeded => return Ok(None),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "sslrootcert=system, but the platform's trust store has no certificates ({}); install ca-certificates, or give the CA in sslrootcert=PATH",
                    found.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
                ));
            }
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            return Ok(Some(LoadedRoots {
                store: Arc::new(store),
                described: "the platform's trust store (sslrootcert=system)".into(),
            }));
        }
        Roots::File(path) => {
            let text = std::fs::read(path).map_err(|e| {
                format!(
                    "root certificate file \"{}\" cannot be read ({e}); give the CA's PEM file in sslrootcert, or use sslrootcert=system for a public CA",
                    path.display()
                )
            })?;
            (pem_certs(&text), format!("sslrootcert {}", path.display()))
        }
        Roots::Bundle => {
            let text = material.ca_bundle.as_deref().unwrap_or_default();
            (pem_certs(text.as_bytes()), "the CA bundle (spec.database.tls.caBundle)".into())
        }
    };
    if certs.is_empty() {
        return Err(format!(
            "{whence} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA's certificates in PEM"
        ));
    }
    let names: Vec<String> = certs.iter().map(|c| subject(c)).collect();
    let mut store = RootCertStore::empty();
    let (_, bad) = store.add_parsable_certificates(certs);
    if store.is_empty() {
        return Err(format!("{whence}: none of its {bad} certificates can be used as a root CA"));
    }
    let described = match names.as_slice() {
        [one] => format!("\"{one}\" ({whence})"),
        [first, rest @ ..] => format!("\"{first}\" and {} more ({whence})", rest.len()),
        [] => whence,
    };
    Ok(Some(LoadedRoots {
        store: Arc::new(store),
        described,
    }))
}

/// The PEM certificates in `pem`, skipping what does not parse.
fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

/// Reads the client certificate chain and key `client` names (`None` when none is sent); the
/// error is one line with the fix, naming the file or the job, never the key.
pub(super) fn load_identity(client: &ClientCert, material: &TlsMaterial) -> Result<Option<Identity>, String> {
    let (chain_pem, key_pem, whence_cert, whence_key) = match client {
        ClientCert::None => return Ok(None),
        ClientCert::Files { cert, key } => {
            check_key_permissions(key)?;
            let c = std::fs::read(cert).map_err(|e| format!("sslcert \"{}\" cannot be read ({e})", cert.display()))?;
            let k = std::fs::read(key).map_err(|e| format!("sslkey \"{}\" cannot be read ({e})", key.display()))?;
            (c, k, format!("sslcert {}", cert.display()), format!("sslkey {}", key.display()))
        }
        ClientCert::Staged => {
            let both = material.client_identity.clone().unwrap_or_default().into_bytes();
            (
                both.clone(),
                both,
                "the client certificate".into(),
                "the client certificate's key".into(),
            )
        }
    };
    let chain = pem_certs(&chain_pem);
    if chain.is_empty() {
        return Err(format!("{whence_cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        format!(
            "{whence_key} holds no unencrypted private key (PEM: PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY); \
             decrypt an encrypted key first: openssl pkey -in key.pem -out key.plain.pem"
        )
    })?;
    Ok(Some(Identity { chain, key }))
}

/// libpq's rule: a key file must not be readable by others (0600 or less; 0640 if root owns it).
fn check_key_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("sslkey \"{}\" cannot be read ({e})", path.display()))?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(format!(
            "private key file \"{}\" has group or world access (mode {mode:o}); fix: chmod 600 it",
            path.display()
        ));
    }
    Ok(())
}
