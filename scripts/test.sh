#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test (unit, integration, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
cargo test --locked "$@"
