#!/usr/bin/env bash
# `make demo`: the main job on the default setup (config.ini: local storage
# in ./var/avatars, SQLite in ./var/avatarq.db). Starts a throwaway Redis on a
# free port unless AVATARQ_REDIS_URL is set, runs the worker, enqueues a
# hundred avatars across every style, waits for them, prints the stats and
# where the PNGs and the contact sheet are, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/servers.sh

worker_pid=
cleanup() {
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    stop_servers
}
trap cleanup EXIT

if [ -z "${AVATARQ_REDIS_URL:-}" ]; then
    start_redis
    export AVATARQ_REDIS_URL=$REDIS_URL
    echo "demo: started a throwaway Redis at $REDIS_URL"
fi
ns=$(sed -n 's/^namespace *= *//p' config.ini | head -1); ns=${ns:-avatarq}
rcli() { redis-cli -u "$AVATARQ_REDIS_URL" "$@"; }

# The emoji artwork as tests/deps.sh fetched it (make install puts it where
# the programs look by default).
[ -d data/emoji/node_modules/@twemoji/svg ] &&
    export AQ_EMOJI_DIR=${AQ_EMOJI_DIR:-$PWD/data/emoji/node_modules/@twemoji/svg}

mkdir -p var
bin/avatarq-worker -c config.ini 2>var/demo-worker.log &
worker_pid=$!
echo "demo: worker supervisor pid $worker_pid (log: var/demo-worker.log)"

styles=(pixel classic wave gradient emoji initials)
schemes=(default ocean sunset forest royal pastel vibrant monochrome)
jobs=var/demo-jobs.jsonl
: >"$jobs"
ids=()
for i in $(seq 1 100); do
    style=${styles[$((i % ${#styles[@]}))]}
    scheme=${schemes[$((i % 8))]}
    id="demo-$style-$i"
    ids+=("$id")
    printf '{"v":1,"id":"%s","seed":"user-%d@example.com","style":"%s","scheme":"%s","sizes":[32,64,128,256]}\n' \
        "$id" "$i" "$style" "$scheme" >>"$jobs"
done
# Start from a clean slate for these ids so the wait below is honest.
for id in "${ids[@]}"; do echo "DEL $ns:job:$id"; done | rcli >/dev/null
start=$(date +%s.%N)
bin/avatarq -c config.ini batch "$jobs"

echo "demo: waiting for 100 jobs"
for _ in $(seq 1 600); do
    states=$(for id in "${ids[@]}"; do echo "HGET $ns:job:$id state"; done | rcli)
    finished=$(grep -cE '^(done|dead)$' <<<"$states" || true)
    [ "$finished" -ge 100 ] && break
    sleep 0.1
done
end=$(date +%s.%N)
done_n=$(grep -c '^done$' <<<"$states" || true)
dead_n=$(grep -c '^dead$' <<<"$states" || true)
awk -v d="$done_n" -v x="$dead_n" -v s="$start" -v e="$end" \
    'BEGIN { printf "demo: %d done, %d dead in %.2f s\n", d, x, e - s }'

bin/avatarq -c config.ini sheet -o var/contact-sheet.png
echo
bin/avatarq -c config.ini stats
echo
root=$(sed -n 's/^root *= *//p' config.ini | head -1)
prefix=$(sed -n 's/^prefix *= *//p' config.ini | head -1)
echo "demo: PNGs are in ${root:-./var/avatars}/${prefix:-avatars}/<id>/<size>.png, e.g."
ls "${root:-./var/avatars}/${prefix:-avatars}/demo-pixel-4/" 2>/dev/null | sed "s|^|    ${root:-./var/avatars}/${prefix:-avatars}/demo-pixel-4/|"
echo "demo: metadata in $(sed -n 's/^path *= *//p' config.ini | head -1) (try: bin/avatarq list)"
echo "demo: contact sheet of every style: var/contact-sheet.png"
[ "$done_n" -eq 100 ]
