//! The `spec.database` checks: exactly one credential source, an SSM parameter name outside
//! the namespaces AWS reserves, and TLS object names and keys that can exist. Pure, no I/O.

use super::{PATTERNS, Report, check_object_key, check_object_name, check_secret_ref};
use crate::spec::{DatabaseSource, DatabaseTls};

/// `spec.database`: one credential source that can exist, and its TLS material.
pub(super) fn check_database(r: &mut Report, db: &DatabaseSource) {
    let p = &*PATTERNS;
    match (&db.connection_secret_ref, &db.ssm_parameter_name) {
        (Some(_), Some(_)) => r.add(
            "spec.database",
            "sets both connectionSecretRef and ssmParameterName",
            "keep exactly one credential source",
        ),
        (None, None) => r.add(
            "spec.database",
            "sets no credential source",
            "set connectionSecretRef {name, key} or ssmParameterName",
        ),
        _ => {}
    }
    if let Some(s) = &db.connection_secret_ref {
        check_secret_ref(r, "spec.database.connectionSecretRef", s);
    }
    if let Some(name) = &db.ssm_parameter_name {
        r.pattern(
            "spec.database.ssmParameterName",
            name,
            &p.ssm,
            "an SSM parameter name like /datadump/catalog-db",
        );
        let bare = name.trim_start_matches('/').to_ascii_lowercase();
        if bare.starts_with("aws") || bare.starts_with("ssm") {
            r.add(
                "spec.database.ssmParameterName",
                "names a parameter in a namespace AWS reserves (aws…, ssm…)",
                "use your own path, e.g. /datadump/catalog-db",
            );
        }
    }
    if let Some(tls) = &db.tls {
        check_tls(r, tls);
    }
}

/// `spec.database.tls`: one source of the CA bundle, and object names and keys that can exist.
fn check_tls(r: &mut Report, tls: &DatabaseTls) {
    if let Some(ca) = &tls.ca_bundle {
        let field = "spec.database.tls.caBundle";
        match (&ca.config_map_key_ref, &ca.secret_key_ref) {
            (Some(_), Some(_)) => r.add(
                field,
                "sets both configMapKeyRef and secretKeyRef",
                "keep exactly one source of the CA bundle",
            ),
            (None, None) => r.add(
                field,
                "sets no source",
                "set configMapKeyRef {name, key} (e.g. {name: rds-ca, key: global-bundle.pem}) or secretKeyRef {name, key}, or remove caBundle",
            ),
            _ => {}
        }
        if let Some(c) = &ca.config_map_key_ref {
            check_object_name(r, &format!("{field}.configMapKeyRef.name"), "ConfigMap", &c.name);
            check_object_key(r, &format!("{field}.configMapKeyRef.key"), "ConfigMap", &c.key);
        }
        if let Some(s) = &ca.secret_key_ref {
            check_secret_ref(r, &format!("{field}.secretKeyRef"), s);
        }
    }
    if let Some(s) = &tls.client_certificate_secret_ref {
        check_object_name(r, "spec.database.tls.clientCertificateSecretRef.name", "Secret", &s.name);
    }
}
