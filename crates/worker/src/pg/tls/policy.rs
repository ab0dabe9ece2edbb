//! The TLS policy: what libpq would do with the connection string's TLS parameters
//! ([`TlsParams`]) and the job's material — the mode in force, the connection attempts in
//! order (what is tried first, what falls back, what is verified), the root CAs, the client
//! certificate, SNI and the TLS versions. Pure and table-tested, except
//! [`DefaultFiles::find`], which looks for libpq's default files (I/O).

use std::path::PathBuf;

use crate::pg::conninfo::{SslMode, TlsParams, TlsVersion};

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
}
