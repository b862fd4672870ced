#!/usr/bin/env bash
# Runs every Check test binary of one or more builds, in order, and prints
# one total in Check's own summary format at the end. Arguments come in pairs:
# BUILD_DIR BIN_DIR (the test binaries and the programs they exercise).
# Each binary's wall time is printed after its summary.
# Exit status is non-zero when any check failed or any binary crashed.
#
# LOAD=N (make test LOAD=2) runs N busy loops beside the suite for its whole
# length, so the tests meet the contended CPUs they will meet on a shared
# machine; the loops are stopped by PID when the script ends, however it ends.
set -uo pipefail
cd "$(dirname "$0")/.."
hogs=()
stop_hogs() {
    local p
    for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${hogs[@]}"; do wait "$p" 2>/dev/null; done
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
load=${LOAD:-0}
case "$load" in ''|*[!0-9]*) echo "run.sh: LOAD must be a number, not '$load'" >&2; exit 2 ;; esac
for ((i = 0; i < load; i++)); do
    bash -c 'while :; do :; done' &
    hogs+=($!)
done
((load > 0)) && echo "== running with $load busy loop(s) beside the suite (pids ${hogs[*]})"
checks=0; failures=0; errors=0; crashed=0
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}
# The emoji artwork as tests/deps.sh fetched it (make install puts it in
# PREFIX/share/avatarq/emoji, where the programs look by default).
[ -d data/emoji/node_modules/@twemoji/svg ] &&
    export AQ_EMOJI_DIR=${AQ_EMOJI_DIR:-$PWD/data/emoji/node_modules/@twemoji/svg}
# ASan's leak checker does not work under ptrace and forks; keep the rest.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
while (($# >= 2)); do
    build=$1 bindir=$2; shift 2
    case "$bindir" in /*) ;; *) bindir="$PWD/$bindir" ;; esac
    export AQ_BIN_DIR="$bindir"
    export AQ_TEST_BIN_DIR="$PWD/$build/testbin" # the worker with test hooks
    case "$build" in /*) dist="$build/dist" ;; *) dist="$PWD/$build/dist" ;; esac
    export AQ_DIST_DIR="$dist"   # the installable library (make dist)
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o|*.d) continue ;; esac
        name=$(basename "$t")
        echo "== $build/$name"
        out=$(mktemp)
        t0=$SECONDS
        timeout 900 "$t" 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        echo "   ($((SECONDS - t0)) s)"
        line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" | tail -1)
        rm -f "$out"
        if [ -z "$line" ]; then
            echo "!! $build/$name ended without a Check summary (exit $rc)"
            crashed=$((crashed + 1)); continue
        fi
        c=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
        e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
        checks=$((checks + c)); failures=$((failures + f)); errors=$((errors + e))
        if ((rc != 0 && f + e == 0)); then
            echo "!! $build/$name exited $rc"
            crashed=$((crashed + 1))
        fi
    done
done
passed=$((checks - failures - errors))
pct=0; ((checks > 0)) && pct=$((100 * passed / checks))
echo
echo "${pct}%: Checks: ${checks}, Failures: ${failures}, Errors: $((errors + crashed))"
echo "${passed} passed, $((failures + errors + crashed)) failed"
((checks > 0 && failures == 0 && errors == 0 && crashed == 0))
