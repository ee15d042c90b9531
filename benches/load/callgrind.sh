#!/usr/bin/env bash
# Instructions per request of hookgate builds under load (README "Performance"): the
# hg-memory row of run.sh (full pipeline, memory store, sync, the nginx `return 200` sink)
# with the server under callgrind, instrumentation on only while wrk runs.
#
#   benches/load/callgrind.sh                          # target/release/hookgate
#   benches/load/callgrind.sh /tmp/hg-base target/release/hookgate   # several builds
#
# Prints, per binary, the instructions executed (all threads) over the requests wrk
# completed. Instruction counts hardly move with other load on the machine, unlike
# requests/s. Needs valgrind, wrk, nginx, curl.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
PORT_BASE=${PORT_BASE:-18500}
TOKEN=bench-token-3c1f9a7e
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ $# -gt 0 ] || set -- "$ROOT/target/release/hookgate"

WORK=$(mktemp -d /tmp/hookgate-callgrind.XXXXXX)
HG_PID=""
cleanup() {
    [ -n "$HG_PID" ] && kill "$HG_PID" 2>/dev/null || true
    [ -f "$WORK/sink.pid" ] && kill -QUIT "$(cat "$WORK/sink.pid")" 2>/dev/null || true
    if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

SINK_PORT=$PORT_BASE
HG_PORT=$((PORT_BASE + 1))
sed -e "s|@PREFIX@|$WORK|g" -e "s|@SINK_PORT@|$SINK_PORT|g" -e "s|@WORKERS@|1|g" \
    "$HERE/nginx-sink.conf" >"$WORK/sink.conf"
"$NGINX" -p "$WORK" -c "$WORK/sink.conf" -e "$WORK/sink-error.log"
cat >"$WORK/hg.toml" <<TOML
[server]
listen = "127.0.0.1:$HG_PORT"
[store]
backend = "memory"
[[route]]
name = "flashduty"
path = "/hooks/flashduty"
upstream = "http://127.0.0.1:$SINK_PORT/flashduty"
methods = ["POST"]
allow_ips = ["127.0.0.1"]
auth = { type = "bearer", tokens = ["$TOKEN"] }
schema = "flashduty-incident"
dedup_key = "/event_id"
order_key = "/incident/incident_id"
order_time = "/event_time"
order_time_unit = "ms"
TOML

wait_http() {
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "not answering: $1" >&2
    return 1
}

n=0
for bin in "$@"; do
    n=$((n + 1))
    out=$WORK/callgrind.$n.out
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$bin" serve --config "$WORK/hg.toml" >"$WORK/hg.$n.log" 2>&1 &
    HG_PID=$!
    wait_http "http://127.0.0.1:$HG_PORT/healthz"
    # Warm-up (pool connections, allocator, lazy statics), uncounted.
    BENCH_TOKEN=$TOKEN BENCH_RUN="cg$n-$RANDOM-w" wrk -t1 -c"$CONNS" -d3s -s "$HERE/flashduty.lua" \
        "http://127.0.0.1:$HG_PORT/hooks/flashduty" >/dev/null 2>&1 || true
    callgrind_control -i on "$HG_PID" >/dev/null
    BENCH_TOKEN=$TOKEN BENCH_RUN="cg$n-$RANDOM-m" wrk -t1 -c"$CONNS" -d"$DURATION" -s "$HERE/flashduty.lua" \
        "http://127.0.0.1:$HG_PORT/hooks/flashduty" >"$WORK/wrk.$n.txt" 2>&1
    callgrind_control -i off "$HG_PID" >/dev/null
    requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.$n.txt")
    non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.$n.txt")
    kill -INT "$HG_PID"
    wait "$HG_PID" 2>/dev/null || true
    HG_PID=""
    total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(/,/, "", $1); print $1}' | head -n 1)
    awk -v b="$bin" -v t="$total" -v r="$requests" -v bad="${non2xx:-0}" 'BEGIN {
        printf "%s: %d requests (non-2xx %d), %.0f instructions, %.1f k instructions/request\n",
            b, r, bad, t, t / r / 1000 }'
    [ -n "${KEEP:-}" ] && echo "  profile: $out" >&2
done
