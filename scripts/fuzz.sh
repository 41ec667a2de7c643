#!/bin/sh
# Runs the libFuzzer targets of a -Dfuzzing=true build.
#   fuzz.sh build BUILD          build every fuzz-* target of BUILD
#   fuzz.sh smoke BUILD          every target for a fixed number of executions
#                                (FUZZ_SMOKE_RUNS, default per target below)
#   fuzz.sh run BUILD TARGET     one target until interrupted (or FUZZ_SECONDS);
#                                FUZZ_CORPUS_DIR=DIR keeps the corpus it grows
# Every run starts from the checked-in seeds (tests/fuzz/corpus/TARGET, made
# by scripts/fuzz-seeds.py), its dictionary and the regression reproducers,
# with -timeout=10: an input that runs longer is a hang and is reported.
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
    if [ -n "${FUZZ_CORPUS_DIR:-}" ]; then
        corpus=$FUZZ_CORPUS_DIR
        mkdir -p "$corpus"
    else
        corpus=$(mktemp -d)
    fi
    [ -d "$fz/corpus/$t" ] && cp -r "$fz/corpus/$t/." "$corpus/" 2>/dev/null
    dict=""
    [ -f "$fz/dict/$t.dict" ] && dict="-dict=$fz/dict/$t.dict"
    # Reproducers are read as extra seeds; a target may have none yet (git
    # keeps no empty folders).
    regress=""
    [ -d "$fz/regressions/$t" ] && regress="$fz/regressions/$t"
    "$build/tests/fuzz/fuzz-$t" $dict -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$art/$t-" "$@" "$corpus" $regress 2>&1
    rc=$?
    [ -n "${FUZZ_CORPUS_DIR:-}" ] || rm -rf "$corpus"
    return $rc
}

# Executions per target in smoke mode. Measured on this 2-core machine
# shared with other builds (wall time of the whole run 335 s with qtest at
# 100000): device targets 300-1000 inputs/s, multi ~400, qtest ~1000
# (every input builds a machine), opts/l2tpv3/stream far more. These
# defaults keep `make fuzz-smoke` (12 targets) near 4-5 minutes, well
# inside the 10 minute budget even with a loaded machine.
smoke_runs() {
    if [ -n "${FUZZ_SMOKE_RUNS:-}" ]; then
        echo "$FUZZ_SMOKE_RUNS"
        return
    fi
    case "$1" in
    opts|l2tpv3) echo 100000 ;;
    qtest) echo 30000 ;;
    qmp) echo 20000 ;;
    stream) echo 20000 ;;
    state-*) echo 8000 ;;
    *) echo 15000 ;;
    esac
}

case "$mode" in
build)
    build_targets
    ;;
smoke)
    fail=0
    start=$(date +%s)
    for t in $(targets); do
        runs=$(smoke_runs "$t")
        t0=$(date +%s)
        printf 'fuzz-smoke: %s (%s runs)... ' "$t" "$runs"
        log=$(mktemp)
        if run_one "$t" -runs="$runs" -print_final_stats=1 >"$log" 2>&1; then
            [ -n "${FUZZ_RESULTS:-}" ] && echo "{\"name\": \"fuzz-smoke-$t\", \"result\": \"OK\"}" >>"$FUZZ_RESULTS"
            echo "ok $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') execs, \
$(grep -o 'cov: [0-9]*' "$log" | tail -1), $(( $(date +%s) - t0 )) s"
        else
            echo "FAILED"
            [ -n "${FUZZ_RESULTS:-}" ] && echo "{\"name\": \"fuzz-smoke-$t\", \"result\": \"FAIL\"}" >>"$FUZZ_RESULTS"
            tail -40 "$log"
            fail=1
        fi
        rm -f "$log"
    done
    echo "fuzz-smoke: $(( $(date +%s) - start )) s in all"
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
