//! libpq connection strings, split in two: the TLS parameters this engine implements itself
//! ([`TlsParams`]) and the rest, handed to `tokio_postgres::Config` (whose own parser knows
//! only `sslmode=disable|prefer|require` and refuses every other TLS parameter). Both of
//! libpq's forms are read: `key=value` pairs (values optionally single-quoted, `\` escaping)
//! and `postgresql://` URIs (parameters in the query string, percent-encoded). Pure, no I/O.

use std::fmt;

/// libpq's `sslmode`: whether TLS is used and what of the server's certificate is verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Only an unencrypted connection.
    Disable,
    /// Unencrypted first; TLS (unverified) only if the server refuses that.
    Allow,
    /// TLS (unverified) when the server offers it, else unencrypted. libpq's default.
    Prefer,
    /// TLS, the certificate unverified (verified as `verify-ca` when a root CA is given).
    Require,
    /// TLS, the certificate chain verified against the root CAs.
    VerifyCa,
    /// TLS, the chain verified and the certificate issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The name in a connection string.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS protocol versions `ssl_min_protocol_version` / `ssl_max_protocol_version` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0 (refused: the TLS stack has only 1.2 and 1.3).
    V1_0,
    /// TLS 1.1 (refused likewise).
    V1_1,
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

impl TlsVersion {
    fn parse(s: &str) -> Option<TlsVersion> {
        Some(match s {
            "TLSv1" => TlsVersion::V1_0,
            "TLSv1.1" => TlsVersion::V1_1,
            "TLSv1.2" => TlsVersion::V1_2,
            "TLSv1.3" => TlsVersion::V1_3,
            _ => return None,
        })
    }
}

/// The TLS parameters of a connection string, as written (nothing resolved yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode` (also set by the deprecated `requiressl=1`).
    pub sslmode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of root CAs, or `system`.
    pub sslrootcert: Option<String>,
    /// `sslcert`: the client certificate (chain), PEM.
    pub sslcert: Option<String>,
    /// `sslkey`: the client certificate's private key, PEM.
    pub sslkey: Option<String>,
    /// `sslnegotiation=direct` (PostgreSQL 17): TLS from the first byte, with ALPN.
    pub direct: bool,
    /// `sslsni` (default on): send the host name in the TLS handshake.
    pub sni: Option<bool>,
    /// `sslcertmode=disable`: never send a client certificate.
    pub no_client_cert: bool,
    /// `ssl_min_protocol_version`.
    pub min_version: Option<TlsVersion>,
    /// `ssl_max_protocol_version`.
    pub max_version: Option<TlsVersion>,
}

/// A connection string without its TLS parameters, and those parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// What `tokio_postgres::Config` parses.
    pub rest: String,
    /// The TLS parameters.
    pub tls: TlsParams,
}

/// Splits a libpq connection string (either form). The error names the parameter and the fix,
/// never the string itself (it holds the password).
pub fn split(conninfo: &str) -> Result<Split, String> {
    let s = conninfo.trim();
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        split_uri(s)
    } else {
        split_pairs(s)
    }
}

