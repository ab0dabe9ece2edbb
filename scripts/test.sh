#!/usr/bin/env bash
# The test command: installs what is missing, checks formatting and lints, then runs every test
# (unit, integration, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$HOME/.cargo/bin:$PATH"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
cargo test --locked --workspace "$@"
