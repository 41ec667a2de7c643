#!/bin/sh
# qnic against an earlier revision: builds REV (release) in a tree under /tmp
# and runs the same workloads on both qnic-vmm binaries in one run, printing
# ratios (current/REV). The tree is made with `git archive`, which reads the
# repository without touching its state (no worktree entry, no index, no
# refs): safe while others work in the same clone.
#
# usage: bench/compare-commits.sh REV [BUILD]      (BUILD: current release build, default build-bench)
# env:   WHAT="qtest guest inproc" (default qtest guest; guest needs root and
#        /dev/kvm; inproc needs a REV that has bench/inproc-virtio-net.c)
#        BENCH_ARGS / QTEST_ARGS / INPROC_ARGS: extra arguments for bench.py /
#        qtest-bench.py / inproc-bench.py
set -eu
rev=${1:?usage: bench/compare-commits.sh REV [BUILD]}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$src/build-bench}
what=${WHAT:-qtest guest}
sha=$(git -C "$src" rev-parse --verify "$rev^{commit}")
short=$(echo "$sha" | cut -c1-12)
tree=/tmp/qnic-rev-$short
if [ ! -x "$tree/build/vmm/qnic-vmm" ]; then
    rm -rf "$tree"
    mkdir -p "$tree"
    git -C "$src" archive --format=tar "$sha" | tar -x -C "$tree"
    meson setup "$tree/build" "$tree" -Dbuildtype=release -Dguest=false >/dev/null
    ninja -C "$tree/build" -j2 vmm/qnic-vmm
fi
[ -x "$build/vmm/qnic-vmm" ] || { echo "compare-commits: build $build first (make bench)" >&2; exit 1; }
ninja -C "$build" -j2 >/dev/null
echo "compare-commits: base = $rev ($short) at $tree/build/vmm/qnic-vmm"
echo "compare-commits: current = $(git -C "$src" rev-parse --short HEAD) + working tree at $build/vmm/qnic-vmm"
for w in $what; do
    case $w in
    qtest)
        # the current tree's bench program drives both binaries the same way
        python3 "$src/bench/qtest-bench.py" --build "$build" --impls base,qnic \
            --base "$tree/build/vmm/qnic-vmm" ${QTEST_ARGS:-} ;;
    inproc)
        # each tree's own in-process program (it links that tree's library)
        [ -f "$tree/bench/inproc-virtio-net.c" ] || { echo "compare-commits: $rev has no inproc bench"; continue; }
        ninja -C "$tree/build" -j2 bench/inproc-virtio-net
        python3 "$src/bench/inproc-bench.py" --build "$build" \
            --base "$tree/build/bench/inproc-virtio-net" ${INPROC_ARGS:-} ;;
    guest)
        # the current tree's guest ELF runs on both: the same workload
        python3 "$src/bench/bench.py" --build "$build" --impls base,qnic \
            --base "$tree/build/vmm/qnic-vmm" ${BENCH_ARGS:-} ;;
    esac
done
