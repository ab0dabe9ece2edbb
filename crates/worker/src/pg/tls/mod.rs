//! TLS to PostgreSQL with libpq's meanings, on rustls (aws-lc-rs) through
//! `tokio-postgres-rustls`.
//!
//! - [`mod@policy`] turns the connection string's TLS parameters ([`TlsParams`]) and the job's
//!   [`TlsMaterial`] into the connection attempts libpq would make — what is tried first, what
//!   falls back, what is verified (pure, table-tested);
//! - [`material`] reads the root CAs and the client certificate and key (I/O: the files the
//!   string names, the platform's trust store for `sslrootcert=system`);
//! - [`verify`] checks the server's certificate and turns a refused connection into one line
//!   with its fix: the CA that was expected and the issuer that came, the host and the names
//!   in the certificate, the expiry, a client certificate refused, TLS required but not
//!   allowed, or not offered but required (pure);
//! - here, the [`Connector`] ties them together and carries the attempts out (I/O: connects).
//!
//! Key material is never printed.

mod material;
mod policy;
mod verify;

use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use tokio_postgres::config::{SslMode as WireMode, SslNegotiation};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::EngineError;
use super::conninfo::{TlsParams, TlsVersion};
use datadump_contract::{CertificateCheck, ConnectionReport};
use material::{Identity, load_identity, load_roots};
use policy::{Attempt, ClientCert, DefaultFiles, Policy, Verify, policy};
use verify::{Verifier, explain};

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

/// Spawns the connection task of a successful connect.
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

/// The rustls client configuration of one verification level: the policy's TLS versions,
/// the verifier, the client certificate when one is sent, SNI, and ALPN for direct TLS.
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
