#!/usr/bin/env bash
# The S3-compatible endpoint against nginx (GET) and dd (PUT) on the same disk, with real SigV4
# signing: 4 KiB and 64 MiB objects, encryption at rest, memory across a 1 GiB upload. Installs
# nginx from Debian when missing; the figures and ratios come from `cargo bench --bench s3`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
cargo bench -p stratus --bench s3
