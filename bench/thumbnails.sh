#!/usr/bin/env bash
# Thumbnail time for a real 12-megapixel JPEG photograph, Stratus against libvips
# (`vipsthumbnail`, shrink-on-load) and ImageMagick (`convert -thumbnail`), each run as a
# process on the same file; medians over RUNS runs, and the ratios.
#
# The photograph: Debian's mate-backgrounds package, abstract/Elephants_5640x3172.jpg
# (© 2020 Wyng Stancikaite, GPL-2+; taken with a SONY DSC-RX100M4), cropped losslessly with
# jpegtran to 4000×3000 (12.0 MP). As shipped it is quality 100 (12.6 MB), denser than cameras
# write: Huffman decoding, which every tool here must do, is then most of the time. So the same
# picture is measured again re-encoded as the camera's "Extra fine" would be (quality 95, 4:2:2,
# ~6 MB). Installs what it needs from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-15}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need vipsthumbnail libvips-tools
need jpegtran libjpeg-turbo-progs
[ -x /usr/bin/convert-im6.q16 ] || { apt-get update -qq && apt-get install -y -qq imagemagick >/dev/null; }
# The Debian binary itself: a `convert` earlier on PATH may be something else.
imagemagick=/usr/bin/convert-im6.q16

cargo build --release --quiet --bin stratus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq mate-backgrounds 2>/dev/null)
dpkg-deb -x "$work"/mate-backgrounds_*.deb "$work/deb"
photo="$work/as-shipped-q100.jpg"
jpegtran -crop 4000x3000+816+80 -copy all -outfile "$photo" \
  "$work/deb/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg"

median_ms() { # command… → median wall time in milliseconds over RUNS runs
  python3 - "$RUNS" "$@" <<'PY'
import statistics, subprocess, sys, time
runs, command = int(sys.argv[1]), sys.argv[2:]
times = []
for _ in range(runs):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times.append((time.perf_counter() - started) * 1000)
print(f"{statistics.median(times):.1f}")
PY
}

camera="$work/camera-q95.jpg"
"$imagemagick" "$photo" -quality 95 -sampling-factor 2x1 "$camera"

echo "medians of $RUNS runs, $(nproc) cores"
printf '%-24s %-6s %12s %14s %16s %16s %14s\n' photo width stratus vipsthumbnail "convert (IM6)" "stratus/vips" "IM/stratus"
for file in "$photo" "$camera"; do
  label="$(basename "$file" .jpg) ($(( $(stat -c %s "$file") / 1000000 )) MB)"
  for width in 256 1024; do
    s=$(median_ms target/release/stratus thumbnail "$file" "$work/s.jpg" --width "$width")
    v=$(median_ms vipsthumbnail "$file" --size "$width" -o "$work/v.jpg")
    m=$(median_ms "$imagemagick" "$file" -thumbnail "${width}x${width}" "$work/m.jpg")
    ratio_vips=$(awk -v s="$s" -v v="$v" 'BEGIN { printf "%.2fx", s / v }')
    ratio_im=$(awk -v s="$s" -v m="$m" 'BEGIN { printf "%.2fx", m / s }')
    printf '%-24s %-6s %9s ms %11s ms %13s ms %16s %14s\n' "$label" "$width" "$s" "$v" "$m" "$ratio_vips" "$ratio_im"
  done
done
echo "goals: stratus/vips <= 1.2x, IM/stratus >= 3x"

# Memory: every configured thumbnail of the same photograph, four photos at a time.
cargo bench --quiet -p stratus --bench media -- "$photo" 2>/dev/null | tail -3
