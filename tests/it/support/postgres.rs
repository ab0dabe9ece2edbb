//! A real PostgreSQL server per test: `initdb` in a temp dir, `pg_ctl start` on a free loopback
//! port (socket in the same dir), stopped and removed on drop.
//!
//! ```ignore
//! let pg = Postgres::start();                 // ~1 s
//! pg.create_database("catalog");
//! pg.psql("catalog", "CREATE TABLE image (id int)");
//! let conn = pg.odbc_connection_string("catalog");  // password login over TCP as `datadump`
//! ```
//!
//! TCP logins need a password (scram-sha-256); [`Postgres::psql`] uses the socket as the
//! `datadump` role, which owns every database made by [`Postgres::create_database`]. The
//! password is random and holds `;`, braces and quotes, so it exercises connection-string
//! quoting. Binaries come from `$PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
//! `PATH`. initdb refuses to run as root, so as root the server runs as the `postgres` user
//! (via `runuser`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::net::free_port;
use super::pki::Pem;

/// TLS for a test server: its certificate, and optionally a CA whose client certificates it
/// demands (`clientcert=verify-full`: signed by that CA, CN = the user name).
pub struct ServerTls {
    /// The server's certificate and key.
    pub server: Pem,
    /// The CA of client certificates; `Some` makes the server require one.
    pub client_ca: Option<String>,
    /// Accept unencrypted TCP logins too (benchmarks compare both on one server).
    pub also_plain: bool,
}

/// The password-authenticated role tests log in as.
pub const USER: &str = "datadump";

/// A running PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
    port: u16,
    password: String,
}

fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e} (install PostgreSQL: apt-get install -y postgresql)"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A password that needs braces in an ODBC connection string and quoting everywhere else.
fn random_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("Pw;{{x}}-'\"$(id)-{}{nanos}", std::process::id())
}

impl Postgres {
    /// Initialises and starts a server, with the `datadump` role and its password.
    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` and a `pg_hba.conf` that accepts only TLS
    /// logins over TCP (`hostssl`, and `hostnossl … reject`), unless [`ServerTls::also_plain`].
    pub fn start_tls(tls: &ServerTls) -> Postgres {
        Postgres::start_with(Some(tls))
    }

    fn start_with(tls: Option<&ServerTls>) -> Postgres {
        let bin = pg_bin();
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new().prefix("pg").tempdir().expect("temp dir");
        let password = random_password();
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if let Some(user) = run_as {
            check("chown", Command::new("chown").args(["-R", user]).arg(dir.path()).output());
        }
        let pg = Postgres {
            dir,
            bin,
            run_as,
            port: free_port(),
            password,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            Some(&pwfile),
        );
        std::fs::remove_file(&pwfile).unwrap();
        if let Some(tls) = tls {
            pg.configure_tls(tls);
        }
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c timezone=UTC -c fsync=off",
            pg.port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("server.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            None,
        );
        pg
    }

    /// Writes the certificate files into the data directory (owned by the server's user, the
    /// key mode 600 as PostgreSQL demands) and turns TLS on.
    fn configure_tls(&self, tls: &ServerTls) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        let mut files = vec![("server.crt", tls.server.cert.as_str()), ("server.key", tls.server.key.as_str())];
        if let Some(ca) = &tls.client_ca {
            files.push(("client-ca.crt", ca.as_str()));
        }
        for (name, body) in files {
            let path = data.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if let Some(user) = self.run_as {
                check("chown", Command::new("chown").arg(user).arg(&path).output());
            }
        }
        let mut conf = "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n".to_owned();
        let mut hostssl = "hostssl all all 127.0.0.1/32 scram-sha-256".to_owned();
        if tls.client_ca.is_some() {
            conf.push_str("ssl_ca_file = 'client-ca.crt'\n");
            hostssl.push_str(" clientcert=verify-full");
        }
        let mut pgconf = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut pgconf, conf.as_bytes()).unwrap();
        let plain = if tls.also_plain { "scram-sha-256" } else { "reject" };
        let hba = format!("local all all trust\n{hostssl}\nhostnossl all all 127.0.0.1/32 {plain}\n");
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str], pwfile: Option<&Path>) -> Output {
        let exe = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(self.dir.path());
        if let Some(p) = pwfile {
            cmd.arg(format!("--pwfile={}", p.display()));
        }
        check(tool, cmd.output())
    }

    /// The folder of the server's binaries (and `psql`, libpq's client).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `datadump` role's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Creates a database owned by `datadump`.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// An ODBC connection string for `db` with the PostgreSQL Unicode driver, logging in over
    /// TCP with the password. It sets no driver options (no cursor fetching).
    pub fn odbc_connection_string(&self, db: &str) -> String {
        format!(
            "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={};Database={db};Uid={USER};Pwd={{{}}};",
            self.port,
            self.password.replace('}', "}}")
        )
    }

    /// A libpq connection string for `db` (what the postgres engine takes), logging in over TCP
    /// with the password (quoted as libpq wants: single quotes, `\` before `'` and `\`).
    pub fn connection_string(&self, db: &str) -> String {
        self.connection_string_to("127.0.0.1", db, "")
    }

    /// [`Postgres::connection_string`] to `host` (e.g. `localhost`, which the test certificates
    /// name, or `127.0.0.1`, which they do not) with more parameters, e.g. `sslmode=verify-full`.
    pub fn connection_string_to(&self, host: &str, db: &str, extra: &str) -> String {
        let quoted = self.password.replace('\\', "\\\\").replace('\'', "\\'");
        let base = format!("host={host} port={} dbname={db} user={USER} password='{quoted}'", self.port);
        if extra.is_empty() { base } else { format!("{base} {extra}") }
    }

    /// Runs SQL in `db` through the socket; returns psql's unaligned, tuples-only output, or
    /// the error.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let psql = if self.bin.join("psql").exists() {
            self.bin.join("psql")
        } else {
            "psql".into()
        };
        let out = Command::new(psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", USER, "-d", db, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(sql.as_bytes())?;
                child.wait_with_output()
            })
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Like [`Postgres::try_psql`]; panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("psql failed: {e}\n{sql}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd.args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
    }
}
