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
        let quoted = self.password.replace('\\', "\\\\").replace('\'', "\\'");
        format!("host=127.0.0.1 port={} dbname={db} user={USER} password='{quoted}'", self.port)
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
