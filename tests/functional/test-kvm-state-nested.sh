#!/bin/sh
# Runs tests/unit/test-kvm-state (the KVM side of migration: vCPU, irqchip,
# PIT and clock state round trip, hostile streams, the dirty log) where a
# KVM exists: directly on /dev/kvm, or else inside scripts/nested-kvm.sh
# (about 20 s of boot). Skips (77) with the reason when neither can run.
# usage: test-kvm-state-nested.sh TEST-BINARY SOURCE-DIR OUTDIR
set -u
exe=$1 src=$2 out=$3
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    exec "$exe" --verbose
fi
echo "no usable /dev/kvm: running $exe under scripts/nested-kvm.sh"
sh "$src/scripts/nested-kvm.sh" "$out" --timeout 300 -- "$exe" --verbose
rc=$?
if [ $rc -eq 2 ]; then
    echo "SKIP: nested KVM cannot start here (a package is missing, see above)"
    exit 77
fi
exit $rc
