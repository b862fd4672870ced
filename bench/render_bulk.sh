#!/usr/bin/env bash
# Offline bulk rendering, whole processes, side by side in one run:
# 2,000 distinct seeds at 256 px into tmpfs, `avatarq render --seeds FILE -d
# DIR` (every core: -j defaults to the CPUs) per style, against the npm peer
# that draws the same kind of picture doing the same (jdenticon for the
# geometric styles, DiceBear fun-emoji and initials through
# @dicebear/converter), each peer once per run. Prints seconds, avatars/s and
# the ratio; never pass/fail.
#   bash bench/render_bulk.sh [BIN_DIR] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin} n=${2:-2000} size=256
peers=bench/peers/render
[ -d "$peers/node_modules/@dicebear/converter" ] ||
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
export AQ_EMOJI_DIR=${AQ_EMOJI_DIR:-$PWD/data/emoji/node_modules/@twemoji/svg}
tmp=$(mktemp -d /dev/shm/aq-bulk.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seq 1 "$n" | sed 's/^/user-/' >"$tmp/seeds"

# Wall seconds of one command (whole process, output into a fresh dir) into
# $secs, the number of files it wrote into $files.
secs=0 files=0
timed() {
    rm -rf "$tmp/out"
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    files=$(find "$tmp/out" -type f | wc -l)
    secs=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
}

declare -A peer_secs=()
peer_for() {
    case $1 in emoji) echo dicebear-fun-emoji ;; initials) echo dicebear-initials ;; *) echo jdenticon ;; esac
}

echo "bulk render: $n distinct seeds at $size px into $(df --output=fstype "$tmp" | tail -1), $(nproc) cores"
printf '%-9s %9s %10s   %-19s %9s %10s %8s\n' style "avatarq s" "avatars/s" peer "peer s" "avatars/s" ratio
for style in pixel classic wave gradient emoji initials; do
    timed "$bindir/avatarq" render --seeds "$tmp/seeds" -d "$tmp/out" --size "$size" --style "$style"
    s=$secs
    [ "$files" = "$n" ] || echo "  ($style: $files files of $n)"
    peer=$(peer_for "$style")
    if [ -z "${peer_secs[$peer]:-}" ]; then
        timed node "$peers/peer.mjs" files "$peer" "$size" "$tmp/seeds" "$tmp/out"
        peer_secs[$peer]=$secs
        [ "$files" = "$n" ] || echo "  ($peer: $files files of $n)"
    fi
    p=${peer_secs[$peer]}
    printf '%-9s %9s %10.0f   %-19s %9s %10.0f %7.1fx\n' "$style" "$s" "$(echo "$n / $s" | bc -l)" \
        "$peer" "$p" "$(echo "$n / $p" | bc -l)" "$(echo "$p / $s" | bc -l)"
done
