# Shell helpers (sourced by tests/demo.sh and bench/run.sh) that start
# throwaway servers on free loopback ports in temp dirs and stop them by PID.
# Each start_* sets variables the caller uses; stop_servers stops them all.

SERVERS_DIR=${SERVERS_DIR:-$(mktemp -d /tmp/avatarq-servers-XXXXXX)}
SERVER_PIDS=()

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

wait_port() { # PORT [TRIES of 0.1 s]
    for _ in $(seq 1 "${2:-100}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# Sets REDIS_PORT, REDIS_URL.
start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$SERVERS_DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$SERVERS_DIR/redis" \
        --save "" --appendonly no --daemonize no >"$SERVERS_DIR/redis.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_port "$REDIS_PORT"
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
}

# Sets PG_PORT, PG_CONNINFO. PostgreSQL refuses to run as root: run it as
# the postgres user in a directory that user owns.
start_postgres() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$bindir" ] || { echo "PostgreSQL is not installed" >&2; return 1; }
    PG_PORT=$(free_port)
    local dir="$SERVERS_DIR/pg"
    mkdir -p "$dir"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$dir"
        chmod 755 "$SERVERS_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >"$SERVERS_DIR/pg-init.log" 2>&1
    "${as[@]}" "$bindir/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
        -k "$dir" -c fsync=off >"$SERVERS_DIR/pg.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_port "$PG_PORT" 200
    for _ in $(seq 1 100); do
        "$bindir/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1 && break
        sleep 0.1
    done
    PG_CONNINFO="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
}

# Sets S3_PORT, S3_ENDPOINT; bucket "bench" (or $1), keys S3RVER/S3RVER.
start_s3() {
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    [ -f "$here/s3/server.js" ] || { echo "no S3 test server script" >&2; return 1; }
    S3_PORT=$(free_port)
    mkdir -p "$SERVERS_DIR/s3"
    node "$here/s3/server.js" "$S3_PORT" "$SERVERS_DIR/s3" "${1:-bench}" >"$SERVERS_DIR/s3.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_port "$S3_PORT" 200
    S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
}

stop_servers() {
    local pid
    # Every step may find its server already gone: never fail (callers run
    # this from an EXIT trap under set -e, where a failure becomes the
    # script's exit status).
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
    rm -rf "$SERVERS_DIR" || true
}
