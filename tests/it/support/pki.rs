//! A small PKI for TLS tests, made with rcgen: CAs, server certificates for chosen host names
//! and validity, client certificates for a user name. PEM strings, written where a test wants
//! them.
//!
//! ```ignore
//! let ca = Ca::new("Test CA");
//! let server = ca.server(&["localhost"], Validity::Current);   // (cert PEM, key PEM)
//! let client = ca.client("datadump");
//! ```

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd};

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From 2020 to 2100.
    Current,
    /// 2020 to 2021: expired.
    Expired,
}

/// A certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    name: String,
}

impl Ca {
    /// A self-signed CA whose subject is `CN=<name>`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca {
            issuer,
            name: name.to_owned(),
        }
    }

    /// The CA's subject as RFC 4514 writes it (`CN=…`).
    pub fn subject(&self) -> String {
        format!("CN={}", self.name)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, names: &[&str], cn: &str, validity: Validity) -> Pem {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let (from, to) = match validity {
            Validity::Current => (date_time_ymd(2020, 1, 1), date_time_ymd(2100, 1, 1)),
            Validity::Expired => (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1)),
        };
        params.not_before = from;
        params.not_after = to;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), subject `CN=<first name>`.
    pub fn server(&self, names: &[&str], validity: Validity) -> Pem {
        self.issue(names, names.first().copied().unwrap_or("server"), validity)
    }

    /// A client certificate whose CN is `user` (what `clientcert=verify-full` compares).
    pub fn client(&self, user: &str) -> Pem {
        self.issue(&[], user, Validity::Current)
    }
}
