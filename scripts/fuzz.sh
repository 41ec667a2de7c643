#!/bin/sh
# Runs the libFuzzer targets of a -Dfuzzing=true build.
#   fuzz.sh smoke BUILD          every target for a fixed number of executions
#   fuzz.sh run BUILD TARGET     one target until interrupted (or FUZZ_SECONDS)
# Crashes, leaks and timeouts are written to tests/fuzz/artifacts/; turn each
# into a reproducer under tests/fuzz/regressions/TARGET/ once fixed.
set -u
mode=$1
build=$2
src=$(cd "$(dirname "$0")/.." && pwd)
fz=$src/tests/fuzz
art=$fz/artifacts
mkdir -p "$art"

targets() {
    for f in "$build"/tests/fuzz/fuzz-*; do
        [ -f "$f" ] && [ -x "$f" ] || continue
        case "$f" in *replay*) continue ;; esac
        basename "$f" | sed 's/^fuzz-//'
    done
}

build_targets() {
    ninja -C "$build" $(cd "$build" && ninja -t targets all 2>/dev/null |
        grep -o '^tests/fuzz/fuzz-[a-z0-9-]*:' | grep -v replay | tr -d :) >/dev/null
}

run_one() {
    t=$1; shift
    corpus=$(mktemp -d)
    [ -d "$fz/corpus/$t" ] && cp -r "$fz/corpus/$t/." "$corpus/" 2>/dev/null
    dict=""
    [ -f "$fz/dict/$t.dict" ] && dict="-dict=$fz/dict/$t.dict"
    "$build/tests/fuzz/fuzz-$t" $dict -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/$t-" "$@" "$corpus" "$fz/regressions/$t" 2>&1
    rc=$?
    rm -rf "$corpus"
    return $rc
}

case "$mode" in
build)
    build_targets
    ;;
smoke)
    runs=${FUZZ_SMOKE_RUNS:-20000}
    fail=0
    for t in $(targets); do
        printf 'fuzz-smoke: %s (%s runs)... ' "$t" "$runs"
        log=$(mktemp)
        if run_one "$t" -runs="$runs" -print_final_stats=1 >"$log" 2>&1; then
            [ -n "${FUZZ_RESULTS:-}" ] && echo "{\"name\": \"fuzz-smoke-$t\", \"result\": \"OK\"}" >>"$FUZZ_RESULTS"
            echo "ok $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') execs, \
$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
        else
            echo "FAILED"
            [ -n "${FUZZ_RESULTS:-}" ] && echo "{\"name\": \"fuzz-smoke-$t\", \"result\": \"FAIL\"}" >>"$FUZZ_RESULTS"
            tail -40 "$log"
            fail=1
        fi
        rm -f "$log"
    done
    exit $fail
    ;;
run)
    t=${3:?usage: fuzz.sh run BUILD TARGET}
    if [ -n "${FUZZ_SECONDS:-}" ]; then
        run_one "$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1
    else
        run_one "$t"
    fi
    ;;
*)
    echo "usage: fuzz.sh smoke|run BUILD [TARGET]" >&2
    exit 2
    ;;
esac
