#!/usr/bin/env bash
# `make bench`: runs every bench/bench_* binary of a build (default build/)
# with throwaway Redis, PostgreSQL and S3 servers, and prints their figures.
# Benchmarks print numbers; they never pass or fail.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
source tests/servers.sh
trap stop_servers EXIT

start_redis && export AQ_BENCH_REDIS_URL=$REDIS_URL
start_postgres && export AQ_BENCH_PG_CONNINFO=$PG_CONNINFO
if start_s3 bench; then
    export AQ_BENCH_S3_ENDPOINT=$S3_ENDPOINT AQ_BENCH_S3_BUCKET=bench
fi
export AQ_BIN_DIR=$PWD/bin
[ -d data/emoji/node_modules/@twemoji/svg ] &&
    export AQ_EMOJI_DIR=${AQ_EMOJI_DIR:-$PWD/data/emoji/node_modules/@twemoji/svg}
# AQ_BENCH_CONCURRENCY=N: every avatarq worker of the benches runs N jobs in
# flight per process ([worker] concurrency); unset, today's default.
if [ -n "${AQ_BENCH_CONCURRENCY:-}" ]; then
    export AVATARQ_WORKER_CONCURRENCY=$AQ_BENCH_CONCURRENCY
fi

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *.o|*.d) continue ;; esac
    echo
    echo "== $(basename "$b")"
    "$b" || echo "($(basename "$b") exited $?)"
done

# avatarq beside BullMQ and bee-queue (issue 10's figures), with servers of
# its own; installs the node peers on first use.
echo
echo "== engine: avatarq vs peers (bench/engine.sh)"
bash bench/engine.sh "$build"
