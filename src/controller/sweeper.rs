//! The orphan sweeper: every interval, one DescribeInstances for every live instance this
//! installation manages; terminates those whose owner is gone from the watch cache or whose
//! media type already reached a terminal phase. I/O.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use tracing::{info, warn};

use crate::api::DataDump;
use crate::backend::{Compute, InstanceFilter};
use crate::metrics::{METRICS, StateLabels};
use crate::plan::{Instance, InstanceState};

/// Which of `instances` no DataDump in `owners` accounts for.
pub fn orphans(instances: &[Instance], owners: &[std::sync::Arc<DataDump>]) -> Vec<String> {
    instances
        .iter()
        .filter(|i| i.state.needs_terminate())
        .filter(|i| {
            let Some(owner) = owners.iter().find(|o| o.uid().as_deref() == Some(i.owner_uid.as_str())) else {
                return true;
            };
            owner
                .status
                .as_ref()
                .and_then(|s| s.media(&i.media_type))
                .is_some_and(|m| m.phase.is_terminal())
        })
        .map(|i| i.id.clone())
        .collect()
}

/// Sets the `instances{state}` gauge from one listing of the live managed instances.
fn record_states(instances: &[Instance]) {
    for state in [
        InstanceState::Pending,
        InstanceState::Running,
        InstanceState::Stopping,
        InstanceState::Stopped,
        InstanceState::ShuttingDown,
    ] {
        let n = instances.iter().filter(|i| i.state == state).count();
        METRICS
            .instances
            .get_or_create(&StateLabels {
                state: state.as_str().into(),
            })
            .set(n as i64);
    }
}

/// Runs forever (the caller aborts it on shutdown).
pub async fn run<C: Compute>(store: Store<DataDump>, compute: C, interval: Duration) {
    // An unsynced cache would make every instance look orphaned.
    if store.wait_until_ready().await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        match compute.instances(InstanceFilter::AllManaged).await {
            Ok(instances) => {
                record_states(&instances);
                let ids = orphans(&instances, &store.state());
                if !ids.is_empty() {
                    info!(instances = ?ids, "sweeper: terminating orphaned instances");
                    match compute.terminate(&ids).await {
                        Ok(()) => {
                            METRICS.orphans_terminated.inc_by(ids.len() as u64);
                        }
                        Err(e) => warn!(error = %e, "sweeper: terminate failed"),
                    }
                }
            }
            Err(e) => warn!(error = %e, "sweeper: describe failed"),
        }
    }
}
