//! Launching workers: the EC2 user data ([`bootstrap`]: a short sh script that fetches and
//! checks the `datadump-worker` binary and runs it) and the worker binaries in each destination
//! bucket ([`release`]), plus the check that a spec's user data fits EC2's limit, which the
//! planner applies through [`PlanContext::launch_check`](crate::plan::PlanContext) and
//! `datadump validate` calls. Pure, except `release` (S3).

pub mod bootstrap;
pub mod release;

use datadump_api::{DataDumpSpec, FieldError};

pub use bootstrap::{BinarySource, Bootstrap, RenderError, USER_DATA_LIMIT, job_key, render, render_preview};

/// Room for the real values (presigned URLs, token, deadline) that the preview shows
/// as placeholders.
const USER_DATA_MARGIN: usize = 256;

/// The worker bootstrap must fit EC2's 16 KiB user-data limit (its presigned URLs hold the
/// prefix). Checked on a spec that is otherwise valid: `None` when it fits.
pub fn check_user_data(spec: &DataDumpSpec) -> Option<FieldError> {
    let longest = spec.media_types.iter().max_by_key(|m| m.as_str().len())?;
    let problem = |field: &str, problem: String, fix: &str| FieldError {
        field: field.into(),
        problem,
        fix: fix.into(),
    };
    let size = match render_preview(spec, longest) {
        Ok((script, _)) => script.len(),
        Err(RenderError::TooLarge { size, .. }) => size,
        Err(e) => {
            return Some(problem(
                "spec",
                format!("the worker script cannot be rendered: {e}"),
                "fix the field it names",
            ));
        }
    };
    (size + USER_DATA_MARGIN > USER_DATA_LIMIT).then(|| {
        problem(
            "spec.destination.prefix",
            format!("makes the worker bootstrap about {size} bytes, over EC2's {USER_DATA_LIMIT} byte user-data limit"),
            "shorten spec.destination.prefix",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prefix: &str) -> DataDumpSpec {
        serde_yaml::from_str(&format!(
            "mediaTypes: [image]\ndestination: {{bucket: b, prefix: '{prefix}'}}\ndatabase: {{ssmParameterName: /p}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_prefix_that_overflows_the_user_data_is_refused_with_the_fix() {
        assert_eq!(check_user_data(&spec("dumps")), None);
        let long = vec!["p".repeat(250); 60].join("/");
        let e = check_user_data(&spec(&long)).expect("refused");
        assert_eq!(e.field, "spec.destination.prefix");
        assert!(e.problem.contains("16384 byte user-data limit"), "{}", e.problem);
        assert_eq!(e.fix, "shorten spec.destination.prefix");
    }
}
