#!/usr/bin/env bash
# The demo: the main job end to end on local stand-ins, with no cluster and no AWS account.
#
#   1. installs what a fresh machine lacks (scripts/setup.sh) and builds datadump;
#   2. starts PostgreSQL (temp dir, free port) with a generated Openverse-like catalog
#      (scripts/demo-catalog.sql: `image` 50k rows, `audio` 20k rows), accepting only TLS
#      logins over TCP, with a CA and a server certificate for localhost made by openssl;
#   3. starts moto (the AWS emulator: S3 + SSM) on a free port and creates the bucket;
#   4. runs `datadump run --compute local -f manifests/examples/demo.yaml --ca-bundle-file
#      CA.pem`: the same planner and actions as the controller, with each worker running as a
#      local process and given the CA in its job;
#   5. lists the bucket and checks every table three ways: `SELECT count(*)` in PostgreSQL, the
#      rows in `_manifest.json` (with each file's size and SHA-256), and the rows decoded from
#      the downloaded Parquet files (examples/parquet_rows.rs); any difference fails the demo;
#      every file must open in pyarrow, pandas, DuckDB, polars, Spark and datasets
#      (scripts/readers.py); it also fails if the database password shows up in any output,
#      log or S3 object, or if a worker connected other than by TLS with the certificate
#      verified (sslmode=verify-full);
#   6. stops everything it started (also on Ctrl-C or failure).
#
# Re-runnable: every run uses fresh temp dirs, ports and a fresh moto. DATADUMP_DEMO_KEEP=1
# keeps the temp dir (logs, worker folders, downloaded files) afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

START=$(date +%s)
DATADUMP_DEMO_ONLY=1 scripts/setup.sh
export PATH="$ROOT/.venv/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
step "cargo build (datadump, examples/parquet_rows)"
cargo build --quiet --bin datadump --example parquet_rows
DATADUMP=$ROOT/target/debug/datadump
PARQUET_ROWS=$ROOT/target/debug/examples/parquet_rows

T=$(mktemp -d "${TMPDIR:-/tmp}/datadump-demo.XXXXXX")
chmod 755 "$T"
MOTO_PID='' PG_STARTED=0 OK=0
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/setup.sh)"
RUN_AS=()
if [ "$(id -u)" = 0 ]; then RUN_AS=(runuser -u postgres --); fi # initdb refuses to run as root

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null; fi
  if [ "$PG_STARTED" = 1 ]; then "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$T/pg/data" -m fast -w stop >/dev/null 2>&1; fi
  if [ "${DATADUMP_DEMO_KEEP:-}" = 1 ] || [ "$OK" != 1 ]; then
    echo "kept $T (PostgreSQL log, moto log, runner log, worker folders)"
  else
    rm -rf "$T"
  fi
  echo "stopped PostgreSQL and moto"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "PostgreSQL: a generated catalog"
