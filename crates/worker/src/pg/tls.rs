//! TLS to PostgreSQL with libpq's meanings, on rustls (aws-lc-rs) through
//! `tokio-postgres-rustls`.
//!
//! [`policy`] turns the connection string's TLS parameters ([`super::conninfo::TlsParams`]) and
//! the job's [`TlsMaterial`] into the connection attempts libpq would make — what is tried
//! first, what falls back, what is verified — and is pure and table-tested. [`Connector`]
//! carries them out (I/O: it reads the certificate and key files the string names, the
//! platform's trust store for `sslrootcert=system`, and connects). A refused connection
//! becomes one line with its fix ([`explain`]): the CA that was expected and the issuer that
//! came, the host and the names in the certificate, the expiry, a client certificate refused,
//! TLS required but not allowed, or not offered but required. Key material is never printed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{SslMode as WireMode, SslNegotiation};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::EngineError;
use super::conninfo::{SslMode, TlsParams, TlsVersion};
use datadump_contract::{CertificateCheck, ConnectionReport};

/// TLS material that comes with the job rather than from files named in the connection string
/// (the worker on EC2 has none of the cluster's files).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    /// PEM CA certificates (e.g. RDS's `global-bundle.pem`): the roots the server's certificate
    /// is verified against when the connection string names no `sslrootcert`. With no `sslmode`
    /// in the string, a bundle makes the mode `verify-full`. Not a secret.
    pub ca_bundle: Option<String>,
    /// PEM client certificate (chain) followed by its PEM private key, used when the connection
    /// string names no `sslcert`/`sslkey`. A secret: it comes from SSM, never from the job.
    pub client_identity: Option<String>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca_bundle", &self.ca_bundle.as_ref().map(|b| format!("{} bytes", b.len())))
            .field("client_identity", &self.client_identity.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// What of the server's certificate is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption without authentication (`prefer`, `allow`, `require`).
    Nothing,
    /// The chain up to a root CA (`verify-ca`, or `require` when a root CA is given).
    Chain,
    /// The chain, and that the certificate names the host (`verify-full`).
    ChainAndHost,
}

/// One connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Unencrypted.
    Plain,
    /// TLS when the server offers it, else unencrypted on the same connection (`prefer`).
    TlsIfOffered(Verify),
    /// TLS or nothing.
    Tls(Verify),
}

/// Where the root CAs come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// None needed: nothing is verified.
    Unneeded,
    /// `sslrootcert=PATH`, or libpq's default `~/.postgresql/root.crt` when it exists.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trust store.
    System,
    /// The job's CA bundle (`spec.database.tls.caBundle`).
    Bundle,
}

/// Where the client certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCert {
    /// No client certificate is sent.
    None,
    /// `sslcert` and `sslkey` files (or libpq's defaults under `~/.postgresql/`).
    Files {
        /// The certificate (chain), PEM.
        cert: PathBuf,
        /// Its private key, PEM.
        key: PathBuf,
    },
    /// The job's client identity (certificate and key from SSM).
    Staged,
}

/// What libpq would do with these parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The mode in force.
    pub mode: SslMode,
    /// The attempts in order; the next one runs only when the one before failed.
    pub attempts: Vec<Attempt>,
    /// The root CAs used for verification.
    pub roots: Roots,
    /// The client certificate offered.
    pub client: ClientCert,
    /// `sslnegotiation=direct`.
    pub direct: bool,
    /// Send SNI (`sslsni`, default on; never for an IP address).
    pub sni: bool,
    /// The TLS versions allowed, lowest first.
    pub versions: Vec<TlsVersion>,
}

/// Files libpq looks for when the string names none: `~/.postgresql/root.crt`,
/// `postgresql.crt` and `postgresql.key`. A field is `None` when the file does not exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DefaultFiles {
    /// `~/.postgresql/root.crt`.
    pub root_cert: Option<PathBuf>,
    /// `~/.postgresql/postgresql.crt`.
    pub client_cert: Option<PathBuf>,
    /// `~/.postgresql/postgresql.key`.
    pub client_key: Option<PathBuf>,
}

impl DefaultFiles {
    /// Looks for the files under `$HOME/.postgresql/` (I/O).
    pub fn find() -> DefaultFiles {
        let Some(dir) = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql")) else {
            return DefaultFiles::default();
        };
        let existing = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        DefaultFiles {
            root_cert: existing("root.crt"),
            client_cert: existing("postgresql.crt"),
            client_key: existing("postgresql.key"),
        }
    }
}

