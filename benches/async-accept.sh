#!/usr/bin/env bash
# Async accept vs sync delivery, same run, same machine (issue 12 figures).
#
#   benches/async-accept.sh [SECONDS_PER_RUN] [PENDING_FOR_DISK_COST] [BODY_PAD_BYTES]
#
# BODY_PAD_BYTES (default 0) adds a "pad" string of that many bytes to every body;
# ONLY_DISK=1 skips the throughput runs.
#
# Builds the release binary, starts nginx (`return 200`) as the upstream and the gateway
# (embedded store in a temp dir, RUST_LOG=warn) on free ports, then drives
# POST /sync and POST /async with wrk (1 thread) at 32 and 256 connections, every
# request with a unique event id (a lua script). Prints rps, p50 and p99 per run, and
# for the async runs the store's fsyncs per second and events per fsync (from
# hookgate_store_commits_total / hookgate_store_committed_events_total and the 202
# count). Last, the disk cost of a pending event: the upstream is made unreachable, the
# outbox is filled to PENDING_FOR_DISK_COST (default 100000) and the store file's size
# is divided by it. Cleans up on exit. Needs: cargo, wrk, nginx, curl, python3.
set -euo pipefail

SECS=${1:-10}
PENDING=${2:-100000}
export PAD=${3:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "building release binary..." >&2
(cd "$ROOT" && cargo build --release --locked --bin hookgate --quiet)
BIN="$ROOT/target/release/hookgate"

# --- upstream: nginx answering 200 ---
UP=$(free_port)
mkdir -p "$TMP/nginx"
cat > "$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$UP;
        location / { return 200 'ok'; }
    }
}
EOF
/usr/sbin/nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)

# --- gateway ---
start_gateway() { # $1 = upstream URL, $2 = max_pending, $3 = retry initial
    GW=$(free_port)
    cat > "$TMP/hookgate.toml" <<EOF
[server]
listen = "127.0.0.1:$GW"
[store]
backend = "embedded"
path = "$TMP/data"
[[route]]
name = "sync"
path = "/sync"
upstream = "$1"
dedup_key = "/id"
[[route]]
name = "async"
path = "/async"
upstream = "$1"
delivery = "async"
dedup_key = "/id"
max_pending = $2
retry = { initial = "$3", max_delay = "1h" }
EOF
    RUST_LOG=warn "$BIN" serve --config "$TMP/hookgate.toml" > /dev/null 2> "$TMP/gateway.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$GW/readyz" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "gateway did not start:" >&2
    cat "$TMP/gateway.log" >&2
    exit 1
}
stop_gateway() {
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}

metric() { # $1 = series name with labels
    curl -fs "http://127.0.0.1:$GW/metrics" | awk -v k="$1" '$1 == k { print $2 }' | head -1
}

cat > "$TMP/unique.lua" <<'EOF'
local n = 0
math.randomseed(os.time())
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
local pad = string.rep("x", tonumber(os.getenv("PAD") or "0"))
request = function()
    n = n + 1
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
        '{"id":"' .. prefix .. '-' .. n .. '","entity":"e' .. (n % 1000) .. '","pad":"' .. pad .. '"}')
end
done = function(summary, latency, requests)
    io.write(string.format("RESULT %d %.0f %.2f %.2f %d %d\n", summary.requests,
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF

if [ "${ONLY_DISK:-0}" != 1 ]; then
start_gateway "http://127.0.0.1:$UP/in" 10000000 1s
# Warm-up: connections, page cache, the upstream pool.
wrk -t1 -c32 -d2s -s "$TMP/unique.lua" "http://127.0.0.1:$GW/sync" > /dev/null
wrk -t1 -c32 -d2s -s "$TMP/unique.lua" "http://127.0.0.1:$GW/async" > /dev/null

printf '%-6s %5s %9s %9s %9s %7s %9s %12s %14s\n' mode conns rps p50_ms p99_ms non2xx sockerr fsyncs_per_s events_per_fsync
for conns in 32 256; do
    for mode in sync async; do
        c0=$(metric hookgate_store_commits_total); a0=$(metric "hookgate_requests_total{route=\"async\",verdict=\"accepted\"}")
        out=$(wrk -t1 -c"$conns" -d"${SECS}s" --timeout 10s -s "$TMP/unique.lua" "http://127.0.0.1:$GW/$mode")
        c1=$(metric hookgate_store_commits_total); a1=$(metric "hookgate_requests_total{route=\"async\",verdict=\"accepted\"}")
        read -r _ reqs rps p50 p99 bad sockerr <<< "$(grep '^RESULT' <<< "$out")"
        if [ "$mode" = async ]; then
            fsyncs=$(python3 -c "print(f'{(${c1:-0}-${c0:-0})/$SECS:.0f}')")
            per=$(python3 -c "d=${c1:-0}-${c0:-0}; print(f'{(${a1:-0}-${a0:-0})/d:.1f}' if d else '-')")
        else
            fsyncs=$(python3 -c "print(f'{(${c1:-0}-${c0:-0})/$SECS:.0f}')"); per=-
        fi
        printf '%-6s %5s %9s %9s %9s %7s %9s %12s %14s\n' "$mode" "$conns" "$rps" "$p50" "$p99" "$bad" "$sockerr" "$fsyncs" "$per"
        # Let the async backlog drain before the next run.
        for _ in $(seq 300); do
            [ "$(metric "hookgate_outbox_pending{route=\"async\"}")" = "0" ] && break
            sleep 0.1
        done
    done
done
echo "(events_per_fsync = 202 answers / durable store transactions during the async run;"
echo " each transaction also carries the worker's settlements of delivered events)"
stop_gateway
fi

# --- disk cost of a pending event ---
rm -rf "$TMP/data"
DEAD=$(free_port) # nothing listens: every attempt fails at once
start_gateway "http://127.0.0.1:$DEAD/in" "$PENDING" 1h
for _ in $(seq 60); do
    wrk -t1 -c64 -d5s -s "$TMP/unique.lua" "http://127.0.0.1:$GW/async" > /dev/null
    pending=$(metric "hookgate_outbox_pending{route=\"async\"}")
    [ "${pending:-0}" -ge "$PENDING" ] && break
done
stop_gateway
size=$(stat -c %s "$TMP/data/hookgate.redb")
body=$(( $(printf '{"id":"%s-%s","entity":"e%s","pad":""}' 1733350000 123456789 12345 | wc -c) + PAD ))
python3 -c "print(f'disk: {$pending} pending events (body ~$body bytes) -> store file {$size/1e6:.1f} MB = {$size/$pending:.0f} bytes per pending event')"
