#!/usr/bin/env bash
# The load benchmark (README "Performance"): hookgate against nginx as a plain edge proxy,
# every row in ONE run, on this machine, against the same sink.
#
#   benches/load/run.sh                     # all rows, 10 s each, 1 wrk thread, 32 connections
#   CONNS=256 DURATION=20s benches/load/run.sh
#   ROWS="nginx hg-embedded" benches/load/run.sh   # only some rows (keys in the table's first column)
#   STORE_ROOT=/dev/shm benches/load/run.sh         # embedded store files there (tmpfs: fsync is
#                                                   # free, which measures what the fsync costs)
#
# Rows (the sink is an nginx `return 200` on loopback; the load generator is wrk with
# benches/load/flashduty.lua: ~720-byte Flashduty incident bodies, a unique event_id per
# request, event_time growing per request, incident ids spread over 4096 entities):
#   direct        wrk → sink
#   nginx         wrk → nginx edge (benches/load/nginx-edge.conf: IP allowlist, static bearer
#                 check, keepalive upstream, buffered access log) → sink        (the reference)
#   hg-embedded   wrk → hookgate sync, full pipeline (allowlist, bearer, flashduty-incident
#                 schema, dedup /event_id, order /incident/incident_id + /event_time), embedded store
#   hg-memory     the same on the memory store
#   hg-deferred   hg-embedded with [store] sync_commits = "deferred" (fsync up to 1 s later;
#                 not in the default ROWS)
#   hg-async      the same with delivery = "async" (durable outbox, 202), embedded store
#   hg-bare       a bare hookgate route (no allowlist, auth, schema or keys), memory store
#   hg-redis      the full pipeline on the redis store, when this build has it (see below)
#   nginx-tls     the nginx edge over TLS (certificates made with openssl in a temp dir)
#   hg-tls        hookgate full pipeline, embedded store, over TLS   (ratio to nginx-tls)
#
# "server CPU µs/req" is the CPU time the server under test (the sink for `direct`, the
# nginx edge, or hookgate) spent per request: the figure that moves least when other
# processes share the machine. Every hookgate row is checked: wrk's non-2xx count is printed, and the verdict counts
# are read back from hookgate's /metrics (a row of 401s would measure nothing).
# Figures are only comparable within one run: compare the ratios, not the absolute rps.
#
# Two builds in one run: HOOKGATE_BIN=new HOOKGATE_BASE_BIN=old benches/load/run.sh runs
# every hookgate row with the old binary first (row `base-<key>`), then with the new one,
# back to back, so both see the same machine.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-1}
CONNS=${CONNS:-32}
SINK_WORKERS=${SINK_WORKERS:-1}
EDGE_WORKERS=${EDGE_WORKERS:-auto}
PORT_BASE=${PORT_BASE:-18400}
ROWS=${ROWS:-"direct nginx hg-embedded hg-memory hg-async hg-bare hg-redis nginx-tls hg-tls"}
TOKEN=bench-token-3c1f9a7e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LUA=$HERE/flashduty.lua

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
install_missing() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} (apt-get)" >&2
        sudo_if_needed apt-get update -qq
        sudo_if_needed apt-get install -y -qq "${missing[@]}"
    fi
}
install_missing
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -n "${HOOKGATE_BIN:-}" ]; then
    BIN=$HOOKGATE_BIN   # a binary built elsewhere (e.g. to compare two commits in one run)
else
    echo "building hookgate (release)" >&2
    (cd "$ROOT" && cargo build --release --locked --quiet --bin hookgate)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/hookgate
fi

WORK=$(mktemp -d /tmp/hookgate-load.XXXXXX)
STORES=$WORK
[ -n "${STORE_ROOT:-}" ] && STORES=$(mktemp -d "$STORE_ROOT/hookgate-load-store.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for f in "$WORK"/sink.pid "$WORK"/edge.pid; do
        [ -f "$f" ] && kill -QUIT "$(cat "$f")" 2>/dev/null || true
    done
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK" "$STORES"; else echo "kept $WORK $STORES" >&2; fi
}
trap cleanup EXIT

SINK_PORT=$PORT_BASE
EDGE_PORT=$((PORT_BASE + 1))
EDGE_TLS_PORT=$((PORT_BASE + 2))
HG_PORT=$((PORT_BASE + 10))   # each hookgate row takes the next port

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

render() { # template workers -> stdout
    sed -e "s|@PREFIX@|$WORK|g" -e "s|@SINK_PORT@|$SINK_PORT|g" -e "s|@EDGE_PORT@|$EDGE_PORT|g" \
        -e "s|@EDGE_TLS_PORT@|$EDGE_TLS_PORT|g" -e "s|@TOKEN@|$TOKEN|g" -e "s|@WORKERS@|$2|g" \
        -e "s|@CERT@|$WORK/cert.pem|g" -e "s|@KEY@|$WORK/key.pem|g" "$1"
}
render "$HERE/nginx-sink.conf" "$SINK_WORKERS" >"$WORK/sink.conf"
render "$HERE/nginx-edge.conf" "$EDGE_WORKERS" >"$WORK/edge.conf"
"$NGINX" -p "$WORK" -c "$WORK/sink.conf" -e "$WORK/sink-error.log"
"$NGINX" -p "$WORK" -c "$WORK/edge.conf" -e "$WORK/edge-error.log"

