#!/usr/bin/env bash
# Regenerates the CRD from the Rust types into its three homes (crds/, the chart, manifests/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -- crd > crds/datadump.dev_datadumps.yaml
cp crds/datadump.dev_datadumps.yaml charts/datadump-operator/crds/datadump.dev_datadumps.yaml
cp crds/datadump.dev_datadumps.yaml manifests/crd/datadump.dev_datadumps.yaml
