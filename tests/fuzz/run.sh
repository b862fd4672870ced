#!/usr/bin/env bash
# Builds the libFuzzer targets (clang -fsanitize=fuzzer,address,undefined)
# for job_parse() and config_load_string() and runs each for FUZZ_SECONDS
# (default 60). The seed corpora in tests/fuzz/corpus/{job,config}/ are read
# only; what the fuzzer learns goes to tests/fuzz/corpus-work/ (not in git).
# A crashing input is written to tests/fuzz/regressions/{job,config}/, where
# tests/test_job.c and tests/test_config.c replay it on every `make test`:
# commit it with the fix.
#
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh          # both targets
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh job      # one
#   FUZZ_BUILD=/tmp/fz FUZZ_JOBS=1 ...               # elsewhere / in parallel
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build/fuzz}
targets=("$@")
((${#targets[@]})) || targets=(job config)

command -v clang >/dev/null || { echo "fuzz: clang is missing (apt-get install clang)" >&2; exit 1; }
pkgs="hiredis jansson inih libpq sqlite3 libcurl libssl libcrypto libpng libsystemd libwebp cairo gobject-2.0 harfbuzz freetype2 libdeflate librsvg-2.0"
cflags="-g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -Ilib -Iinclude -DAQ_VERSION=\"fuzz\" $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lm"
# The whole library: config.c checks backend names against the backend
# tables (storage.c, meta.c), which pull in every backend. The targets still
# only parse; nothing connects anywhere.
lib_src=(lib/*.c)

mkdir -p "$build"
status=0
for t in "${targets[@]}"; do
    case "$t" in job|config) ;; *) echo "fuzz: unknown target '$t' (job, config)" >&2; exit 2 ;; esac
    bin="$build/fuzz_$t"
    echo "== fuzz_$t: building"
    # shellcheck disable=SC2086
    clang $cflags -o "$bin" "tests/fuzz/fuzz_$t.c" "${lib_src[@]}" $libs
    work="tests/fuzz/corpus-work/$t"
    regress="tests/fuzz/regressions/$t"
    mkdir -p "$work" "$regress"
    echo "== fuzz_$t: running ${seconds}s"
    log="$build/fuzz_$t.log"
    set +e
    "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -dict="tests/fuzz/$t.dict" -artifact_prefix="$regress/" -print_final_stats=1 \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    secs=$(grep -E '^stat::total_run_time|Done [0-9]+ runs in' "$log" | tail -1 | grep -oE '[0-9]+ second|[0-9]+$' | head -1 | grep -oE '[0-9]+')
    echo "fuzz_$t: ${execs:-?} executions in ${secs:-$seconds} s, corpus $(ls "$work" | wc -l) inputs, exit $rc"
    if ((rc != 0)); then
        echo "fuzz_$t: FAILED; the input is in $regress/ (log: $log)"
        grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
        status=1
    fi
done
exit $status
