//! What keeps the worker's own words safe to store: the tail of its log that `_failure`
//! carries ([`LogTail`], filled by [`TeeWriter`] as `tracing` writes), and the secrets removed
//! from every document and message it writes ([`Secrets`]: the connection string and
//! password, the client identity and its key). No I/O but the copy of each log line to
//! standard error.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The last bytes of the log, kept for `_failure`.
#[derive(Clone, Default)]
pub struct LogTail(Arc<Mutex<Vec<u8>>>);

/// How much of the log `_failure` carries.
pub const LOG_TAIL_BYTES: usize = 4096;

impl LogTail {
    /// The tail as text, cut at a character boundary.
    pub fn text(&self) -> String {
        let buf = self.0.lock().expect("log tail");
        let start = buf.len().saturating_sub(LOG_TAIL_BYTES);
        String::from_utf8_lossy(&buf[start..]).trim_start_matches('\u{fffd}').to_string()
    }
}

/// Tees log output to standard error and the tail.
pub struct TeeWriter(LogTail);

impl Write for TeeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(data);
        let mut buf = (self.0).0.lock().expect("log tail");
        buf.extend_from_slice(data);
        let excess = buf.len().saturating_sub(LOG_TAIL_BYTES * 2);
        if excess > 0 {
            buf.drain(..excess);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogTail {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter(self.clone())
    }
}

/// Secrets to remove from anything the worker writes: the connection string and password, the
/// client identity and its key.
#[derive(Clone, Default)]
pub struct Secrets(Arc<Mutex<Vec<String>>>);

impl Secrets {
    /// Adds a secret (values shorter than 3 characters would redact too much and are skipped).
    pub fn add(&self, s: impl Into<String>) {
        let s = s.into();
        if s.len() >= 3 {
            let mut v = self.0.lock().expect("secrets");
            v.push(s);
            // longest first, so a password inside a connection string is not half-replaced
            v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        let v = self.0.lock().expect("secrets");
        v.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "[REDACTED]"))
    }
}

/// Registers a client identity for redaction: the whole value, its private key block, and
/// each line of the key's body (a message quoting part of it is redacted too).
pub(super) fn register_identity(secrets: &Secrets, identity: &str) {
    secrets.add(identity.to_string());
    if let Some(key) = crate::pem::private_key_block(identity) {
        secrets.add(key.to_string());
        key.lines()
            .filter(|l| !l.starts_with("-----") && !l.contains(':'))
            .for_each(|l| secrets.add(l.trim().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_longest_first() {
        let s = Secrets::default();
        s.add("pw");
        s.add("s3cr3t");
        s.add("host=db password=s3cr3t");
        assert_eq!(
            s.redact("connect host=db password=s3cr3t; then s3cr3t, pw"),
            "connect [REDACTED]; then [REDACTED], pw"
        );
    }

    #[test]
    fn a_client_key_is_redacted_whole_and_line_by_line() {
        let s = Secrets::default();
        let identity = "-----BEGIN CERTIFICATE-----\nPUBLICcert\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nKEYline1AAAA\nKEYline2BBBB\n-----END PRIVATE KEY-----\n";
        register_identity(&s, identity);
        assert_eq!(s.redact(identity), "[REDACTED]");
        let key = &identity[identity.find("-----BEGIN PRIVATE").unwrap()..];
        assert_eq!(s.redact(&format!("key: {key}")), "key: [REDACTED]\n");
        let told = s.redact("bad key near KEYline2BBBB; cert PUBLICcert");
        assert_eq!(told, "bad key near [REDACTED]; cert PUBLICcert", "the certificate is public");
    }

    #[test]
    fn the_log_tail_keeps_the_end() {
        let tail = LogTail::default();
        let mut w = TeeWriter(tail.clone());
        for i in 0..2000 {
            writeln!(w, "line {i} é").unwrap();
        }
        let text = tail.text();
        assert!(text.ends_with("line 1999 é\n"));
        assert!(text.len() <= LOG_TAIL_BYTES);
    }
}
