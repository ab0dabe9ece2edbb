#!/usr/bin/env bash
# Installs what a fresh machine lacks for the demo and the tests; safe to run again.
#   - Debian packages: PostgreSQL 15, unixODBC and the PostgreSQL ODBC driver, curl
#   - .venv/: moto (the AWS emulator), the AWS CLI, kubernetes-validate, helm-python-sdk,
#     pyarrow (an independent Parquet reader for the type-fidelity tests), DuckDB, polars and
#     pyspark (pytz: DuckDB's Python API returns timestamptz with it; with pyarrow, pandas and datasets: the six readers the reader test and the demo
#     open every file with; Spark runs on the machine's Java 17), ziglang (the linker that
#     gives the worker binary its glibc floor)
#   - cargo-zigbuild, and the lean worker binary built with it (glibc 2.28 floor, this machine's
#     architecture) into target/ARCH-unknown-linux-gnu/debug/datadump-worker
#   - odbc2parquet (cargo install, pinned)
#   - .tools/k8s/bin/: etcd, kube-apiserver and kubectl built with Go from tests/k8s/go.mod
#     (k8s.io/kubernetes v1.37.2, etcd v3.7.0) for the tests' real API server; built once,
#     rebuilt when tests/k8s/go.mod or go.sum change
set -euo pipefail
cd "$(dirname "$0")/.."

ODBC2PARQUET_VERSION=11.0.1
ZIGBUILD_VERSION=0.24.1
log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql)
[ -f /usr/include/sql.h ] || need_apt+=(unixodbc-dev)
odbcinst -q -d 2>/dev/null | grep -q 'PostgreSQL Unicode' || need_apt+=(odbc-postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/aws ] || [ ! -x .venv/bin/kubernetes-validate ] \
   || ! .venv/bin/python -c 'import helm_python, pyarrow, ziglang, datasets, huggingface_hub, duckdb, pytz, polars, pyspark' 2>/dev/null; then
  log "python venv .venv (moto, awscli, kubernetes-validate, helm-python-sdk, pyarrow, ziglang, datasets, huggingface_hub, duckdb, polars, pyspark)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check \
    'moto[ec2,s3,ssm,iam,server]>=5.2,<6' awscli kubernetes-validate helm-python-sdk 'pyarrow>=20' 'ziglang==0.17.0' \
    'datasets>=4,<6' 'huggingface_hub>=1,<3' 'duckdb==2.0.0' 'pytz' 'polars==2.1.0' 'pyspark==4.3.0'
fi

if ! command -v odbc2parquet >/dev/null || [ "$(odbc2parquet --version | awk '{print $2}')" != "$ODBC2PARQUET_VERSION" ]; then
  log "cargo install odbc2parquet $ODBC2PARQUET_VERSION (a few minutes)"
  cargo install --locked --quiet odbc2parquet --version "$ODBC2PARQUET_VERSION"
fi
# The tests' Kubernetes API server: Go from the module proxy, nothing else.
K8S_BIN=.tools/k8s/bin
K8S_STAMP="$K8S_BIN/.built-from"
# the version the binaries report (`kubectl version`, /version), stamped as a release build does
kv="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' tests/k8s/go.mod)"
k8s_ldflags="-s"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags="$k8s_ldflags -X $pkg.gitVersion=$kv -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$kv" | cut -d. -f2) -X $pkg.gitTreeState=clean"
done
k8s_want="$( (cat tests/k8s/go.mod tests/k8s/go.sum tests/k8s/etcd/main.go; echo "$k8s_ldflags") | sha256sum | cut -c1-16)"
# (The demo needs neither the API server nor the glibc-floor worker: DATADUMP_DEMO_ONLY=1.)
if [ "${DATADUMP_DEMO_ONLY:-}" != 1 ] && { [ ! -x "$K8S_BIN/kube-apiserver" ] || [ ! -x "$K8S_BIN/kubectl" ] \
   || [ ! -x "$K8S_BIN/etcd" ] || [ "$(cat "$K8S_STAMP" 2>/dev/null)" != "$k8s_want" ]; }; then
  command -v go >/dev/null || { echo "setup.sh: Go (1.26) is needed to build the test API server" >&2; exit 1; }
  log "go build etcd, kube-apiserver, kubectl (tests/k8s/go.mod; a few minutes the first time)"
  mkdir -p "$K8S_BIN"
  start=$(date +%s)
  (cd tests/k8s && GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags="$k8s_ldflags" -o "../../$K8S_BIN/" \
      ./etcd k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
  echo "$k8s_want" > "$K8S_STAMP"
  log "test API server built in $(( $(date +%s) - start )) s"
fi
# rustfmt and clippy for the test command's style checks
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  log "rustup component add rustfmt clippy"
  rustup component add rustfmt clippy
fi
if ! command -v cargo-zigbuild >/dev/null || [ "$(cargo-zigbuild --version | awk '{print $2}')" != "$ZIGBUILD_VERSION" ]; then
  log "cargo install cargo-zigbuild $ZIGBUILD_VERSION"
  cargo install --locked --quiet cargo-zigbuild --version "$ZIGBUILD_VERSION"
fi
# The worker binary EC2 instances run, linked against glibc 2.28 so that it runs on Amazon Linux
# 2023 (2.34) and newer; incremental, so cheap when nothing changed.
if [ "${DATADUMP_DEMO_ONLY:-}" != 1 ]; then
  log "worker binary with a glibc floor (cargo zigbuild)"
  PATH="$PWD/.venv/bin:$PATH" cargo zigbuild --locked --quiet --target "$(uname -m)-unknown-linux-gnu.2.28" -p datadump-worker --bin datadump-worker
fi
log "setup done"
