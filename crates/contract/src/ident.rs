//! The identifier rule: media types are table names, lower-case SQL identifiers, so they can
//! go into SQL and S3 keys unquoted. Pure, no I/O.

/// The placeholder a query template names its table with.
pub const MEDIA_TYPE_PLACEHOLDER: &str = "{media_type}";

/// Whether `name` is a lower-case SQL identifier of at most 63 bytes (PostgreSQL's limit):
/// `^[a-z_][a-z0-9_]{0,62}$`, what media types and table names are.
pub fn is_identifier(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_lower_case_and_at_most_63_bytes() {
        for ok in ["image", "audio", "_x", "a1_b2", &"a".repeat(63)] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "Image", "1a", "a-b", "a b", "a;drop", "é", &"a".repeat(64)] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
