//! Every reason the operator gives: Event reasons, and the `reason` of a media type's status.
//! One enum so that a new reason is one variant, and the README's list is checked against it
//! (the test below). Pure.

/// Declares [`Reason`] with [`Reason::ALL`] and [`Reason::as_str`] from one list, so that a
/// variant cannot be missing from either.
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// A CamelCase reason of an Event (and of `status.media[].reason`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[doc = $doc])* $name,)*
        }

        impl Reason {
            /// Every reason, in the order the README lists them.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The name Kubernetes shows: the variant's.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    /// `_success` for the date was there before the first attempt: nothing launched.
    AlreadyExported,
    /// An attempt's instance is being launched.
    Launching,
    /// An attempt's instance was seen in EC2.
    Launched,
    /// The worker's job or user data could not be rendered: nothing launched.
    UserDataInvalid,
    /// The attempt wrote `_success` and its output checked out.
    WorkerSucceeded,
    /// The attempt wrote `_failure`.
    WorkerFailed,
    /// `_success` was written but the output does not match the manifest.
    OutputIncomplete,
    /// The attempt's instance ended, or vanished, without `_success`.
    InstanceLost,
    /// The dump's deadline passed.
    DeadlineExceeded,
    /// The dump was suspended: its workers are terminated.
    Suspended,
    /// A failed attempt is retried.
    Retrying,
    /// A media type failed for good.
    Failed,
    /// A media type was exported.
    Succeeded,
    /// Every media type was exported.
    Complete,
    /// The dump failed.
    DumpFailed,
    /// The spec does not pass validation.
    InvalidSpec,
    /// The object is being deleted: its instances are terminated.
    Cleanup,
    /// A Secret the spec names (connection string, CA bundle, client certificate) could not be
    /// read.
    SecretUnavailable,
    /// A ConfigMap the spec names (the CA bundle) could not be read.
    ConfigMapUnavailable,
    /// The CA bundle or client certificate is not PEM the worker can use: nothing launches
    /// until it is fixed.
    TlsMaterialInvalid,
    /// AWS refused a call (permissions, a parameter, a quota): it is tried again with backoff
    /// until the cause is fixed.
    AwsRejected,
    /// The dataset card was written.
    DatasetCardWritten,
    /// The Slack message was sent.
    Notified,
    /// The Slack message could not be sent.
    NotifyFailed,
    /// The bucket makes requesters pay (read, or set by the controller).
    RequesterPaysEnabled,
    /// The controller may not make the bucket's requesters pay: nothing is launched.
    RequesterPaysRefused,
    /// A DataDumpSchedule created a run's DataDump.
    Created,
    /// A DataDumpSchedule missed due times (controller away, suspended, or past the starting
    /// deadline).
    MissedSchedule,
    /// A DataDumpSchedule's due run waits for the active one (`concurrencyPolicy: Forbid`).
    AlreadyActive,
    /// A DataDumpSchedule deleted its active run for a new one (`concurrencyPolicy: Replace`).
    Replaced,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Reason;

    /// The reasons in the README's Observability list: the backticked names of the bullets
    /// "- Events on the DataDump" and "- Events on the DataDumpSchedule", each up to the next
    /// bullet.
    fn readme_reasons() -> BTreeSet<String> {
        // read at run time: the image's build copies the crates only, and a compiled-in README would
        // tie the crate to a file outside it
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
        let readme = readme.as_str();
        let mut names = BTreeSet::new();
        for bullet in ["\n- Events on the DataDump ", "\n- Events on the DataDumpSchedule"] {
            let start = readme.find(bullet).unwrap_or_else(|| panic!("the README has {bullet:?}"));
            let rest = &readme[start + 1..];
            let end = rest.find("\n- ").unwrap_or(rest.len());
            let first_line = rest.find('\n').unwrap_or(end);
            names.extend(rest[first_line..end].split('`').skip(1).step_by(2).map(str::to_string));
        }
        names
    }

    #[test]
    fn the_readme_lists_every_reason_and_no_other() {
        let listed = readme_reasons();
        let code: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_string()).collect();
        assert_eq!(listed, code, "README's Event reasons (left) and Reason::ALL (right) differ");
    }

    #[test]
    fn names_are_distinct_and_camel_case() {
        let names: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric()) && name.starts_with(|c: char| c.is_ascii_uppercase()),
                "{name}"
            );
        }
    }
}
