//! TLS to PostgreSQL the way libpq does it, against real PostgreSQL servers: one that accepts
//! only TLS (`hostssl`, `hostnossl … reject`), one with TLS off, one whose certificate has
//! expired and one that demands client certificates (`clientcert=verify-full`). Every case runs
//! through the engine and through libpq itself (`psql`), which is the reference: the same
//! outcome (connected or refused, encrypted or not), and our one-line message when refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datadump::contract::{CertificateCheck, ConnectionReport};
use datadump::worker::pg::{PgOptions, TlsMaterial, export};
use datadump::worker::sink::{DirSink, Progress};

use crate::support::pki::{Ca, Pem, Validity};
use crate::support::postgres::{Postgres, ServerTls, USER};

const DB: &str = "catalog";

/// What a connection attempt should end in.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Connected over TLS, with this much of the server's certificate verified.
    Tls(CertificateCheck),
    /// Connected without TLS.
    Plain,
    /// Refused; our message contains this.
    Refused(&'static str),
}

struct Servers {
    /// Accepts only TLS; certificate for `localhost` from `ca`.
    tls_only: Postgres,
    /// TLS off.
    plain: Postgres,
    /// TLS with an expired certificate from `ca`.
    expired: Postgres,
    /// TLS with client certificates from `ca` required.
    client_certs: Postgres,
    ca: Ca,
    other_ca: Ca,
    files: tempfile::TempDir,
}

impl Servers {
    fn start() -> Servers {
        let ca = Ca::new("Test CA");
        let other_ca = Ca::new("Other CA");
        let tls = |server: Pem, client_ca: Option<String>| ServerTls {
            server,
            client_ca,
            also_plain: false,
        };
        let with_table = |pg: Postgres| {
            pg.create_database(DB);
            pg.psql(
                DB,
                "CREATE TABLE image AS SELECT g AS id, 'row ' || g AS title FROM generate_series(1, 500) g",
            );
            pg
        };
        let servers = Servers {
            tls_only: with_table(Postgres::start_tls(&tls(ca.server(&["localhost"], Validity::Current), None))),
            plain: with_table(Postgres::start()),
            expired: with_table(Postgres::start_tls(&tls(ca.server(&["localhost"], Validity::Expired), None))),
            client_certs: with_table(Postgres::start_tls(&tls(
                ca.server(&["localhost"], Validity::Current),
                Some(ca.cert_pem()),
            ))),
            files: tempfile::tempdir().unwrap(),
            ca,
            other_ca,
        };
        servers.write("ca.pem", &servers.ca.cert_pem());
        servers.write("other-ca.pem", &servers.other_ca.cert_pem());
        let good = servers.ca.client(USER);
        servers.write("client.crt", &good.cert);
        servers.write("client.key", &good.key);
        let foreign = servers.other_ca.client(USER);
        servers.write("foreign.crt", &foreign.cert);
        servers.write("foreign.key", &foreign.key);
        servers
    }

