#!/usr/bin/env bash
# The edge and the posts API under load, against nginx serving the same bytes from disk
# (sendfile, open_file_cache), with wrk on loopback: same threads, connections and duration.
# Installs nginx and wrk from Debian when missing. Prints requests/s, p99 and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx
need wrk wrk
need curl curl

cargo build --release --quiet --bin stratus
work=$(mktemp -d)
stratus_pid=""; nginx_pid=""
cleanup() {
  [ -n "$stratus_pid" ] && kill "$stratus_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

stratus() { target/release/stratus "$@" --stage bench --data-dir "$work/data"; }
cat > "$work/hello.md" <<'POST'
---
title: Serverless, on one machine
tags: [stratus, benchmarks]
date: 2026-11-28
---
Stratus renders each post **once**, when it is written, and serves the page from memory.

## Why it is fast

Reading a post costs no rendering and, when the page is hot, no disk. The edge keeps the bytes,
their ETag and their compressed variants in memory, and the generator invalidates exactly the
pages it rewrites.

| layer | work per read |
|---|---|
| edge | a hash lookup |
| generator | nothing |
POST
stratus posts publish "$work/hello.md" >/dev/null

STRATUS_LOG__FILTER=warn target/release/stratus serve --listen 127.0.0.1:0 --stage bench --data-dir "$work/data" \
  >"$work/banner" 2>/dev/null &
stratus_pid=$!
for _ in $(seq 100); do grep -q healthz "$work/banner" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/banner" | head -1)
page=/posts/hello/
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$base$page")" = 200 ] && break; sleep 0.1; done

# nginx serves byte-identical copies of what Stratus serves.
mkdir -p "$work/root/posts/hello" "$work/root/v1/posts"
curl -s "$base$page" -o "$work/root/posts/hello/index.html"
curl -s "$base/v1/posts/hello" -o "$work/root/v1/posts/hello"
# nginx's workers run as an unprivileged user.
chmod 755 "$work" && chmod -R a+rX "$work/root"
port=$(( (RANDOM % 20000) + 30000 ))
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  types { text/html html; application/json json; }
  default_type application/json;
  server {
    listen 127.0.0.1:$port;
    root $work/root;
    etag on;
  }
}
CONF
nginx -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port$page" && break; sleep 0.1; done

run() { # url → "requests/s p99"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx responses from $1" >&2; echo "$out" >&2; cat "$work"/nginx-error.log >&2 2>/dev/null; exit 1; fi
  echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
}
ms() { # wrk latency (e.g. 1.23ms, 850.00us, 1.02s) → milliseconds
  echo "$1" | awk '/us$/ {sub("us",""); print $1/1000; next} /ms$/ {sub("ms",""); print $1; next} /s$/ {sub("s",""); print $1*1000}'
}

measure() { local result; result=$(run "$1") || exit 1; echo "$result"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The machine's speed drifts between runs, so the four measurements are interleaved, ROUNDS
# times, and each is reported as its median.
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  for series in "s_page $base$page" "n_page http://127.0.0.1:$port$page" \
                "s_json $base/v1/posts/hello" "n_json http://127.0.0.1:$port/v1/posts/hello"; do
    read -r name url <<<"$series"
    read -r rps p99 <<<"$(measure "$url")"
    [ -n "$rps" ] || { echo "a measurement failed" >&2; exit 1; }
    echo "$name $rps $(ms "$p99")" >>"$work/results"
  done
  echo "round $round of $ROUNDS done" >&2
done
rps() { awk -v n="$1" '$1 == n { print $2 }' "$work/results" | median; }
p99() { awk -v n="$1" '$1 == n { print $3 }' "$work/results" | median; }
s_page=$(rps s_page); n_page=$(rps n_page); s_json=$(rps s_json); n_json=$(rps n_json)
s_page_p99=$(p99 s_page)ms; n_page_p99=$(p99 n_page)ms; s_json_p99=$(p99 s_json)ms; n_json_p99=$(p99 n_json)ms

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on loopback, $(nproc) cores shared with wrk; medians of $ROUNDS interleaved rounds"
printf '%-34s %12s %10s\n' "" "requests/s" "p99"
printf '%-34s %12s %10s\n' "stratus edge, hot post page" "$s_page" "$s_page_p99"
printf '%-34s %12s %10s\n' "nginx, same bytes from disk" "$n_page" "$n_page_p99"
printf '%-34s %12s %10s\n' "stratus GET /v1/posts/{slug}" "$s_json" "$s_json_p99"
printf '%-34s %12s %10s\n' "nginx, same JSON from disk" "$n_json" "$n_json_p99"
awk -v s="$s_page" -v n="$n_page" -v sp="$(ms "$s_page_p99")" -v np="$(ms "$n_page_p99")" \
  'BEGIN { printf "hot page: %.2fx nginx requests/s (goal >= 0.8), p99 %.2fx nginx (goal <= 2)\n", s/n, sp/np }'
awk -v s="$s_json" -v n="$n_json" 'BEGIN { printf "JSON read: %.2fx nginx requests/s (goal >= 0.6)\n", s/n }'
