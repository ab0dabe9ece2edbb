//! TLS to PostgreSQL with libpq's meanings: the `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslnegotiation` and `sslsni` parameters of a libpq connection string, mapped onto rustls.

/// TLS material that comes with the job rather than from files named in the connection string
/// (the worker on EC2 has none of the cluster's files).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    /// PEM CA certificates (e.g. RDS's `global-bundle.pem`): the roots the server's certificate
    /// is verified against when the connection string names no `sslrootcert`. Not a secret.
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
