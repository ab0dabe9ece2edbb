//! PEM text as the controller and `datadump run` check it before it reaches a worker: a CA
//! bundle (certificates only) and a client identity (a certificate chain, then its private
//! key); and the private key block the worker redacts. Only the armour is checked (the
//! `-----BEGIN …-----`/`-----END …-----` lines): the worker parses the certificates. No message
//! holds a byte of a key. Pure, no I/O.

/// The first line of a PEM certificate.
pub const CERTIFICATE_BEGIN: &str = "-----BEGIN CERTIFICATE-----";

/// The most characters one SSM parameter holds (the advanced tier, which `aws/ssm.rs` gets
/// through intelligent tiering for a value over the standard tier's 4 KiB).
pub const SSM_VALUE_LIMIT: usize = 8192;

/// One PEM block.
struct Block<'a> {
    /// The label between `BEGIN ` and `-----`: `CERTIFICATE`, `PRIVATE KEY`, `EC PRIVATE KEY`…
    label: &'a str,
    /// The block from its BEGIN line to the end of its END line.
    text: &'a str,
}

impl Block<'_> {
    fn is_private_key(&self) -> bool {
        self.label.ends_with("PRIVATE KEY")
    }
}

/// The PEM blocks of `pem`, in order; text between blocks is ignored (as OpenSSL does). A
/// BEGIN without its END is refused: the text was cut short.
fn blocks(pem: &str) -> Result<Vec<Block<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = pem;
    let mut offset = 0;
    while let Some(at) = rest.find("-----BEGIN ") {
        let start = offset + at;
        let after = &pem[start + "-----BEGIN ".len()..];
        let Some(label_len) = after.find("-----") else {
            return Err("has a -----BEGIN line without its closing dashes".into());
        };
        let label = &after[..label_len];
        if label.contains('\n') {
            return Err("has a -----BEGIN line without its closing dashes".into());
        }
        let end_line = format!("-----END {label}-----");
        let body_from = start + "-----BEGIN ".len() + label_len + "-----".len();
        let Some(end_at) = pem[body_from..].find(&end_line) else {
            return Err(format!("has -----BEGIN {label}----- without -----END {label}----- (cut short?)"));
        };
        let end = body_from + end_at + end_line.len();
        out.push(Block {
            label,
            text: &pem[start..end],
        });
        offset = end;
        rest = &pem[end..];
    }
    Ok(out)
}

/// Checks a CA bundle: at least one certificate, and no private key (the bundle travels in the
/// job object, which is no place for a secret). `Err` is the problem, to follow the place it
/// came from ("ConfigMap rds-ca key global-bundle.pem …").
pub fn check_ca_bundle(text: &str) -> Result<(), String> {
    let blocks = blocks(text)?;
    if blocks.iter().any(Block::is_private_key) {
        return Err("holds a private key; a CA bundle is public certificates only (and the key is exposed: replace it)".into());
    }
    if !blocks.iter().any(|b| b.label == "CERTIFICATE") {
        return Err(format!("holds no PEM certificate ({CERTIFICATE_BEGIN})"));
    }
    Ok(())
}

/// Which half of a client identity a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityPart {
    /// `tls.crt`: the certificate chain.
    Certificate,
    /// `tls.key`: the private key.
    Key,
}

/// Checks a client certificate chain and its key and joins them as the worker reads them: the
/// chain, then the key, each ending in a newline. `Err` names the half at fault and the
/// problem (never the key's text).
pub fn client_identity(certificate: &str, key: &str) -> Result<String, (IdentityPart, String)> {
    let certs = blocks(certificate).map_err(|p| (IdentityPart::Certificate, p))?;
    if certs.iter().any(Block::is_private_key) {
        return Err((
            IdentityPart::Certificate,
            "holds a private key; it should hold the certificate chain only (the key goes in tls.key)".into(),
        ));
    }
    if !certs.iter().any(|b| b.label == "CERTIFICATE") {
        return Err((IdentityPart::Certificate, format!("holds no PEM certificate ({CERTIFICATE_BEGIN})")));
    }
    let keys: Vec<Block> = blocks(key).map_err(|p| (IdentityPart::Key, p))?;
    let private: Vec<&Block> = keys.iter().filter(|b| b.is_private_key()).collect();
    match private.as_slice() {
        [] => {
            return Err((
                IdentityPart::Key,
                "holds no PEM private key (-----BEGIN PRIVATE KEY-----, or RSA/EC PRIVATE KEY)".into(),
            ));
        }
        [one] if one.label == "ENCRYPTED PRIVATE KEY" || one.text.contains("Proc-Type: 4,ENCRYPTED") => {
            return Err((
                IdentityPart::Key,
                "is encrypted, and the worker has no passphrase; store it unencrypted (openssl pkey -in KEY -out KEY.plain)".into(),
            ));
        }
        [_] => {}
        _ => return Err((IdentityPart::Key, "holds more than one private key".into())),
    }
    let joined = format!("{}\n{}\n", certificate.trim(), key.trim());
    if joined.len() > SSM_VALUE_LIMIT {
        return Err((
            IdentityPart::Certificate,
            format!(
                "with its key is {} characters, over the {SSM_VALUE_LIMIT} an SSM parameter holds; leave the root CA out of the chain (the server has it) or use an EC key",
                joined.len()
            ),
        ));
    }
    Ok(joined)
}

