#!/usr/bin/env bash
# Installs what a fresh machine lacks for the demo and the tests; safe to run again.
#   - Debian packages: PostgreSQL 15, unixODBC and the PostgreSQL ODBC driver, curl
#   - .venv/: moto (the AWS emulator), the AWS CLI, kubernetes-validate, helm-python-sdk,
#     pyarrow (an independent Parquet reader for the type-fidelity tests)
#   - odbc2parquet (cargo install, pinned)
set -euo pipefail
cd "$(dirname "$0")/.."

ODBC2PARQUET_VERSION=11.0.1
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
   || ! .venv/bin/python -c 'import helm_python, pyarrow' 2>/dev/null; then
  log "python venv .venv (moto, awscli, kubernetes-validate, helm-python-sdk, pyarrow)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check \
    'moto[ec2,s3,ssm,iam,server]>=5.2,<6' awscli kubernetes-validate helm-python-sdk 'pyarrow>=20'
fi

if ! command -v odbc2parquet >/dev/null || [ "$(odbc2parquet --version | awk '{print $2}')" != "$ODBC2PARQUET_VERSION" ]; then
  log "cargo install odbc2parquet $ODBC2PARQUET_VERSION (a few minutes)"
  cargo install --locked --quiet odbc2parquet --version "$ODBC2PARQUET_VERSION"
fi
log "setup done"