/// Applies one parameter to `tls`; `Ok(false)` when it is not a TLS parameter of ours.
fn take(tls: &mut TlsParams, key: &str, value: &str) -> Result<bool, String> {
    let invalid = |allowed: &str| format!("invalid value for {key}: use one of {allowed}");
    match key {
        "sslmode" => {
            let mode = SslMode::parse(value).ok_or_else(|| invalid("disable, allow, prefer, require, verify-ca, verify-full"))?;
            tls.sslmode = Some(mode);
        }
        "requiressl" => match value {
            "1" => tls.sslmode = Some(tls.sslmode.map_or(SslMode::Require, |m| m.max(SslMode::Require))),
            "0" => {}
            _ => return Err(invalid("0, 1 (or, better, sslmode)")),
        },
        "sslrootcert" => tls.sslrootcert = Some(value.to_owned()),
        "sslcert" => tls.sslcert = Some(value.to_owned()),
        "sslkey" => tls.sslkey = Some(value.to_owned()),
        "sslnegotiation" => {
            tls.direct = match value {
                "postgres" => false,
                "direct" => true,
                _ => return Err(invalid("postgres, direct")),
            }
        }
        "sslsni" => {
            tls.sni = Some(match value {
                "1" => true,
                "0" => false,
                _ => return Err(invalid("0, 1")),
            })
        }
        "sslcertmode" => match value {
            "disable" => tls.no_client_cert = true,
            "allow" => tls.no_client_cert = false,
            "require" => {
                return Err("sslcertmode=require is not supported; use sslcertmode=allow (the default) with sslcert and sslkey".into());
            }
            _ => return Err(invalid("disable, allow")),
        },
        "ssl_min_protocol_version" | "ssl_max_protocol_version" => {
            let v = TlsVersion::parse(value).ok_or_else(|| invalid("TLSv1.2, TLSv1.3"))?;
            if key == "ssl_min_protocol_version" {
                tls.min_version = Some(v);
            } else {
                tls.max_version = Some(v);
            }
        }
        // libpq built without GSSAPI behaves the same for these two
        "gssencmode" => match value {
            "disable" | "prefer" => {}
            "require" => return Err("gssencmode=require is not supported (no GSSAPI); use sslmode=verify-full for encryption".into()),
            _ => return Err(invalid("disable, prefer")),
        },
        "sslcompression" => {}
        "sslpassword" => {
            return Err("sslpassword is not supported: give an unencrypted key in sslkey (openssl pkey -in key.pem -out key.plain.pem), kept secret".into());
        }
        "sslcrl" | "sslcrldir" => {
            return Err(format!(
                "{key} is not supported; leave it out (the server's certificate is still verified against sslrootcert)"
            ));
        }
        "sslkeylogfile" => return Err("sslkeylogfile is not supported: it would write the session keys to disk".into()),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `key=value …`: libpq's tokenizer (spaces around `=` allowed; a value is single-quoted with
/// `\'` and `\\` escapes, or runs to the next space with `\` escaping one character).
fn split_pairs(s: &str) -> Result<Split, String> {
    let mut tls = TlsParams::default();
    let mut rest = Vec::new();
    let mut chars = s.chars().peekable();
    for n in 1.. {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // not named: a stray word may be the password
            return Err(format!("missing \"=\" after parameter {n} of the connection string"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of {key} in the connection string")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if !take(&mut tls, &key, &value)? {
            rest.push(format!("{key}='{}'", value.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    Ok(Split { rest: rest.join(" "), tls })
}

/// `postgresql://…?k=v&…`: the TLS parameters are taken out of the query string; everything
/// else stays as written.
fn split_uri(s: &str) -> Result<Split, String> {
    let mut tls = TlsParams::default();
    let Some((base, query)) = s.split_once('?') else {
        return Ok(Split { rest: s.to_owned(), tls });
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k)?;
        let value = percent_decode(v)?;
        if !take(&mut tls, &key, &value)? {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Split { rest, tls })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or("invalid percent-encoding in the connection URI")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the connection URI is not UTF-8 after percent-decoding".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms() {
        let cases: &[(&str, &str, TlsParams)] = &[
            (
                "host=db port=5432 sslmode=verify-full sslrootcert=/etc/rds/global-bundle.pem password='a b\\'c'",
                "host='db' port='5432' password='a b\\'c'",
                TlsParams {
                    sslmode: Some(SslMode::VerifyFull),
                    sslrootcert: Some("/etc/rds/global-bundle.pem".into()),
                    ..Default::default()
                },
            ),
            (
                "host = db sslmode = 'verify-ca'  sslcert=/c.pem sslkey=/k.pem sslsni=0 sslnegotiation=direct",
                "host='db'",
                TlsParams {
                    sslmode: Some(SslMode::VerifyCa),
                    sslcert: Some("/c.pem".into()),
                    sslkey: Some("/k.pem".into()),
                    sni: Some(false),
                    direct: true,
                    ..Default::default()
                },
            ),
            (
                "postgresql://u:p%40ss@db:5432/catalog?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
                "postgresql://u:p%40ss@db:5432/catalog?application_name=x",
                TlsParams {
                    sslmode: Some(SslMode::VerifyFull),
                    sslrootcert: Some("/tmp/ca.pem".into()),
                    ..Default::default()
                },
            ),
            (
                "postgres://db/catalog?sslrootcert=system",
                "postgres://db/catalog",
                TlsParams {
                    sslrootcert: Some("system".into()),
                    ..Default::default()
                },
            ),
            ("postgresql://db/catalog", "postgresql://db/catalog", TlsParams::default()),
            (
                "dbname=x requiressl=1 gssencmode=prefer sslcompression=0 ssl_min_protocol_version=TLSv1.3",
                "dbname='x'",
                TlsParams {
                    sslmode: Some(SslMode::Require),
                    min_version: Some(TlsVersion::V1_3),
                    ..Default::default()
                },
            ),
            (
                "dbname=x sslcertmode=disable",
                "dbname='x'",
                TlsParams {
                    no_client_cert: true,
                    ..Default::default()
                },
            ),
        ];
        for (input, rest, tls) in cases {
            let got = split(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got.rest, rest, "{input}");
            assert_eq!(&got.tls, tls, "{input}");
            assert!(got.rest.parse::<tokio_postgres::Config>().is_ok(), "{input} → {}", got.rest);
        }
    }

    #[test]
    fn the_rest_means_what_it_meant() {
        let got = split("host=db user=me password='x\\\\y\\'z w' dbname=c sslmode=disable").unwrap();
        let config: tokio_postgres::Config = got.rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"x\\y'z w"[..]));
        assert_eq!(config.get_user(), Some("me"));
        assert_eq!(config.get_dbname(), Some("c"));
    }

    #[test]
    fn bad_values_name_the_parameter_and_never_the_string() {
        let cases = [
            ("password=s3cret sslmode=verify", "invalid value for sslmode"),
            ("password=s3cret sslnegotiation=fast", "invalid value for sslnegotiation"),
            ("password=s3cret sslpassword=k", "sslpassword is not supported"),
            ("password=s3cret sslcrl=/crl.pem", "sslcrl is not supported"),
            ("password=s3cret gssencmode=require", "gssencmode=require is not supported"),
            (
                "password=s3cret ssl_max_protocol_version=SSLv3",
                "invalid value for ssl_max_protocol_version",
            ),
            ("password='s3cret", "unterminated quoted value of password"),
            ("password s3cret", "missing \"=\""),
            ("postgresql://u:s3cret@db/c?sslmode=%zz", "invalid percent-encoding"),
        ];
        for (input, want) in cases {
            let e = split(input).unwrap_err();
            assert!(e.contains(want), "{input}: {e}");
            assert!(!e.contains("s3cret"), "{input}: {e}");
        }
    }
}