wait_http() { # url
    for _ in $(seq 1 100); do
        curl -ks -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "not answering: $1" >&2
    return 1
}
wait_http "http://127.0.0.1:$SINK_PORT/"
wait_http "http://127.0.0.1:$EDGE_PORT/"

# Latency as wrk prints it (us, ms, s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000
    printf "%.2f", n }'; }

# CPU time (utime + stime, in clock ticks) of the given processes and their children's
# threads: the server's own cost, which other load on the machine inflates far less than
# it inflates latency or throughput.
cpu_ticks() {
    local total=0 p t
    for p in "$@"; do
        t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
nginx_pids() { # pid file -> master and workers
    local master
    master=$(cat "$1")
    echo "$master" $(ps -o pid= --ppid "$master")
}
TICKS=$(getconf CLK_TCK)

RUN_ID=$(date +%s)
declare -A RPS P50 P99 BAD NOTE CPU
CPU_PIDS=""   # the server of the next load() call, for its CPU column
ORDER=()

# load KEY URL: warm-up, then the measured run; fills RPS/P50/P99/BAD for KEY.
load() {
    local key=$1 url=$2 out=$WORK/wrk-$1.txt
    BENCH_TOKEN=$TOKEN BENCH_RUN="${RUN_ID}w${key}" \
        wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$LUA" "$url" >/dev/null 2>&1 || true
    local before
    before=$(cpu_ticks $CPU_PIDS)
    BENCH_TOKEN=$TOKEN BENCH_RUN="${RUN_ID}m${key}" \
        wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$url" >"$out" 2>&1
    local ticks=$(($(cpu_ticks $CPU_PIDS) - before))
    local total
    total=$(awk '/requests in/ {print $1}' "$out")
    CPU[$key]=$(awk -v t="$ticks" -v hz="$TICKS" -v n="${total:-0}" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    RPS[$key]=$(awk '/Requests\/sec:/ {printf "%d", $2}' "$out")
    P50[$key]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99[$key]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    local bad errs
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
    errs=$(awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); print}' "$out")
    BAD[$key]="${bad:-0}${errs:+ (socket errors: $errs)}"
    ORDER+=("$key")
}

# A hookgate config for a row. $1 kind (full|bare), $2 backend, $3 delivery, $4 tls (0|1),
# $5 [store] sync_commits (optional).
hg_config() {
    local kind=$1 backend=$2 delivery=$3 tls=$4 sync=${5:-} dir=$STORES/store-$HG_PORT
    echo "[server]"
    echo "listen = \"127.0.0.1:$HG_PORT\""
    [ "$tls" = 1 ] && echo "tls = { cert = \"$WORK/cert.pem\", key = \"$WORK/key.pem\" }"
    echo "[store]"
    echo "backend = \"$backend\""
    [ -n "$sync" ] && echo "sync_commits = \"$sync\""
    if [ "$backend" = redis ]; then
        echo "url = \"redis://127.0.0.1:$REDIS_PORT/0\""
    else
        echo "path = \"$dir\""
    fi
    echo "[[route]]"
    echo "name = \"flashduty\""
    echo "path = \"/hooks/flashduty\""
    echo "upstream = \"http://127.0.0.1:$SINK_PORT/flashduty\""
    echo "delivery = \"$delivery\""
    if [ "$kind" = full ]; then
        echo "methods = [\"POST\"]"
        echo "allow_ips = [\"127.0.0.1\"]"
        echo "auth = { type = \"bearer\", tokens = [\"$TOKEN\"] }"
        echo "schema = \"flashduty-incident\""
        echo "dedup_key = \"/event_id\""
        echo "order_key = \"/incident/incident_id\""
        echo "order_time = \"/event_time\""
        echo "order_time_unit = \"ms\""
    fi
}

# The verdict counts of route "flashduty" from /metrics, e.g. "forwarded=123456".
verdicts() {
    curl -ks "$1/metrics" | awk -F'[{}]' '/^hookgate_requests_total\{/ {
        split($2, kv, ","); v = ""
        for (i in kv) if (kv[i] ~ /^verdict=/) { v = kv[i]; sub(/verdict=/, "", v); gsub(/"/, "", v) }
        split($3, n, " "); if (n[1] + 0 > 0) printf "%s%s=%d", (c++ ? " " : ""), v, n[1] }'
}

# hg_row KEY kind backend delivery tls [sync_commits]
hg_row() {
    local key=$1 kind=$2 backend=$3 delivery=$4 tls=$5 sync=${6:-}
    HG_PORT=$((HG_PORT + 1))
    hg_config "$kind" "$backend" "$delivery" "$tls" "$sync" >"$WORK/$key.toml"
    local scheme=http
    [ "$tls" = 1 ] && scheme=https
    "${ROW_BIN:-$BIN}" serve --config "$WORK/$key.toml" >"$WORK/$key.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "$scheme://127.0.0.1:$HG_PORT/healthz"
    CPU_PIDS=$pid
    load "$key" "$scheme://127.0.0.1:$HG_PORT/hooks/flashduty"
    NOTE[$key]=$(verdicts "$scheme://127.0.0.1:$HG_PORT")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

want() { [[ " $ROWS " == *" $1 "* ]]; }

# hg KEY kind backend delivery tls: hg_row with $BIN, after the same row with
# $HOOKGATE_BASE_BIN (key base-KEY) when that is set.
hg() {
    # (not for a row with a sync_commits setting, which an older binary may refuse)
    if [ -n "${HOOKGATE_BASE_BIN:-}" ] && [ -z "${6:-}" ]; then
        ROW_BIN=$HOOKGATE_BASE_BIN hg_row "base-$1" "${@:2}"
    fi
    hg_row "$@"
}

CPU_PIDS=$(nginx_pids "$WORK/sink.pid")
want direct && load direct "http://127.0.0.1:$SINK_PORT/flashduty"
CPU_PIDS=$(nginx_pids "$WORK/edge.pid")
want nginx && load nginx "http://127.0.0.1:$EDGE_PORT/hooks/flashduty"
want hg-embedded && hg hg-embedded full embedded sync 0
want hg-deferred && hg hg-deferred full embedded sync 0 deferred
want hg-memory && hg hg-memory full memory sync 0
want hg-async && hg hg-async full embedded async 0
want hg-bare && hg hg-bare bare memory sync 0

# ---- redis row ----------------------------------------------------------------------
# A real redis-server on loopback (persistence off: the row measures the gateway, not
# Redis's disk); `hookgate check` connects to it, so it must run first.
if want hg-redis; then
    REDIS_PORT=$((PORT_BASE + 5))
    if command -v redis-server >/dev/null; then
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            >"$WORK/redis.log" 2>&1 &
        PIDS+=("$!")
        for _ in $(seq 1 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
            sleep 0.1
        done
        hg_config full redis sync 0 >"$WORK/redis-check.toml"
        if "$BIN" check --config "$WORK/redis-check.toml" >"$WORK/redis-check.log" 2>&1; then
            hg hg-redis full redis sync 0
        else
            echo "hg-redis: skipped (hookgate check refused the redis config:" \
                "$(tail -n 1 "$WORK/redis-check.log"))" >&2
        fi
    else
        echo "hg-redis: skipped (no redis-server)" >&2
    fi
fi
# ------------------------------------------------------------------------------------

CPU_PIDS=$(nginx_pids "$WORK/edge.pid")
want nginx-tls && load nginx-tls "https://127.0.0.1:$EDGE_TLS_PORT/hooks/flashduty"
want hg-tls && hg hg-tls full embedded sync 1

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION (after a $WARMUP warm-up), sink: nginx return 200 ($SINK_WORKERS worker), edge: nginx ($EDGE_WORKERS workers)"
echo
echo "| row | target | requests/s | p50 ms | p99 ms | ratio to nginx | server CPU µs/req | non-2xx | hookgate verdicts |"
echo "|---|---|---|---|---|---|---|---|---|"
describe() {
    case $1 in
        base-*) echo "$(describe "${1#base-}"), HOOKGATE_BASE_BIN" ;;
        direct) echo "wrk → sink directly" ;;
        nginx) echo "nginx edge (allowlist + bearer, keepalive upstream) → sink" ;;
        hg-embedded) echo "hookgate sync, full pipeline, embedded store" ;;
        hg-memory) echo "hookgate sync, full pipeline, memory store" ;;
        hg-deferred) echo "hookgate sync, full pipeline, embedded store, sync_commits = deferred" ;;
        hg-async) echo "hookgate async (durable accept), full pipeline, embedded store" ;;
        hg-bare) echo "hookgate bare route, memory store" ;;
        hg-redis) echo "hookgate sync, full pipeline, redis store" ;;
        nginx-tls) echo "nginx edge over TLS → sink" ;;
        hg-tls) echo "hookgate over TLS, sync, full pipeline, embedded store" ;;
    esac
}
for key in "${ORDER[@]}"; do
    ref=nginx
    [[ $key == *tls ]] && ref=nginx-tls
    ratio="-"
    if [ -n "${RPS[$ref]:-}" ] && [ "${RPS[$ref]}" -gt 0 ] && [ "$key" != "$ref" ]; then
        ratio=$(awk -v a="${RPS[$key]}" -v b="${RPS[$ref]}" 'BEGIN {printf "%.2f×", a / b}')
        [ "$ref" = nginx-tls ] && ratio="$ratio (of TLS)"
    fi
    [ "$key" = "$ref" ] && ratio="1.00×"
    echo "| $key | $(describe "$key") | ${RPS[$key]} | ${P50[$key]} | ${P99[$key]} | $ratio | ${CPU[$key]} | ${BAD[$key]} | ${NOTE[$key]:--} |"
done
