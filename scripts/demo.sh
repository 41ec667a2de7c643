#!/bin/sh
# The main job, end to end. With /dev/kvm: qnic-vmm under KVM boots the test
# guest with a virtio-net-pci NIC on -netdev user; the guest takes a DHCP
# lease from libslirp, fetches a 1 MiB file over TFTP and prints its CRC32,
# which this script checks against the host's. Without /dev/kvm (qnic-vmm
# has no CPU emulator): the Linux test guest (scripts/build-linux-guest.sh)
# boots under QEMU TCG with its virtio-net-pci on -netdev vhost-user, and
# qnic-vhost-user-net serves it -netdev user, so Linux's virtio_net driver
# gets its lease and its download through qnic's virtio-net model.
set -eu
build=${1:-build}
vmm=$build/vmm/qnic-vmm
guest=$build/tests/guest/qnic-guest.elf
[ -e /dev/kvm ] || exec sh "$(dirname "$0")/demo-linux-tcg.sh" "$build"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
head -c 1048576 /dev/urandom > "$dir/blob.bin"
want=$(python3 -c "import zlib,sys; print('0x%08x' % zlib.crc32(open(sys.argv[1],'rb').read()))" "$dir/blob.bin")
echo "demo: $vmm -accel kvm -m 64M -netdev user,id=n0,tftp=$dir -device virtio-net-pci,netdev=n0 -kernel $guest"
set +e
# Show the guest's serial output as it comes; keep the VMM's exit status.
{ timeout 120 "$vmm" -accel kvm -m 64M -nodefaults -display none -serial stdio \
    -netdev user,id=n0,tftp="$dir" -device virtio-net-pci,netdev=n0 \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$guest" -append "test=dhcp-tftp file=blob.bin"; echo $? > "$dir/status"; } |
    tee "$dir/serial.log"
status=$(cat "$dir/status")
set -e
got=$(sed -n 's/.*QNIC-GUEST: tftp .*crc32=\(0x[0-9a-f]*\).*/\1/p' "$dir/serial.log" | head -1)
echo "demo: guest exit status $status (1 = pass), guest CRC32 ${got:-none}, host CRC32 $want"
if [ "$status" -eq 1 ] && [ "$got" = "$want" ]; then
    echo "demo: PASS"
else
    echo "demo: FAIL"
    exit 1
fi
