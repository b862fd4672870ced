#!/usr/bin/env bash
# Offline bulk rendering, whole processes, side by side in one run:
# 2,000 distinct seeds at 256 px into tmpfs, `avatarq render --seeds FILE -d
# DIR` (every core: -j defaults to the CPUs) per style, against the npm peer
# that draws the same kind of picture doing the same (jdenticon for the
# geometric styles, DiceBear fun-emoji and initials through
# @dicebear/converter), each peer once per run. Prints wall and CPU seconds
# of both and the ratios; never pass/fail.
# avatarq's runs are short (tenths of a second): each is timed REPEAT times
# (default 5) and the median printed; the peers' runs take seconds and are
# timed once. STYLES="pixel emoji" limits the styles; AQ_BULK_DEBUG=1 prints
# every run's "wall user sys" on stderr.
#   bash bench/render_bulk.sh [BIN_DIR] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-bin} n=${2:-2000} size=256 repeat=${REPEAT:-5}
peers=bench/peers/render
[ -d "$peers/node_modules/@dicebear/converter" ] ||
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
export AQ_EMOJI_DIR=${AQ_EMOJI_DIR:-$PWD/data/emoji/node_modules/@twemoji/svg}
tmp=$(mktemp -d /dev/shm/aq-bulk.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seq 1 "$n" | sed 's/^/user-/' >"$tmp/seeds"

# Wall seconds of one command (whole process, output into a fresh dir) into
# $secs, its CPU seconds (user + system, children included) into $cpu, the
# number of files it wrote into $files: the median of $1 runs (by wall time;
# CPU of the same run), in milliseconds, from bash's own clock. On a busy
# machine wall time says little; CPU time is the fairer measure of work for
# both sides, and the median of several runs keeps both steady from one run
# of this script to the next (a 0.1 s run read to 10 ms moved by 20 %).
secs=0 cpu=0 files=0
timed() {
    local runs=$1 r
    shift
    : >"$tmp/times"
    for ((r = 0; r < runs; r++)); do
        rm -rf "$tmp/out"
        local TIMEFORMAT='%3R %3U %3S'
        { time "$@" >/dev/null 2>&1; } 2>>"$tmp/times"
    done
    [ -z "${AQ_BULK_DEBUG:-}" ] || cat "$tmp/times" >&2
    read -r secs user sys < <(sort -n "$tmp/times" | sed -n "$(((runs + 1) / 2))p")
    cpu=$(echo "$user + $sys" | bc)
    files=$(find "$tmp/out" -type f | wc -l)
}

declare -A peer_secs=() peer_cpu=()
peer_for() {
    case $1 in emoji) echo dicebear-fun-emoji ;; initials) echo dicebear-initials ;; *) echo jdenticon ;; esac
}

echo "bulk render: $n distinct seeds at $size px into $(df --output=fstype "$tmp" | tail -1), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); avatarq: median of $repeat runs"
printf '%-9s %8s %8s   %-19s %8s %8s   %8s %8s\n' style "wall s" "CPU s" peer "wall s" "CPU s" "x wall" "x CPU"
for style in ${STYLES:-pixel classic wave gradient emoji initials}; do
    timed "$repeat" "$bindir/avatarq" render --seeds "$tmp/seeds" -d "$tmp/out" --size "$size" --style "$style"
    s=$secs c=$cpu
    [ "$files" = "$n" ] || echo "  ($style: $files files of $n)"
    peer=$(peer_for "$style")
    if [ -z "${peer_secs[$peer]:-}" ]; then
        timed 1 node "$peers/peer.mjs" files "$peer" "$size" "$tmp/seeds" "$tmp/out"
        peer_secs[$peer]=$secs peer_cpu[$peer]=$cpu
        [ "$files" = "$n" ] || echo "  ($peer: $files files of $n)"
    fi
    p=${peer_secs[$peer]} pc=${peer_cpu[$peer]}
    printf '%-9s %8s %8s   %-19s %8s %8s   %7.1fx %7.1fx\n' "$style" "$s" "$c" "$peer" "$p" "$pc" \
        "$(echo "$p / $s" | bc -l)" "$(echo "$pc / $c" | bc -l)"
done