/// The attempts of a mode, as libpq makes them. `has_root`: a root CA is at hand, which makes
/// `require` verify the chain (libpq keeps that for compatibility).
pub fn attempts(mode: SslMode, has_root: bool) -> Vec<Attempt> {
    match mode {
        SslMode::Disable => vec![Attempt::Plain],
        SslMode::Allow => vec![Attempt::Plain, Attempt::Tls(Verify::Nothing)],
        SslMode::Prefer => vec![Attempt::TlsIfOffered(Verify::Nothing), Attempt::Plain],
        SslMode::Require if has_root => vec![Attempt::Tls(Verify::Chain)],
        SslMode::Require => vec![Attempt::Tls(Verify::Nothing)],
        SslMode::VerifyCa => vec![Attempt::Tls(Verify::Chain)],
        SslMode::VerifyFull => vec![Attempt::Tls(Verify::ChainAndHost)],
    }
}

/// Resolves the parameters as libpq does (pure). `bundle`/`identity`: the job carries a CA
/// bundle / a client identity. The error is one line with the fix.
pub fn policy(p: &TlsParams, bundle: bool, identity: bool, defaults: &DefaultFiles) -> Result<Policy, String> {
    let system = p.sslrootcert.as_deref() == Some("system");
    let mode = match p.sslmode {
        Some(m) if system && m < SslMode::VerifyFull => {
            return Err(format!(
                "weak sslmode \"{m}\" may not be used with sslrootcert=system; use sslmode=verify-full"
            ));
        }
        Some(m) => m,
        None if system || (bundle && p.sslrootcert.is_none()) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if p.direct && mode < SslMode::Require {
        return Err(format!(
            "weak sslmode \"{mode}\" may not be used with sslnegotiation=direct; use sslmode=require, verify-ca or verify-full"
        ));
    }
    let root_at_hand = match p.sslrootcert.as_deref() {
        Some("system") => Some(Roots::System),
        // named, so at hand (libpq ignores a missing file under `require`; we refuse it)
        Some(path) => Some(Roots::File(PathBuf::from(path))),
        None if bundle => Some(Roots::Bundle),
        None => defaults.root_cert.clone().map(Roots::File),
    };
    let attempts = attempts(mode, root_at_hand.is_some());
    let verifies = attempts
        .iter()
        .any(|a| matches!(a, Attempt::Tls(v) | Attempt::TlsIfOffered(v) if *v != Verify::Nothing));
    let roots = match (verifies, root_at_hand) {
        (false, _) => Roots::Unneeded,
        (true, Some(r)) => r,
        (true, None) => {
            return Err(format!(
                "sslmode={mode} verifies the server's certificate, but no root CA is given (no sslrootcert, no spec.database.tls.caBundle, no ~/.postgresql/root.crt); \
                 give the CA in sslrootcert=PATH or spec.database.tls.caBundle (for Amazon RDS: global-bundle.pem), use sslrootcert=system for a public CA, \
                 or sslmode=require to encrypt without verifying"
            ));
        }
    };
    let client = match (&p.sslcert, &p.sslkey) {
        _ if p.no_client_cert => ClientCert::None,
        (Some(cert), key) => ClientCert::Files {
            cert: cert.into(),
            key: match (key, &defaults.client_key) {
                (Some(k), _) => k.into(),
                (None, Some(k)) => k.clone(),
                (None, None) => return Err("sslcert is set but sslkey is not; give the certificate's private key in sslkey".into()),
            },
        },
        (None, Some(_)) => return Err("sslkey is set but sslcert is not; give the client certificate in sslcert".into()),
        (None, None) if identity => ClientCert::Staged,
        (None, None) => match (&defaults.client_cert, &defaults.client_key) {
            (Some(cert), Some(key)) => ClientCert::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => ClientCert::None,
        },
    };
    let lowest = p.min_version.unwrap_or(TlsVersion::V1_2);
    let highest = p.max_version.unwrap_or(TlsVersion::V1_3);
    if highest < TlsVersion::V1_2 {
        return Err("ssl_max_protocol_version below TLSv1.2 is not supported; use TLSv1.2 or TLSv1.3".into());
    }
    let versions: Vec<TlsVersion> = [TlsVersion::V1_2, TlsVersion::V1_3]
        .into_iter()
        .filter(|v| *v >= lowest && *v <= highest)
        .collect();
    if versions.is_empty() {
        return Err("ssl_min_protocol_version is above ssl_max_protocol_version; raise the maximum or lower the minimum".into());
    }
    Ok(Policy {
        mode,
        attempts,
        roots,
        client,
        direct: p.direct,
        sni: p.sni.unwrap_or(true),
        versions,
    })
}

/// A client certificate chain and its key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Carries out a [`Policy`]: one rustls configuration per verification level, shared by every
/// connection of an export.
pub(crate) struct Connector {
    policy: Policy,
    nothing: Option<MakeRustlsConnect>,
    chain: Option<MakeRustlsConnect>,
    full: Option<MakeRustlsConnect>,
    /// What the verifier found wrong with the server's certificate, in words.
    problem: Arc<Mutex<Option<String>>>,
}

/// An open connection: the client, its connection task, and how it connected.
pub(crate) struct Connected {
    pub client: Client,
    pub task: tokio::task::JoinHandle<()>,
    pub report: ConnectionReport,
}

impl Connector {
    /// Builds the TLS configurations the attempts need (I/O: reads the files named).
    pub fn new(p: &TlsParams, material: &TlsMaterial) -> Result<Connector, EngineError> {
        let tls_err = |m: String| EngineError::Tls(m);
        let policy = policy(
            p,
            material.ca_bundle.is_some(),
            material.client_identity.is_some(),
            &DefaultFiles::find(),
        )
        .map_err(tls_err)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let problem = Arc::new(Mutex::new(None));
        let mut connector = Connector {
            policy,
            nothing: None,
            chain: None,
            full: None,
            problem: problem.clone(),
        };
        let levels: Vec<Verify> = connector
            .policy
            .attempts
            .iter()
            .filter_map(|a| match a {
                Attempt::Plain => None,
                Attempt::Tls(v) | Attempt::TlsIfOffered(v) => Some(*v),
            })
            .collect();
        if levels.is_empty() {
            return Ok(connector);
        }
        let roots = load_roots(&connector.policy.roots, material).map_err(tls_err)?;
        let identity = load_identity(&connector.policy.client, material).map_err(tls_err)?;
        for level in levels {
            let verifier = Arc::new(Verifier::new(level, roots.as_ref(), &provider, problem.clone()).map_err(tls_err)?);
            let config = client_config(&connector.policy, &provider, verifier, identity.as_ref()).map_err(tls_err)?;
            let slot = match level {
                Verify::Nothing => &mut connector.nothing,
                Verify::Chain => &mut connector.chain,
                Verify::ChainAndHost => &mut connector.full,
            };
            *slot = Some(MakeRustlsConnect::new(config));
        }
        Ok(connector)
    }

    /// Connects as libpq would: each attempt in turn until one succeeds. The error of the last
    /// attempt is explained in one line.
    pub async fn connect(&self, base: &tokio_postgres::Config) -> Result<Connected, EngineError> {
        let n = self.policy.attempts.len();
        for (i, attempt) in self.policy.attempts.iter().enumerate() {
            match self.try_once(base, *attempt).await {
                Ok((client, task)) => {
                    let report = self.report(&client, *attempt).await;
                    return Ok(Connected { client, task, report });
                }
                Err(e) if i + 1 < n => {
                    tracing::info!(sslmode = %self.policy.mode, error = %e, "connection attempt failed; trying the next one as libpq does");
                }
                Err(e) => return Err(self.explain(e, *attempt)),
            }
        }
        unreachable!("a policy has at least one attempt")
    }

    async fn try_once(
        &self,
        base: &tokio_postgres::Config,
        attempt: Attempt,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let mut config = base.clone();
        let (verify, wire) = match attempt {
            Attempt::Plain => {
                config.ssl_mode(WireMode::Disable);
                return spawn(config.connect(NoTls).await);
            }
            Attempt::TlsIfOffered(v) => (v, WireMode::Prefer),
            Attempt::Tls(v) => (v, WireMode::Require),
        };
        config.ssl_mode(wire);
        if self.policy.direct {
            config.ssl_negotiation(SslNegotiation::Direct);
        }
        spawn(config.connect(self.tls_for(verify).clone()).await)
    }

    fn tls_for(&self, v: Verify) -> &MakeRustlsConnect {
        let c = match v {
            Verify::Nothing => &self.nothing,
            Verify::Chain => &self.chain,
            Verify::ChainAndHost => &self.full,
        };
        c.as_ref().expect("a configuration for every level the attempts use")
    }

    /// How the connection was made, as the server saw it (`pg_stat_ssl`).
    async fn report(&self, client: &Client, attempt: Attempt) -> ConnectionReport {
        let verify = match attempt {
            Attempt::Plain => Verify::Nothing,
            Attempt::Tls(v) | Attempt::TlsIfOffered(v) => v,
        };
        let row = client
            .query_opt("SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await;
        let (tls, version, cipher) = match row {
            Ok(Some(r)) => (r.get::<_, bool>(0), r.get(1), r.get(2)),
            // no pg_stat_ssl (a proxy, an old server): what the attempt says
            _ => (matches!(attempt, Attempt::Tls(_)), None, None),
        };
        ConnectionReport {
            sslmode: self.policy.mode.as_str().to_owned(),
            tls,
            tls_version: version,
            cipher,
            server_certificate: match (tls, verify) {
                (false, _) | (true, Verify::Nothing) => CertificateCheck::None,
                (true, Verify::Chain) => CertificateCheck::Ca,
                (true, Verify::ChainAndHost) => CertificateCheck::CaAndHostName,
            },
            client_certificate: tls && self.policy.client != ClientCert::None,
        }
    }

    /// One line with the fix for a failed connection.
    fn explain(&self, e: tokio_postgres::Error, attempt: Attempt) -> EngineError {
        let problem = self.problem.lock().expect("problem").clone();
        let sent_cert = self.policy.client != ClientCert::None && attempt != Attempt::Plain;
        match explain(&e, self.policy.mode, attempt, sent_cert, self.policy.direct, problem) {
            Some(message) => EngineError::Tls(message),
            None => EngineError::Connect { source: e },
        }
    }
}

fn spawn<S, T>(
    r: Result<(Client, tokio_postgres::Connection<S, T>), tokio_postgres::Error>,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = r?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok((client, task))
}

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

const CLIENT_CERT_FIX: &str = "give a client certificate signed by the CA in the server's ssl_ca_file, with the user name as its CN, in sslcert/sslkey or spec.database.tls.clientCertificateSecretRef";

/// The one-line explanation of a TLS-related connection failure, or `None` when it is not one.
fn explain(
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

/// Root CAs and how to name them in an error.
struct LoadedRoots {
    store: Arc<RootCertStore>,
    described: String,
}

fn load_roots(roots: &Roots, material: &TlsMaterial) -> Result<Option<LoadedRoots>, String> {
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

fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

fn load_identity(client: &ClientCert, material: &TlsMaterial) -> Result<Option<Identity>, String> {
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

/// The subject of a certificate, RFC 4514 (`CN=…,O=…`), or a placeholder.
fn subject(der: &CertificateDer<'_>) -> String {
    names(der).map(|(s, _)| s).unwrap_or_else(|| "an unreadable certificate".into())
}

/// Subject and issuer of a certificate.
fn names(der: &CertificateDer<'_>) -> Option<(String, String)> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    Some((cert.tbs_certificate.subject.to_string(), cert.tbs_certificate.issuer.to_string()))
}

fn client_config(
    policy: &Policy,
    provider: &Arc<CryptoProvider>,
    verifier: Arc<Verifier>,
    identity: Option<&Identity>,
) -> Result<ClientConfig, String> {
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = policy
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::V1_3 => &rustls::version::TLS13,
            _ => &rustls::version::TLS12,
        })
        .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS settings: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| format!("the client certificate and key do not fit together ({e}); give the key of that certificate"))?,
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = policy.sni;
    if policy.direct {
        // direct TLS requires ALPN "postgresql" (PostgreSQL 17)
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Ok(config)
}

/// Checks the server's certificate at one [`Verify`] level, and says in words what is wrong.
#[derive(Debug)]
struct Verifier {
    level: Verify,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
    roots: String,
    problem: Arc<Mutex<Option<String>>>,
}

impl Verifier {
    fn new(
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
    use crate::pg::conninfo::split;

    fn resolve(conninfo: &str, bundle: bool) -> Result<Policy, String> {
        let files = DefaultFiles::default();
        policy(&split(conninfo).unwrap().tls, bundle, false, &files)
    }

    /// libpq's documented behaviour per mode (libpq-ssl "SSL Mode Descriptions"): what is
    /// tried first, what falls back, what is verified.
    #[test]
    fn each_sslmode_makes_the_attempts_libpq_makes() {
        use Attempt::*;
        use Verify::*;
        let cases: &[(&str, bool, SslMode, &[Attempt], Roots)] = &[
            ("host=db", false, SslMode::Prefer, &[TlsIfOffered(Nothing), Plain], Roots::Unneeded),
            ("host=db sslmode=disable", false, SslMode::Disable, &[Plain], Roots::Unneeded),
            (
                "host=db sslmode=allow",
                false,
                SslMode::Allow,
                &[Plain, Tls(Nothing)],
                Roots::Unneeded,
            ),
            (
                "host=db sslmode=prefer",
                false,
                SslMode::Prefer,
                &[TlsIfOffered(Nothing), Plain],
                Roots::Unneeded,
            ),
            ("host=db sslmode=require", false, SslMode::Require, &[Tls(Nothing)], Roots::Unneeded),
            // a root CA at hand makes require verify the chain, for compatibility
            ("host=db sslmode=require", true, SslMode::Require, &[Tls(Chain)], Roots::Bundle),
            ("host=db sslmode=verify-ca", true, SslMode::VerifyCa, &[Tls(Chain)], Roots::Bundle),
            (
                "host=db sslmode=verify-full",
                true,
                SslMode::VerifyFull,
                &[Tls(ChainAndHost)],
                Roots::Bundle,
            ),
            (
                "host=db sslmode=verify-full sslrootcert=/ca.pem",
                true,
                SslMode::VerifyFull,
                &[Tls(ChainAndHost)],
                Roots::File("/ca.pem".into()),
            ),
            // sslrootcert=system implies verify-full (libpq 16)
            (
                "host=db sslrootcert=system",
                false,
                SslMode::VerifyFull,
                &[Tls(ChainAndHost)],
                Roots::System,
            ),
            // a CA bundle from the spec does the same when the string names no mode
            ("host=db", true, SslMode::VerifyFull, &[Tls(ChainAndHost)], Roots::Bundle),
            // prefer never verifies, whatever is at hand
            (
                "host=db sslmode=prefer",
                true,
                SslMode::Prefer,
                &[TlsIfOffered(Nothing), Plain],
                Roots::Unneeded,
            ),
        ];
        for (conninfo, bundle, mode, attempts, roots) in cases {
            let p = resolve(conninfo, *bundle).unwrap_or_else(|e| panic!("{conninfo}: {e}"));
            assert_eq!(p.mode, *mode, "{conninfo} bundle={bundle}");
            assert_eq!(p.attempts, *attempts, "{conninfo} bundle={bundle}");
            assert_eq!(p.roots, *roots, "{conninfo} bundle={bundle}");
        }
    }

    #[test]
    fn inconsistent_parameters_are_refused_with_the_fix() {
        let cases = [
            ("sslrootcert=system sslmode=require", "use sslmode=verify-full"),
            ("sslnegotiation=direct sslmode=prefer", "may not be used with sslnegotiation=direct"),
            ("sslnegotiation=direct", "weak sslmode \"prefer\""),
            ("sslmode=verify-ca", "no root CA is given"),
            ("sslmode=verify-full", "sslrootcert=system for a public CA"),
            ("sslcert=/c.pem", "sslkey is not"),
            ("sslkey=/k.pem", "sslcert is not"),
            (
                "ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
                "above ssl_max_protocol_version",
            ),
            ("ssl_max_protocol_version=TLSv1.1", "below TLSv1.2"),
        ];
        for (conninfo, want) in cases {
            let e = resolve(conninfo, false).unwrap_err();
            assert!(e.contains(want), "{conninfo}: {e}");
        }
    }

    #[test]
    fn client_certificates_and_versions_resolve_like_libpq() {
        let files = DefaultFiles {
            root_cert: Some("/home/u/.postgresql/root.crt".into()),
            client_cert: Some("/home/u/.postgresql/postgresql.crt".into()),
            client_key: Some("/home/u/.postgresql/postgresql.key".into()),
        };
        let p = |s: &str, identity: bool| policy(&split(s).unwrap().tls, false, identity, &files).unwrap();
        // the default root.crt makes require verify the chain, and verify-ca possible
        assert_eq!(p("sslmode=require", false).attempts, [Attempt::Tls(Verify::Chain)]);
        assert_eq!(
            p("sslmode=verify-ca", false).roots,
            Roots::File("/home/u/.postgresql/root.crt".into())
        );
        assert_eq!(
            p("sslmode=require", false).client,
            ClientCert::Files {
                cert: "/home/u/.postgresql/postgresql.crt".into(),
                key: "/home/u/.postgresql/postgresql.key".into()
            }
        );
        assert_eq!(p("sslmode=require", true).client, ClientCert::Staged);
        assert_eq!(p("sslmode=require sslcertmode=disable", true).client, ClientCert::None);
        assert_eq!(
            p("sslcert=/c.pem", false).client,
            ClientCert::Files {
                cert: "/c.pem".into(),
                key: "/home/u/.postgresql/postgresql.key".into()
            }
        );
        assert_eq!(p("", false).versions, [TlsVersion::V1_2, TlsVersion::V1_3]);
        assert_eq!(p("ssl_min_protocol_version=TLSv1.3", false).versions, [TlsVersion::V1_3]);
        assert!(!p("sslsni=0", false).sni);
    }

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(presented_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(presented_name("db.example"), "db.example");
    }
}
