#!/usr/bin/env bash
# Regenerates the CRDs (DataDump, DataDumpSchedule) from the Rust types into their three homes
# (crds/, the chart, manifests/).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
for kind in datadump:datadumps datadumpschedule:datadumpschedules; do
  file="datadump.dev_${kind#*:}.yaml"
  ./target/debug/datadump crd --kind "${kind%%:*}" > "crds/$file"
  cp "crds/$file" "charts/datadump-operator/crds/$file"
  cp "crds/$file" "manifests/crd/$file"
done
