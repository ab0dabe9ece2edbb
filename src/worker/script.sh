#!/bin/bash
# datadump worker (datadump-operator). Job values are quoted here-documents: data, never code.
set -eu +x -o pipefail
declare -A JOB=()
ARGS=()
job() {
  local v=''
  IFS= read -r -d '' v || true
  v=${v%$'\n'}
  if [[ $1 == arg ]]; then ARGS+=("$v"); else JOB[$1]=$v; fi
}
#@JOB@
# ---- Everything below is the fixed program, shipped gzip+base64 after the job values. Comment
# lines and indentation are stripped when rendering (EC2 user data is limited to 16 KiB), so
# keep every string on one line and use no here-documents.
#
# Local runs only (unset on EC2): DATADUMP_SHUTDOWN_CMD (default `shutdown -h`, called with
# `+MINUTES` first and `now` last), DATADUMP_WORKDIR (use this directory, no disk setup),
# DATADUMP_SKIP_INSTALL=1, DATADUMP_PROGRESS_INTERVAL (seconds, default 60),
# DATADUMP_POLL_INTERVAL (seconds, default 2). AWS_* settings come from the environment.
WORKDIR=${DATADUMP_WORKDIR:-/var/lib/datadump}
PROGRESS_INTERVAL=${DATADUMP_PROGRESS_INTERVAL:-60}
POLL_INTERVAL=${DATADUMP_POLL_INTERVAL:-2}
[[ $PROGRESS_INTERVAL =~ ^[0-9]+$ ]] || PROGRESS_INTERVAL=60
read -ra SHUTDOWN <<<"${DATADUMP_SHUTDOWN_CMD:-shutdown -h}"
export HOME=${HOME:-/root} AWS_PAGER=''
export PATH="$PATH:/usr/local/bin:$HOME/.cargo/bin" AWS_RETRY_MODE=${AWS_RETRY_MODE:-standard} AWS_MAX_ATTEMPTS=${AWS_MAX_ATTEMPTS:-8}
LOG=/dev/stderr OUT='' STAGE=starting DONE=0 DEADLINE_HIT=0 O2P_PID='' CONN='' STARTED=''
FILES=0 BYTES=0 ROWS=0 ROWS_KNOWN=1
ENTRIES=() SECRETS=() ADDED=()
mapfile -t OPTS <<<"${JOB[opts]:-}"

now() { date -u +%s; }
now_iso() { date -u +%Y-%m-%dT%H:%M:%SZ; }
log() { printf '%s %s\n' "$(now_iso)" "$*"; }
die() { log "error: $*"; return 1; }

# Seconds left until the deadline, 0 once it has passed.
remaining() {
  local r=$((JOB[deadline] - $(now)))
  echo $((r < 0 ? 0 : r))
}

deadline_exit() {
  DEADLINE_HIT=1
  log "error: the deadline ${JOB[deadline_iso]} has passed ($1)"
  exit 124
}

# Runs a command that is killed when the deadline passes (exit code 124).
limited() {
  local r
  r=$(remaining)
  ((r > 0)) || deadline_exit "$1"
  timeout --kill-after=30 "$r" "$@"
}