    fn write(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// `extra` with `{dir}` replaced by the folder of the CA and client files.
    fn params(&self, extra: &str) -> String {
        extra.replace("{dir}", &self.files.path().display().to_string())
    }
}

/// Connects with libpq (`psql`, HOME emptied so no `~/.postgresql` file counts): whether the
/// session is encrypted, or libpq's error.
fn libpq(pg: &Postgres, conninfo: &str, home: &Path) -> Result<bool, String> {
    let out = std::process::Command::new(pg.bin().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-d",
            conninfo,
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .env("HOME", home)
        .env_remove("PGSSLMODE")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "t")
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Exports `image` with the engine: how it connected, or the error's one line.
async fn ours(conninfo: &str, material: &TlsMaterial) -> Result<ConnectionReport, String> {
    let dir = tempfile::tempdir().unwrap();
    let progress = Arc::new(Progress::default());
    let sink = Arc::new(DirSink::new(dir.path(), "image", progress.clone()).unwrap());
    let opts = PgOptions {
        tls: material.clone(),
        ..PgOptions::default()
    };
    match export(
        conninfo,
        "SELECT * FROM {media_type}",
        "image",
        Some("image"),
        &opts,
        sink,
        progress,
    )
    .await
    {
        Ok(summary) => {
            assert_eq!(summary.rows, 500);
            Ok(summary.connection.expect("a connection report"))
        }
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_does_what_libpq_does() {
    let s = Servers::start();
    let home = tempfile::tempdir().unwrap();
    use CertificateCheck::*;
    use Want::*;
    let cases: &[(&str, &Postgres, &str, &str, Want)] = &[
        // a server that accepts only TLS
        (
            "tls-only",
            &s.tls_only,
            "localhost",
            "sslmode=disable",
            Refused("refused an unencrypted connection"),
        ),
        ("tls-only", &s.tls_only, "localhost", "sslmode=allow", Tls(None)),
        ("tls-only", &s.tls_only, "localhost", "sslmode=prefer", Tls(None)),
        ("tls-only", &s.tls_only, "localhost", "", Tls(None)),
        ("tls-only", &s.tls_only, "localhost", "sslmode=require", Tls(None)),
        (
            "tls-only",
            &s.tls_only,
            "localhost",
            "sslmode=verify-ca sslrootcert={dir}/ca.pem",
            Tls(Ca),
        ),
        (
            "tls-only",
            &s.tls_only,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem",
            Tls(CaAndHostName),
        ),
        // the wrong CA: refused, naming the issuer that came and the CA expected
        (
            "tls-only",
            &s.tls_only,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/other-ca.pem",
            Refused("issued by \"CN=Test CA\", which is not among the root CAs \"CN=Other CA\""),
        ),
        // require with a root CA verifies the chain, as libpq does for compatibility
        (
            "tls-only",
            &s.tls_only,
            "localhost",
            "sslmode=require sslrootcert={dir}/other-ca.pem",
            Refused("not among the root CAs"),
        ),
        // a certificate for another host name: verify-ca passes, verify-full fails
        (
            "tls-only",
            &s.tls_only,
            "127.0.0.1",
            "sslmode=verify-ca sslrootcert={dir}/ca.pem",
            Tls(Ca),
        ),
        (
            "tls-only",
            &s.tls_only,
            "127.0.0.1",
            "sslmode=verify-full sslrootcert={dir}/ca.pem",
            Refused("is for \"localhost\" but the connection is to \"127.0.0.1\""),
        ),
        // a server with TLS off
        ("plain", &s.plain, "localhost", "sslmode=disable", Plain),
        ("plain", &s.plain, "localhost", "sslmode=allow", Plain),
        ("plain", &s.plain, "localhost", "sslmode=prefer", Plain),
        (
            "plain",
            &s.plain,
            "localhost",
            "sslmode=verify-ca sslrootcert={dir}/ca.pem",
            Refused("does not offer TLS, but sslmode=verify-ca requires it"),
        ),
        (
            "plain",
            &s.plain,
            "localhost",
            "sslmode=require",
            Refused("does not offer TLS, but sslmode=require requires it"),
        ),
        (
            "plain",
            &s.plain,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem",
            Refused("does not offer TLS, but sslmode=verify-full requires it"),
        ),
        // an expired certificate: only verification notices
        ("expired", &s.expired, "localhost", "sslmode=require", Tls(None)),
        (
            "expired",
            &s.expired,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem",
            Refused("expired at 2021-01-01T00:00:00Z"),
        ),
        // clientcert=verify-full: without a certificate, with one from the server's CA, with a foreign one
        (
            "client-certs",
            &s.client_certs,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem",
            Refused("requires a client certificate and none was given"),
        ),
        (
            "client-certs",
            &s.client_certs,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem sslcert={dir}/client.crt sslkey={dir}/client.key",
            Tls(CaAndHostName),
        ),
        (
            "client-certs",
            &s.client_certs,
            "localhost",
            "sslmode=verify-full sslrootcert={dir}/ca.pem sslcert={dir}/foreign.crt sslkey={dir}/foreign.key",
            Refused("the server refused the client certificate"),
        ),
    ];
    let mut failures = Vec::new();
    for (server, pg, host, extra, want) in cases {
        let conninfo = pg.connection_string_to(host, DB, &s.params(extra));
        let reference = libpq(pg, &conninfo, home.path());
        let got = ours(&conninfo, &TlsMaterial::default()).await;
        let case = format!("{server} host={host} {extra}");
        eprintln!("{case}: ours {got:?} / libpq {reference:?}");
        let agrees = match (want, &got, &reference) {
            (Tls(check), Ok(r), Ok(true)) => r.tls && r.server_certificate == *check && r.tls_version.is_some(),
            (Plain, Ok(r), Ok(false)) => !r.tls && r.server_certificate == None,
            (Refused(text), Err(e), Err(_)) => e.contains(text) && !e.contains('\n') && !e.contains(pg.password()),
            _ => false,
        };
        if !agrees {
            failures.push(format!("{case}: want {want:?}, ours {got:?}, libpq {reference:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_ca_bundle_and_client_identity_stand_in_for_files() {
    let s = Servers::start();
    let client = s.ca.client(USER);
    // a CA bundle with the right CA among others, as RDS's global-bundle.pem is
    let bundle = format!("{}{}", s.other_ca.cert_pem(), s.ca.cert_pem());
    let material = TlsMaterial {
        ca_bundle: Some(bundle),
        client_identity: Some(format!("{}{}", client.cert, client.key)),
    };
    // no sslmode: the bundle makes it verify-full
    let conninfo = s.client_certs.connection_string_to("localhost", DB, "");
    let report = ours(&conninfo, &material).await.unwrap();
    assert_eq!(report.sslmode, "verify-full");
    assert!(report.tls && report.client_certificate, "{report:?}");
    assert_eq!(report.server_certificate, CertificateCheck::CaAndHostName);
    assert!(report.summary().starts_with("TLSv1."), "{}", report.summary());

    // a bundle without the server's CA names what it holds
    let wrong = TlsMaterial {
        ca_bundle: Some(s.other_ca.cert_pem()),
        ..material.clone()
    };
    let e = ours(&conninfo, &wrong).await.unwrap_err();
    assert!(
        e.contains("\"CN=Other CA\" (the CA bundle (spec.database.tls.caBundle))") && e.contains(&s.ca.subject()),
        "{e}"
    );
    // a key readable by others is refused, as libpq does
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.path("client.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ours(
        &s.client_certs.connection_string_to(
            "localhost",
            DB,
            &s.params("sslrootcert={dir}/ca.pem sslcert={dir}/client.crt sslkey={dir}/client.key"),
        ),
        &TlsMaterial::default(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("has group or world access") && e.contains("chmod 600"), "{e}");
    assert!(!e.contains("PRIVATE KEY") && !e.contains(client.key.lines().nth(1).unwrap()), "{e}");
}

/// `sslnegotiation=direct` (PostgreSQL 17) against PostgreSQL 15, which has no direct TLS:
/// refused in one line that names the parameter to leave out, without hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_negotiation_against_an_older_server_fails_in_one_line() {
    let s = Servers::start();
    let extra = s.params("sslmode=verify-full sslrootcert={dir}/ca.pem sslnegotiation=direct connect_timeout=20");
    let conninfo = s.tls_only.connection_string_to("localhost", DB, &extra);
    let e = tokio::time::timeout(std::time::Duration::from_secs(60), ours(&conninfo, &TlsMaterial::default()))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        e.contains("sslnegotiation") && !e.contains('\n') && !e.contains(s.tls_only.password()),
        "{e}"
    );
}
