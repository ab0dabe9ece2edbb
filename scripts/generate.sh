#!/usr/bin/env bash
# Regenerates every generated file from its source, the one fix the drift test names:
#   crds/*.yaml                        from the Rust types (`datadump crd --kind …`)
#   charts/datadump-operator/crds/     byte-identical copies
#   manifests/crd/                     byte-identical copies
#   manifests/*.yaml                   from the chart with default values (scripts/generate-manifests.py)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
cargo build --quiet --bin datadump
for kind in datadump:datadumps datadumpschedule:datadumpschedules; do
  file="datadump.dev_${kind#*:}.yaml"
  ./target/debug/datadump crd --kind "${kind%%:*}" > "crds/$file"
  cp "crds/$file" "charts/datadump-operator/crds/$file"
  cp "crds/$file" "manifests/crd/$file"
done
python scripts/generate-manifests.py
echo "regenerated crds/, charts/datadump-operator/crds/, manifests/"