/// Splits one PEM file holding a certificate chain and its private key into the chain and the
/// key (for `datadump run --client-identity-file`).
pub fn split_identity(pem: &str) -> Result<(String, String), String> {
    let blocks = blocks(pem)?;
    let (keys, certs): (Vec<&Block>, Vec<&Block>) = blocks.iter().partition(|b| b.is_private_key());
    let join = |v: &[&Block]| v.iter().map(|b| b.text).collect::<Vec<_>>().join("\n");
    Ok((join(&certs), join(&keys)))
}

/// The private key block of a client identity (BEGIN line to END line), for redaction.
pub fn private_key_block(identity: &str) -> Option<&str> {
    blocks(identity).ok()?.into_iter().find(Block::is_private_key).map(|b| b.text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PEM block with this label whose body is `body` (not a real certificate or key: only
    /// the armour is checked here).
    pub(crate) fn block(label: &str, body: &str) -> String {
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    #[test]
    fn a_ca_bundle_is_certificates_and_nothing_secret() {
        let two = format!("# RDS\n{}{}", block("CERTIFICATE", "MIIBaa"), block("CERTIFICATE", "MIIBbb"));
        assert_eq!(check_ca_bundle(&two), Ok(()));
        assert!(
            check_ca_bundle("")
                .unwrap_err()
                .contains("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        );
        assert!(
            check_ca_bundle("MIIB…DER bytes as text")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        let cut = &two[..two.len() - 30];
        assert!(
            check_ca_bundle(cut).unwrap_err().contains("without -----END CERTIFICATE-----"),
            "{cut}"
        );
        let with_key = format!("{two}{}", block("PRIVATE KEY", "s3cr3tKEYbody"));
        let problem = check_ca_bundle(&with_key).unwrap_err();
        assert!(problem.contains("private key") && !problem.contains("s3cr3t"), "{problem}");
    }

    #[test]
    fn a_client_identity_is_the_chain_then_one_unencrypted_key() {
        let crt = format!("{}{}", block("CERTIFICATE", "LEAF"), block("CERTIFICATE", "INTERMEDIATE"));
        let key = block("PRIVATE KEY", "s3cr3tKEYbody");
        let joined = client_identity(&crt, &key).unwrap();
        assert!(joined.starts_with("-----BEGIN CERTIFICATE-----\nLEAF") && joined.ends_with("-----END PRIVATE KEY-----\n"));
        assert_eq!(private_key_block(&joined), Some(key.trim()));
        assert_eq!(split_identity(&joined).unwrap(), (crt.trim().to_string(), key.trim().to_string()));
        for label in ["RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            assert!(client_identity(&crt, &block(label, "k")).is_ok(), "{label}");
        }
        let refused = [
            (client_identity(&key, &key), IdentityPart::Certificate, "holds a private key"),
            (client_identity("", &key), IdentityPart::Certificate, "no PEM certificate"),
            (client_identity(&crt, &crt), IdentityPart::Key, "no PEM private key"),
            (
                client_identity(&crt, &block("ENCRYPTED PRIVATE KEY", "k")),
                IdentityPart::Key,
                "encrypted",
            ),
            (
                client_identity(&crt, &block("RSA PRIVATE KEY", "Proc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nk")),
                IdentityPart::Key,
                "encrypted",
            ),
            (client_identity(&crt, &format!("{key}{key}")), IdentityPart::Key, "more than one"),
            (
                client_identity(&block("CERTIFICATE", &"A".repeat(9000)), &key),
                IdentityPart::Certificate,
                "over the 8192",
            ),
        ];
        for (got, part, problem) in refused {
            let (p, text) = got.unwrap_err();
            assert_eq!(p, part, "{text}");
            assert!(text.contains(problem) && !text.contains("s3cr3t"), "{text}");
        }
    }
}