# Prints $1 as a JSON string; $1 must be valid UTF-8 (see utf8_clean).
json_str() {
  local LC_ALL=C s=$1 i h c u
  s=${s//\\/\\\\} s=${s//\"/\\\"}
  s=${s//$'\n'/\\n} s=${s//$'\r'/\\r} s=${s//$'\t'/\\t}
  if [[ $s == *[$'\001'-$'\037']* ]]; then
    for ((i = 1; i < 32; i++)); do
      printf -v h %02x "$i"
      printf -v c "\\x$h"
      printf -v u '\\u%04x' "$i"
      s=${s//"$c"/$u}
    done
  fi
  printf '"%s"' "$s"
}

# Drops bytes that are not UTF-8 (a log tail may start inside a character).
utf8_clean() {
  if command -v iconv >/dev/null; then iconv -c -f UTF-8 -t UTF-8 2>/dev/null || true; else LC_ALL=C tr -d '\200-\377'; fi
}

redact() {
  local s=$1 x
  for x in "${SECRETS[@]}"; do
    if [[ -n $x ]]; then s=${s//"$x"/[REDACTED]}; fi
  done
  printf '%s' "$s"
}

# The JSON documents of the S3 contract (src/worker/contract.rs parses them).
common() { printf '"attempt":%d,"token":%s,"time":"%s"' "${JOB[attempt]}" "$(json_str "${JOB[token]}")" "$(now_iso)"; }
rows_field() { if ((ROWS_KNOWN)); then printf '"rows":%d,' "$ROWS"; fi; }
progress_json() { printf '{"stage":"%s","files":%d,"bytes":%d,%s%s}' "$STAGE" "$FILES" "$BYTES" "$(rows_field)" "$(common)"; }
success_json() { printf '{"files":%d,"bytes":%d,%s%s}' "$FILES" "$BYTES" "$(rows_field)" "$(common)"; }
# failure_json EXIT_CODE STEP LOG_TAIL
failure_json() { printf '{"exitCode":%d,"step":"%s","logTail":%s,%s}' "$1" "$2" "$(json_str "$(redact "$3")")" "$(common)"; }
manifest_json() {
  local IFS=,
  printf '{"version":1,"mediaType":%s,"dumpDate":%s,"files":[%s],%s"startedAt":"%s","odbc2parquetVersion":%s,%s}' \
    "$(json_str "${JOB[media_type]}")" "$(json_str "${JOB[date]}")" "${ENTRIES[*]}" "$(rows_field)" \
    "$STARTED" "$(json_str "${JOB[odbc2parquet_version]}")" "$(common)"
}

# put NAME BODY [TIMEOUT]: writes one JSON object under the media prefix.
put() {
  local key=${JOB[key_prefix]}$1 rc=0
  printf '%s' "$2" | timeout --kill-after=10 "${3:-$(remaining)}" aws s3 cp - "s3://${JOB[bucket]}/$key" --region "${JOB[s3_region]}" --content-type application/json --only-show-errors || rc=$?
  if ((rc)); then log "could not write $key"; return "$rc"; fi
  log "wrote $key"
}

# Progress is best effort: a missed heartbeat must not fail a long dump.
progress() {
  if [[ -n ${1:-} ]]; then STAGE=$1; log "stage $1"; fi
  if command -v aws >/dev/null; then put _progress.json "$(progress_json)" 120 || true; fi
}

# ---- installation (Amazon Linux 2023 on x86_64 or arm64): skips what is already there ----

find_lib() { find /usr/lib64 /usr/lib /usr/local/lib -name "$1" -print -quit 2>/dev/null || true; }

register_driver() { # NAME LIBRARY
  if odbcinst -q -d -n "$1" >/dev/null 2>&1; then return 0; fi
  local so
  so=$(find_lib "$2")
  [[ -n $so ]] || die "no ODBC driver $2"
  printf '[%s]\nDriver=%s\n' "$1" "$so" >"$WORKDIR/driver.ini"
  odbcinst -i -d -f "$WORKDIR/driver.ini"
}

o2p_version() { "${1:-odbc2parquet}" --version 2>/dev/null | awk '{print $2}' || true; }

install_odbc2parquet() {
  local want=${JOB[odbc2parquet_version]} tag asset bin=/usr/local/bin/odbc2parquet arch
  if [[ $(o2p_version) == "$want" ]]; then return 0; fi
  arch=$(uname -m)
  arch=${arch/aarch64/arm64}
  for tag in "v$want" "$want"; do
    for asset in "ubuntu-$arch" "$arch-ubuntu"; do
      if limited curl -fsSL --retry 3 -o "$WORKDIR/o2p.gz" "https://github.com/pacman82/odbc2parquet/releases/download/$tag/odbc2parquet-$asset.gz" &&
        gunzip -c "$WORKDIR/o2p.gz" >"$bin" && chmod 755 "$bin" && [[ $(o2p_version "$bin") == "$want" ]]; then
        log "installed odbc2parquet $want from GitHub ($tag, $asset)"
        return 0
      fi
    done
  done
  rm -f "$bin"
  log "no usable release binary: building odbc2parquet $want from crates.io"
  limited dnf install -y -q gcc unixODBC-devel
  if ! command -v cargo >/dev/null; then
    limited curl -fsSL --retry 3 -o "$WORKDIR/rustup.sh" https://sh.rustup.rs
    limited sh "$WORKDIR/rustup.sh" -y -q --profile minimal --no-modify-path
  fi
  limited cargo install -q --locked --root /usr/local "odbc2parquet@$want"
}

install_tools() {
  if [[ ${DATADUMP_SKIP_INSTALL:-} != 1 ]]; then
    local pkgs=()
    command -v aws >/dev/null || pkgs+=(awscli-2)
    command -v odbcinst >/dev/null || pkgs+=(unixODBC)
    [[ -n $(find_lib psqlodbcw.so) ]] || pkgs+=(postgresql-odbc)
    if ((${#pkgs[@]})); then limited dnf install -y -q "${pkgs[@]}"; fi
    register_driver 'PostgreSQL Unicode' psqlodbcw.so
    register_driver 'PostgreSQL ANSI' psqlodbca.so
    install_odbc2parquet
  fi
  log "odbc2parquet $(o2p_version), $(aws --version 2>&1)"
  [[ $(o2p_version) == "${JOB[odbc2parquet_version]}" ]] || log "warning: odbc2parquet is not version ${JOB[odbc2parquet_version]}"
}

# ---- disk: an attached EBS volume, else instance-store NVMe, else the root volume ----

# Reads "DEVICE MODEL..." lines of unused disks; prints "DEVICE KIND" of the one to use.
choose_disk() {
  local dev model ebs='' store=''
  while read -r dev model; do
    if [[ $model == *'Instance Storage'* ]]; then store=${store:-$dev}; else ebs=${ebs:-$dev}; fi
  done
  if [[ -n $ebs ]]; then echo "$ebs ebs"; elif [[ -n $store ]]; then echo "$store instance-store"; fi
}

# Whole disks without partitions or mounts that are not the root disk, with their models.
unused_disks() {
  local root dev
  root=$(lsblk -npo PKNAME "$(findmnt -no SOURCE /)" 2>/dev/null | head -n1 || true)
  for dev in $(lsblk -dnpo NAME,TYPE | awk '$2 == "disk" {print $1}'); do
    if [[ $dev != "$root" && $(lsblk -nro NAME,MOUNTPOINT "$dev" | wc -l) == 1 && -z $(lsblk -nro MOUNTPOINT "$dev") ]]; then
      echo "$dev $(cat "/sys/block/${dev##*/}/device/model" 2>/dev/null || true)"
    fi
  done
}

prepare_disk() {
  local dev='' kind=''
  mkdir -p "$OUT"
  if [[ -z ${DATADUMP_WORKDIR:-} ]]; then read -r dev kind < <(unused_disks | choose_disk) || true; fi
  if [[ -z $dev ]]; then log "parts go to $OUT"; return 0; fi
  limited mkfs.xfs -f -q "$dev"
  mount -o noatime "$dev" "$OUT"
  log "mounted the $kind disk $dev at $OUT"
}

# ---- credentials ----

# Splits an ODBC connection string into ODBC_KEYS (lower case) and ODBC_VALUES (unbraced).
odbc_parse() {
  local s=$1 key val
  ODBC_KEYS=() ODBC_VALUES=()
  while s=${s#"${s%%[!; ]*}"}; [[ $s == *=* ]]; do
    key=${s%%=*} s=${s#*=} val=''
    if [[ $s == '{'* ]]; then
      s=${s:1}
      while [[ $s == *'}'* ]]; do
        val+=${s%%'}'*} s=${s#*'}'}
        if [[ $s == '}'* ]]; then val+='}' s=${s:1}; else break; fi
      done
    else
      val=${s%%;*}
    fi
    if [[ $s == *';'* ]]; then s=${s#*;}; else s=''; fi
    key=${key%"${key##*[! ]}"}
    ODBC_KEYS+=("${key,,}") ODBC_VALUES+=("$val")
  done
}

# Sets CONN to $1 plus each driver option (OPTS lines: NAME ALIAS VALUE) $1 does not set.
effective_conn() {
  local opt name alias value k i have
  CONN=$1 ADDED=()
  odbc_parse "$1"
  for ((i = 0; i < ${#ODBC_KEYS[@]}; i++)); do
    if [[ ${ODBC_KEYS[i]} =~ ^(pwd|password)$ && ${#ODBC_VALUES[i]} -ge 3 ]]; then SECRETS+=("${ODBC_VALUES[i]}"); fi
  done
  for opt in "${OPTS[@]}"; do
    read -r name alias value <<<"$opt"
    [[ -n $name ]] || continue
    have=0
    for k in "${ODBC_KEYS[@]}"; do
      if [[ $k == "${name,,}" || $k == "${alias,,}" ]]; then have=1; fi
    done
    if ((have)); then continue; fi
    if [[ -n $CONN && $CONN != *';' ]]; then CONN+=';'; fi
    CONN+="$name=$value"
    ADDED+=("$name=$value")
  done
}

read_connection_string() {
  local value
  value=$(limited aws ssm get-parameter --name "${JOB[parameter]}" --with-decryption --region "${JOB[region]}" --query Parameter.Value --output text)
  SECRETS+=("$value")
  [[ -n $value ]] || die "SSM parameter ${JOB[parameter]} is empty"
  effective_conn "$value"
  SECRETS+=("$CONN")
  log "read the connection string from SSM parameter ${JOB[parameter]}; added ${ADDED[*]:-nothing}"
}

# ---- dump and upload ----

# The Parquet parts in $OUT, in file order (version sort: _99 before _100).
list_parts() { ls -1v "$OUT/${JOB[media_type]}"_*.parquet 2>/dev/null || true; }

# Rows odbc2parquet logged for a finished part (empty when it has not logged it).
part_rows() {
  P=" path=$1" awk 'index($0, "File complete rows=") && substr($0, length($0) - length(ENVIRON["P"]) + 1) == ENVIRON["P"] { sub(/.*File complete rows=/, ""); sub(/ .*/, ""); r = $0 } END { print r }' "$LOG"
}

upload_part() {
  local path=$1 size sha rows key=${JOB[key_prefix]}${1##*/}
  [[ $(tail -c 4 "$path") == PAR1 ]] || die "$path is not a complete Parquet file"
  size=$(stat -c %s "$path")
  sha=$(sha256sum "$path")
  sha=${sha%% *}
  rows=$(part_rows "$path")
  limited aws s3 cp "$path" "s3://${JOB[bucket]}/$key" --region "${JOB[s3_region]}" --only-show-errors --content-type application/vnd.apache.parquet --metadata "sha256=$sha"
  rm -f "$path"
  FILES=$((FILES + 1)) BYTES=$((BYTES + size))
  if [[ -n $rows ]]; then ROWS=$((ROWS + rows)) rows=",\"rows\":$rows"; else ROWS_KNOWN=0; fi
  ENTRIES+=("{\"key\":$(json_str "$key"),\"size\":$size,\"sha256\":\"$sha\"$rows}")
  log "uploaded $key ($size bytes, sha256 $sha)"
}

# Uploads the complete parts: those with a successor, those odbc2parquet logged as complete,
# and all of them once odbc2parquet has exited successfully ($1 = 1).
upload_ready() {
  local parts=() i n
  mapfile -t parts < <(list_parts)
  n=${#parts[@]}
  for ((i = 0; i < n; i++)); do
    if (($1 || i < n - 1)) || [[ -n $(part_rows "${parts[i]}") ]]; then
      if (($1)) || [[ $(tail -c 4 "${parts[i]}") == PAR1 ]]; then upload_part "${parts[i]}"; else break; fi
    fi
  done
}

dump() {
  local rc=0 last
  progress dumping
  rm -rf "${OUT:?}"/*
  # PGTZ: timestamptz values are written in the session's zone; make that UTC.
  ODBC_CONNECTION_STRING=$CONN PGTZ=UTC RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 odbc2parquet -v --no-color query "${ARGS[@]}" "$OUT/${JOB[media_type]}.parquet" - <<<"${JOB[query]}" &
  O2P_PID=$!
  last=$(now)
  while kill -0 "$O2P_PID" 2>/dev/null; do
    upload_ready 0
    if (($(now) - last >= PROGRESS_INTERVAL)); then
      progress
      last=$(now)
    fi
    (($(remaining) > 0)) || deadline_exit dump
    sleep "$POLL_INTERVAL"
  done
  wait "$O2P_PID" || rc=$?
  O2P_PID=''
  ((rc == 0)) || die "odbc2parquet failed with exit code $rc" || return "$rc"
  upload_ready 1
}

finish() {
  local total
  total=$(awk '/Done total_rows_fetched=/ { sub(/.*total_rows_fetched=/, ""); sub(/ .*/, ""); t = $0 } END { print t }' "$LOG")
  if [[ -n $total ]]; then
    ((!ROWS_KNOWN || total == ROWS)) || die "odbc2parquet fetched $total rows but the parts hold $ROWS"
    ROWS=$total ROWS_KNOWN=1
  fi
  progress finishing
  put _manifest.json "$(manifest_json)"
  # Committing: a stop request now must not add a _failure next to the _success being written
  # (the controller terminates the worker as soon as it sees _success).
  trap '' TERM INT HUP
  put _success "$(success_json)"
  DONE=1
}

on_exit() {
  local rc=$? step=$STAGE
  set +e
  trap '' TERM INT HUP
  if [[ -n $O2P_PID ]]; then
    kill "$O2P_PID" 2>/dev/null
    wait "$O2P_PID" 2>/dev/null
  fi
  if ((!DONE)); then
    if ((DEADLINE_HIT || $(remaining) == 0)); then step=deadline; fi
    log "failed in step $step with exit code $rc"
    put _failure "$(failure_json "$((rc ? rc : 1))" "$step" "$(tail -c 4096 "$LOG" | utf8_clean)")" 120
    redact "$(tail -c 4096 "$LOG")" >&3
  fi
  log "shutting down"
  "${SHUTDOWN[@]}" now
}

main() {
  mkdir -p "$WORKDIR"
  WORKDIR=$(cd "$WORKDIR" && pwd)
  LOG=$WORKDIR/worker.log OUT=$WORKDIR/data
  exec 3>&1 >>"$LOG" 2>&1
  trap on_exit EXIT
  trap 'log "received SIGTERM"; exit 143' TERM
  trap 'log "received SIGINT"; exit 130' INT
  trap 'log "received SIGHUP"; exit 129' HUP
  STARTED=$(now_iso)
  log "datadump worker: ${JOB[media_type]} ${JOB[date]}, attempt ${JOB[attempt]}, deadline ${JOB[deadline_iso]}"
  local r
  r=$(remaining)
  ((r > 0)) || deadline_exit start
  "${SHUTDOWN[@]}" "+$(((r + 59) / 60 + 1))"
  log "dead-man switch set: the machine shuts down at the deadline"
  progress
  progress installing
  install_tools
  progress preparing_disk
  prepare_disk
  progress reading_credentials
  read_connection_string
  dump
  finish
  log "done: $FILES files, $BYTES bytes"
}

if [[ ${DATADUMP_LIB:-} == 1 ]]; then return 0 2>/dev/null || exit 0; fi
main
