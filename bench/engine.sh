#!/usr/bin/env bash
# bench/engine.sh [BUILD] [FIGURE...]: the worker-engine figures of issue 10,
# avatarq beside BullMQ and bee-queue in the same run on this machine (see
# bench/peers/queue/engine.js for what each figure measures and how):
#   s3       jobs/s with S3 behind a proxy adding 30 ms and 0 ms per request
#   drain    Redis CPU per job and jobs/s draining 20,000 small jobs
#   latency  enqueue -> done p50/p99 at a steady 1,000 jobs/s
#   e2e      10,000 jobs of 128 px end to end on tmpfs (bench_e2e)
# plus the peak RSS of every worker process. Starts its own Redis and S3 test
# server (tests/servers.sh) and stops them, and everything else it started,
# on exit; the node peers are installed here (npm ci from the lock file) when
# missing. AQ_BENCH_CONCURRENCY=N passes AVATARQ_WORKER_CONCURRENCY=N to the
# avatarq workers; AQ_BENCH_ROUNDS=N keeps each system's best of N rounds.
# Prints figures, never passes or fails; bounded to
# AQ_BENCH_ENGINE_TIMEOUT_S (default 120 + 300 per round) seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
build=build
case "${1:-}" in
'' | s3 | drain | latency | e2e) ;;
*) build=$1; shift ;;
esac

peers=bench/peers/queue
if [ ! -d "$peers/node_modules/bullmq" ] || [ ! -d "$peers/node_modules/bee-queue" ]; then
    echo "engine: installing the peer queues (npm ci in $peers)"
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
        echo "engine: skipped: npm ci failed in $peers"
        exit 0
    }
fi
# tests/deps.sh installs the S3 test server; without it the S3 figure is skipped.
[ -d tests/s3/node_modules/@20minutes/s3rver ] || bash tests/deps.sh >/dev/null 2>&1 || true

unset SERVERS_DIR
source tests/servers.sh
engine_pid=
cleanup() {
    [ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null
    [ -n "$engine_pid" ] && wait "$engine_pid" 2>/dev/null
    stop_servers
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers of its own (never the caller's): a clean Redis it may FLUSHALL.
# start_* return 0 even when their wait for the port ran out (a random port
# can be taken meanwhile, e.g. as the local port of some connection): check
# again, and try once more on another port.
unset AQ_BENCH_REDIS_URL AQ_BENCH_S3_ENDPOINT AQ_BENCH_PG_CONNINFO
redis_up() { start_redis 2>/dev/null && wait_port "$REDIS_PORT" 1 2>/dev/null; }
s3_up() { start_s3 bench 2>/dev/null && wait_port "$S3_PORT" 50 2>/dev/null; }
if ! redis_up && ! redis_up; then
    echo "engine: skipped: redis-server did not start: $(tail -3 "$SERVERS_DIR/redis.log")"
    exit 0
fi
export AQ_BENCH_REDIS_URL=$REDIS_URL AQ_BENCH_OWN_REDIS=1
if s3_up || s3_up; then
    export AQ_BENCH_S3_ENDPOINT=$S3_ENDPOINT AQ_BENCH_S3_BUCKET=bench
    export AQ_BENCH_S3_PID=${SERVER_PIDS[-1]} # its CPU: is the store the limit?
else
    echo "engine: S3 test server did not start: $(tail -3 "$SERVERS_DIR/s3.log")"
fi
export AQ_BIN_DIR=${AQ_BIN_DIR:-$PWD/bin}
export AQ_BENCH_E2E_BIN=$PWD/$build/bench/bench_e2e
rounds=${AQ_BENCH_ROUNDS:-1}
[[ $rounds =~ ^[1-9][0-9]?$ ]] || rounds=1
limit=${AQ_BENCH_ENGINE_TIMEOUT_S:-$((120 + 300 * rounds))}
export AQ_BENCH_ENGINE_TIMEOUT_S=$limit

# engine.js stops itself at the limit; timeout is the backstop (+30 s).
timeout -k 5 $((limit + 30)) node "$peers/engine.js" "$@" &
engine_pid=$!
wait "$engine_pid"
engine_pid=
exit 0
