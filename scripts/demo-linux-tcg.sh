#!/bin/sh
# `make demo` on a machine without /dev/kvm (scripts/demo.sh hands over to
# this): Linux (Debian's kernel, the test guest of
# scripts/build-linux-guest.sh) boots under QEMU TCG with a virtio-net-pci
# on -netdev vhost-user; qnic-vhost-user-net serves it qnic's virtio-net
# model on a -netdev user (libslirp) with a TFTP directory. The guest takes
# a DHCP lease, fetches a 1 MiB file over TFTP and prints its CRC32, which
# this script checks against the host's.
set -eu
build=${1:-build}
daemon=$build/tools/qnic-vhost-user-net
guestdir=$build/tests/linux/guest
qemu=${QEMU_BINARY:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || { echo "demo: $qemu is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
echo "demo: no /dev/kvm, so qnic-vmm cannot run a guest here; showing qnic's virtio-net to Linux through QEMU TCG instead"
echo "demo: building the Linux test guest into $guestdir (Debian packages, no download)"
sh "$(dirname "$0")/build-linux-guest.sh" "$guestdir"
dir=$(mktemp -d)
dpid=""
cleanup() {
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
head -c 1048576 /dev/urandom > "$dir/blob.bin"
want=$(python3 -c "import zlib,sys; print('%08x' % zlib.crc32(open(sys.argv[1],'rb').read()))" "$dir/blob.bin")
echo "demo: QEMU's part: the CPU (TCG), the PCI transport and virtio-net's vhost-user frontend;" \
     "qnic's part: the virtio-net device model doing every ring operation, and the libslirp backend"
echo "demo: $daemon --socket $dir/vhu.sock --netdev user,id=u0,tftp=$dir"
"$daemon" --socket "$dir/vhu.sock" --once --netdev user,id=u0,tftp="$dir" &
dpid=$!
i=0
while [ ! -S "$dir/vhu.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
# pci=nomsi: QEMU 7.2 under TCG segfaults when a guest enables MSI-X on a
# vhost-user virtio-net (docs/linux-guest.md); INTx avoids it.
append="console=ttyS0 panic=-1 pci=nomsi quiet qnic.plan=dhcp,tftp:blob.bin:$want"
bios=""
[ -e /usr/share/qemu/qboot.rom ] && bios="-bios /usr/share/qemu/qboot.rom"
echo "demo: $qemu -accel tcg -m 512M ... -netdev vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0 -append \"$append\""
set +e
# shellcheck disable=SC2086 # $bios is empty or two words
{ timeout 300 "$qemu" -machine pc -accel tcg -m 512M -nodefaults -display none -no-reboot \
    -serial stdio $bios \
    -object memory-backend-memfd,id=mem,size=512M,share=on -machine memory-backend=mem \
    -chardev socket,id=c0,path="$dir/vhu.sock" -netdev vhost-user,id=n0,chardev=c0 \
    -device virtio-net-pci,netdev=n0 \
    -kernel "$guestdir/vmlinuz" -initrd "$guestdir/initrd.img" -append "$append"
  echo $? > "$dir/status"; } | tee "$dir/serial.log"
status=$(cat "$dir/status")
set -e
lease=$(sed -n 's/.*QNIC-RESULT .*step=dhcp status=ok ip=\([0-9.]*\).*/\1/p' "$dir/serial.log" | head -1)
got=$(sed -n 's/.*QNIC-RESULT .*step=tftp .*crc32=\([0-9a-f]*\).*/\1/p' "$dir/serial.log" | head -1)
echo "demo: QEMU exit status $status, DHCP lease ${lease:-none}, guest CRC32 ${got:-none}, host CRC32 $want"
if [ "$status" -eq 0 ] && [ -n "$lease" ] && [ "$got" = "$want" ] &&
   grep -q 'QNIC-DONE passed=2 failed=0' "$dir/serial.log"; then
    echo "demo: PASS (Linux's virtio_net driver on qnic's virtio-net model)"
else
    echo "demo: FAIL"
    exit 1
fi
