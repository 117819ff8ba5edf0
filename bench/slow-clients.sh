#!/usr/bin/env bash
# Stratus and nginx, each with its default timeouts, under slowhttptest's slow-client attacks:
# slowloris heads (-H) and slow POST bodies (-B). During each attack, wrk measures what new
# visitors get from the blog's hot page, each request on a new connection (Connection: close).
# nginx serves the same page from disk and passes POST /v1/subscribers to Stratus (as a proxy
# in front of an API would). Installs nginx, wrk, slowhttptest and curl from Debian when
# missing. Prints requests/s, errors and p99 per attack, and the ratios.
#
# The attacker and wrk both connect from 127.0.0.1, so Stratus's per-address limit is lifted
# here (every connection would otherwise share one client's 256): this measures the clocks and
# the slots, not the per-client limit, as nginx has no per-client limit by default.
set -euo pipefail
cd "$(dirname "$0")/.."

ATTACK_CONNECTIONS=${ATTACK_CONNECTIONS:-3000}
ATTACK_RATE=${ATTACK_RATE:-200}
ATTACK_SECONDS=${ATTACK_SECONDS:-40}
RAMP_SECONDS=${RAMP_SECONDS:-15}
MEASURE=${MEASURE:-15s}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx
need wrk wrk
need curl curl
need slowhttptest slowhttptest

cargo build --release --quiet --bin stratus
work=$(mktemp -d)
stratus_pid=""; nginx_pid=""; attack_pid=""
cleanup() {
  for pid in "$attack_pid" "$stratus_pid" "$nginx_pid"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

cat > "$work/hello.md" <<'POST'
---
title: Still standing
date: 2026-12-02
---
A page that new visitors keep reading while slow clients knock.
POST
target/release/stratus posts publish "$work/hello.md" --stage bench --data-dir "$work/data" >/dev/null
STRATUS_LOG__FILTER=error STRATUS_SERVER__MAX_CONNECTIONS_PER_ADDRESS=4096 \
  target/release/stratus serve --listen 127.0.0.1:0 --stage bench --data-dir "$work/data" >"$work/banner" 2>/dev/null &
stratus_pid=$!
for _ in $(seq 100); do grep -q healthz "$work/banner" && break; sleep 0.1; done
base=$(grep -o 'http://[0-9.:]*' "$work/banner" | head -1)
page=/posts/hello/
for _ in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$base$page")" = 200 ] && break; sleep 0.1; done

mkdir -p "$work/root${page}"
curl -s "$base$page" -o "$work/root${page}index.html"
chmod 755 "$work" && chmod -R a+rX "$work/root"
port=$(( (RANDOM % 20000) + 30000 ))
# Debian's nginx.conf as shipped: worker_connections 768 and nginx's default timeouts
# (client_header_timeout 60s, client_body_timeout 60s, keepalive_timeout 65s, send_timeout 60s).
cat > "$work/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 768; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  types { text/html html; }
  server {
    listen 127.0.0.1:$port;
    root $work/root;
    location = /v1/subscribers { proxy_pass $base; }
  }
}
CONF
nginx -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port$page" && break; sleep 0.1; done

# wrk's summary → "requests/s errors p99(ms)"; errors are socket errors, timeouts and non-2xx.
visitors() {
  local out
  out=$(wrk -t2 -c16 -d"$MEASURE" --timeout 2s --latency -H "Connection: close" "$1" 2>&1)
  echo "$out" | awk '
    /Requests\/sec/ { rps = $2 }
    /Socket errors/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    /Non-2xx/ { errors += $5 }
    $1 == "99%" { p = $2; if (p ~ /us$/) { sub("us", "", p); p /= 1000 } else if (p ~ /ms$/) { sub("ms", "", p) } else { sub("s", "", p); p *= 1000 } }
    END { printf "%s %d %s\n", rps, errors, (p == "" || rps + 0 == 0 ? "-" : p) }'
}

# Runs one attack on $2 and, once it has ramped up, measures visitors of $3.
under_attack() { # mode url page_url → "requests/s errors p99"
  local mode=$1 url=$2 page_url=$3 extra=()
  [ "$mode" = "-B" ] && extra=(-t POST -s 8192)
  slowhttptest "$mode" -c "$ATTACK_CONNECTIONS" -r "$ATTACK_RATE" -i 5 -x 24 -p 3 -l "$ATTACK_SECONDS" \
    -u "$url" "${extra[@]}" >"$work/attack.log" 2>&1 &
  attack_pid=$!
  sleep "$RAMP_SECONDS"
  local result; result=$(visitors "$page_url")
  wait "$attack_pid" 2>/dev/null || true
  attack_pid=""
  # Let the server shed what the attack left before the next one.
  sleep 5
  echo "$result"
}

echo "slowhttptest -c $ATTACK_CONNECTIONS -r $ATTACK_RATE -i 5 for ${ATTACK_SECONDS}s; after ${RAMP_SECONDS}s, wrk -t2 -c16 -d$MEASURE with Connection: close"
printf '%-44s %12s %8s %10s\n' "" "requests/s" "errors" "p99 ms"
declare -A results
for server in stratus nginx; do
  if [ "$server" = stratus ]; then root=$base; else root=http://127.0.0.1:$port; fi
  read -r rps errors p99 <<<"$(visitors "$root$page")"
  printf '%-44s %12s %8s %10s\n' "$server, no attack" "$rps" "$errors" "$p99"
done
for attack in "-H slowloris heads" "-B slow POST bodies"; do
  read -r mode name <<<"$attack"
  for server in stratus nginx; do
    if [ "$server" = stratus ]; then root=$base; else root=http://127.0.0.1:$port; fi
    target=$root$page
    [ "$mode" = "-B" ] && target=$root/v1/subscribers
    result=$(under_attack "$mode" "$target" "$root$page")
    results[$server$mode]=$result
    read -r rps errors p99 <<<"$result"
    printf '%-44s %12s %8s %10s\n' "$server, $name" "$rps" "$errors" "$p99"
  done
done
for mode in -H -B; do
  read -r s_rps s_err _ <<<"${results[stratus$mode]}"
  read -r n_rps n_err _ <<<"${results[nginx$mode]}"
  awk -v m="$mode" -v s="$s_rps" -v n="$n_rps" -v se="$s_err" -v ne="$n_err" \
    'BEGIN { if (n > 0) printf "%s: stratus serves %.2fx the requests/s of nginx under the same attack (errors %d vs %d)\n", m, s / n, se, ne;
             else printf "%s: nginx served nothing under the attack; stratus %s requests/s (errors %d vs %d)\n", m, s, se, ne }'
done
