#!/usr/bin/env bash
# The demo: the main job end to end on local stand-ins.
# Until the one-shot runner and its local backend land (issue 5), this shows what already runs
# without a cluster: the set-up, the offline validation of the example, and the worker script
# the controller would hand to EC2 for it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --quiet
echo "== datadump validate -f manifests/examples/datadump.yaml"
./target/debug/datadump validate -f manifests/examples/datadump.yaml
echo "== not yet: 'datadump run' (PostgreSQL -> odbc2parquet -> S3 emulator) arrives with the runner"
