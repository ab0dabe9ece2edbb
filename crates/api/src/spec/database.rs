//! The database sub-spec (`spec.database`): where the worker's connection string comes from,
//! and the TLS material (CA bundle, client certificate) for its connection, with the Secret
//! and ConfigMap references they use. Pure data, no I/O.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SECRET_KEY_PATTERN, SECRET_NAME_PATTERN, SSM_PARAMETER_PATTERN};

/// Where the connection string comes from. Exactly one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.connectionSecretRef) != has(self.ssmParameterName)").message("spec.database needs exactly one of connectionSecretRef or ssmParameterName"))]
pub struct DatabaseSource {
    /// A key in a Secret of this namespace holding the connection string: for the `postgres`
    /// engine a libpq string or URI (`host=db port=5432 dbname=openledger user=… password=…` or
    /// `postgresql://user:…@db:5432/openledger`), for `odbc2parquet` an ODBC string
    /// (`Driver={PostgreSQL Unicode};Server=db;…;Pwd=…;`). The controller stages it as an SSM SecureString that only the worker reads; it never
    /// appears in user data, status, Events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret_ref: Option<SecretKeyRef>,

    /// The name of an SSM SecureString parameter holding the connection string, which the
    /// worker reads itself with its instance role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SSM_PARAMETER_PATTERN), length(max = 2048))]
    pub ssm_parameter_name: Option<String>,

    /// TLS material for the worker's connection, taken from this namespace and delivered to
    /// the worker (which runs on EC2, where no file of the cluster exists): the CA certificates
    /// the server is verified against (for RDS, its `global-bundle.pem`) and a client
    /// certificate. Files the connection string names (`sslrootcert`, `sslcert`, `sslkey`) take
    /// precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DatabaseTls>,
}

/// TLS material for the worker's connection to the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTls {
    /// PEM CA certificates the server's certificate is verified against, e.g. RDS's
    /// `global-bundle.pem`. The `postgres` engine verifies against them when the connection
    /// string names no `sslrootcert`; a connection string without `sslmode` then defaults to
    /// `verify-full` (the certificate must chain to the bundle and name the host). The
    /// controller reads the key at each launch and passes it inside the job object in S3 (it is
    /// not a secret; it never goes into user data). Set exactly one of configMapKeyRef or
    /// secretKeyRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleSource>,

    /// A `kubernetes.io/tls` Secret of this namespace whose `tls.crt` (the client certificate
    /// chain) and `tls.key` (its private key), both PEM, the `postgres` engine presents when the
    /// server asks for a client certificate and the connection string names no
    /// `sslcert`/`sslkey`. The controller stages `tls.crt` followed by `tls.key` as an SSM
    /// SecureString next to the connection string's, deleted with it; the key never appears in
    /// user data, the job, status, Events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<SecretRef>,
}

impl DatabaseTls {
    /// Where the CA bundle comes from, when one is configured with exactly one source.
    pub fn ca_bundle(&self) -> Option<CaBundleRef<'_>> {
        self.ca_bundle.as_ref().and_then(CaBundleSource::source)
    }
}

/// Where a CA bundle comes from. Exactly one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapKeyRef) != has(self.secretKeyRef)").message("spec.database.tls.caBundle needs exactly one of configMapKeyRef or secretKeyRef, e.g. configMapKeyRef: {name: rds-ca, key: global-bundle.pem}"))]
pub struct CaBundleSource {
    /// A key in a ConfigMap of this namespace holding the PEM bundle, e.g.
    /// `{name: rds-ca, key: global-bundle.pem}` after
    /// `kubectl create configmap rds-ca --from-file=global-bundle.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,

    /// A key in a Secret of this namespace holding the PEM bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// The one configured source of a [`CaBundleSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaBundleRef<'a> {
    /// A ConfigMap key.
    ConfigMap(&'a ConfigMapKeyRef),
    /// A Secret key.
    Secret(&'a SecretKeyRef),
}

impl CaBundleSource {
    /// The one configured source, or `None` when zero or two are set (a validation error).
    pub fn source(&self) -> Option<CaBundleRef<'_>> {
        match (&self.config_map_key_ref, &self.secret_key_ref) {
            (Some(c), None) => Some(CaBundleRef::ConfigMap(c)),
            (None, Some(s)) => Some(CaBundleRef::Secret(s)),
            _ => None,
        }
    }
}

impl std::fmt::Display for CaBundleRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaBundleRef::ConfigMap(c) => write!(f, "ConfigMap {} key {}", c.name, c.key),
            CaBundleRef::Secret(s) => write!(f, "Secret {} key {}", s.name, s.key),
        }
    }
}

/// The resolved credential source of a [`DatabaseSource`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// A Secret key the controller reads and stages in SSM.
    Secret(&'a SecretKeyRef),
    /// An SSM parameter the worker reads itself.
    Ssm(&'a str),
}

impl DatabaseSource {
    /// The one configured source, or `None` when zero or two are set (a validation error).
    pub fn credentials(&self) -> Option<Credentials<'_>> {
        match (&self.connection_secret_ref, &self.ssm_parameter_name) {
            (Some(r), None) => Some(Credentials::Secret(r)),
            (None, Some(p)) => Some(Credentials::Ssm(p)),
            _ => None,
        }
    }

    /// Where the CA bundle comes from (`tls.caBundle`), if anywhere.
    pub fn ca_bundle(&self) -> Option<CaBundleRef<'_>> {
        self.tls.as_ref().and_then(DatabaseTls::ca_bundle)
    }

    /// The client certificate's Secret (`tls.clientCertificateSecretRef`), if any.
    pub fn client_certificate(&self) -> Option<&SecretRef> {
        self.tls.as_ref().and_then(|t| t.client_certificate_secret_ref.as_ref())
    }
}

/// A key in a Secret of the DataDump's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// The key inside the Secret.
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

/// A key in a ConfigMap of the DataDump's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// The key inside the ConfigMap.
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret of the DataDump's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
}

/// The key of a `kubernetes.io/tls` Secret holding the certificate chain.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The key of a `kubernetes.io/tls` Secret holding the private key.
pub const TLS_KEY_KEY: &str = "tls.key";