PG_PORT=$(free_port)
PASSWORD="demo;$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$T/pg"
[ ${#RUN_AS[@]} = 0 ] || chown postgres "$T/pg"
printf '%s\n' "$PASSWORD" >"$T/pg/pwfile"
[ ${#RUN_AS[@]} = 0 ] || chown postgres "$T/pg/pwfile"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$T/pg/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  --encoding=UTF8 --locale=C >"$T/pg/initdb.log"
rm -f "$T/pg/pwfile"
# TLS as a managed database has it (RDS forces it): a CA, a server certificate for localhost,
# and a pg_hba.conf that refuses unencrypted TCP logins
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=datadump demo CA" \
  -keyout "$T/pg/ca.key" -out "$T/pg/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$T/pg/data/server.key" -out "$T/pg/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$T/pg/server.ext"
openssl x509 -req -in "$T/pg/server.csr" -CA "$T/pg/ca.pem" -CAkey "$T/pg/ca.key" -CAcreateserial -days 2 \
  -extfile "$T/pg/server.ext" -out "$T/pg/data/server.crt" 2>/dev/null
chmod 600 "$T/pg/data/server.key"
[ ${#RUN_AS[@]} = 0 ] || chown postgres "$T/pg/data/server.key" "$T/pg/data/server.crt"
printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >>"$T/pg/data/postgresql.conf"
printf 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n' >"$T/pg/data/pg_hba.conf"
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 60 \
  -o "-p $PG_PORT -k $T/pg -c listen_addresses=127.0.0.1 -c timezone=UTC -c fsync=off" start >/dev/null
PG_STARTED=1
psql_() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$T/pg" -p "$PG_PORT" -U postgres "$@"; }
psql_ -d postgres -c "CREATE ROLE exporter LOGIN PASSWORD '${PASSWORD//\'/\'\'}'" -c "CREATE DATABASE openledger OWNER exporter"
psql_ -d openledger -f scripts/demo-catalog.sql
psql_ -d openledger -c "GRANT SELECT ON image, audio TO exporter"
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on localhost:$PG_PORT (TLS only, CA $T/pg/ca.pem), database openledger:"
psql_ -d openledger -At -F ' ' -c "SELECT 'image', count(*), pg_size_pretty(pg_total_relation_size('image')) FROM image UNION ALL SELECT 'audio', count(*), pg_size_pretty(pg_total_relation_size('audio')) FROM audio" |
  while read -r t n s; do printf '  %-6s %7d rows  %s\n' "$t" "$n" "$s"; done

step "moto (S3 + SSM emulator)"
MOTO_PORT=$(free_port)
# its own session, so a Ctrl-C in this terminal reaches the runner (which cleans up) first
setsid moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$T/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=''
for _ in $(seq 300); do
  if curl -fs -o /dev/null "$AWS_ENDPOINT_URL/moto-api/"; then break; fi
  kill -0 "$MOTO_PID" 2>/dev/null || die "moto_server exited: $(tail -n 5 "$T/moto.log")"
  sleep 0.1
done
curl -fs -o /dev/null "$AWS_ENDPOINT_URL/moto-api/" || die "moto_server did not answer within 30 s"
aws s3 mb s3://demo-datasets >/dev/null
echo "moto on $AWS_ENDPOINT_URL, bucket s3://demo-datasets"

step "datadump run --compute local -f manifests/examples/demo.yaml"
# verify-full: the server's certificate must chain to the demo CA and name localhost
export DATADUMP_CONNECTION_STRING="host=localhost port=$PG_PORT dbname=openledger user=exporter password='${PASSWORD//\'/\\\'}' sslmode=verify-full"
RUN=("$DATADUMP" run --compute local -f manifests/examples/demo.yaml --ca-bundle-file "$T/pg/ca.pem" --workdir "$T/workers" --poll-interval 2s)
rc=0
if [ -t 1 ] && [ -t 0 ]; then
  # a pseudo-terminal keeps the live view, and `script` records what it showed
  script -qefc "$(printf '%q ' "${RUN[@]}")" "$T/run.log" || rc=$?
else
  # tee -i: a Ctrl-C is for the runner (which cleans up), not for its output
  "${RUN[@]}" 2>&1 | tee -i "$T/run.log" || rc=$?
fi
unset DATADUMP_CONNECTION_STRING
case $rc in
0) ;;
130) echo "interrupted"; exit 130 ;;
*) die "datadump run exited with $rc (worker logs: $T/workers/*/console.log)" ;;
esac

step "aws s3 ls --recursive s3://demo-datasets/"
aws s3 ls --recursive --human-readable s3://demo-datasets/ | tee "$T/listing.txt"

step "check: PostgreSQL count(*) = _manifest.json rows = rows decoded from the Parquet files"
DATE=$(aws s3 ls s3://demo-datasets/data-dump/ | awk '$1 == "PRE" {print $2}' | tr -d / | tail -n1)
[ -n "$DATE" ] || die "no date folder under s3://demo-datasets/data-dump/"
printf '%-6s %10s %10s %10s %6s %-8s %s\n' MEDIA POSTGRES MANIFEST PARQUET FILES TLS RESULT
bad=0
for media in image audio; do
  dir=$T/check/$media
  aws s3 cp --recursive --only-show-errors "s3://demo-datasets/data-dump/$DATE/$media/" "$dir/"
  [ -f "$dir/_success" ] || die "$media: no _success"
  expected=$(psql_ -d openledger -At -c "SELECT count(*) FROM $media WHERE removed_from_source = false")
  # the manifest's files must be exactly the downloaded parts, with its sizes and SHA-256
  manifest=$(python - "$dir" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "_manifest.json")))
names = sorted(os.path.basename(f["key"]) for f in m["files"])
parts = sorted(n for n in os.listdir(d) if n.endswith(".parquet"))
if names != parts:
    sys.exit(f"manifest files {names} differ from the objects {parts}")
for f in m["files"]:
    p = os.path.join(d, os.path.basename(f["key"]))
    if os.path.getsize(p) != f["size"] or hashlib.sha256(open(p, "rb").read()).hexdigest() != f["sha256"]:
        sys.exit(f"{f['key']}: size or sha256 differs from the manifest")
c = m.get("connection") or {}
if not (c.get("tls") and c.get("serverCertificate") == "caAndHostName"):
    sys.exit(f"the worker did not connect by TLS with the certificate verified: {c}")
print(m["rows"], len(m["files"]), c.get("tlsVersion"))
PY
  ) || die "$media: $manifest"
  read -r manifest_rows files tls <<<"$manifest"
  decoded=$("$PARQUET_ROWS" "$dir"/*.parquet | awk '$1 == "total" {print $2}')
  result=ok
  if [ "$expected" != "$manifest_rows" ] || [ "$expected" != "$decoded" ]; then result=MISMATCH bad=1; fi
  printf '%-6s %10s %10s %10s %6s %-8s %s\n' "$media" "$expected" "$manifest_rows" "$decoded" "$files" "$tls" "$result"
done
[ "$bad" = 0 ] || die "row counts differ"

# Every file opens in the six readers the dataset's users have (scripts/readers.py).
step "the files in pyarrow, pandas, DuckDB, polars, Spark and datasets"
for media in image audio; do
  python scripts/readers.py "$T/check/$media"/*.parquet 2>"$T/readers-$media.log" | cut -c1-110 \
    || die "$media: a reader refused the files (scripts/readers.py; $T/readers-$media.log)"
done

# The password must not leak: not in the runner's output, the worker logs or any S3 object.
if grep -rqF -- "${PASSWORD#demo;}" "$T/run.log" "$T/workers" "$T/check"; then
  die "the database password appears in the output, a worker log or an S3 object"
fi
echo "the database password appears in no output, worker log or S3 object"

OK=1
bold "demo passed in $(($(date +%s) - START)) s: both tables exported over verified TLS, every row accounted for"
