#!/bin/sh
# Runs a command where /dev/kvm works, on a machine that has none: boots
# Debian's own kernel (linux-image-amd64) under QEMU TCG with a CPU that has
# AMD SVM and nested paging (-cpu max), loads kvm/kvm_amd there, and runs the
# command chrooted into this machine's own root file system, shared with the
# VM over virtio-9p. QEMU's TCG emulates SVM, so the kernel inside runs real
# KVM guests (each one at TCG speed): qnic-vmm, and QEMU with -accel kvm,
# then work as on a KVM host, with the binaries, Python and test scripts of
# this machine. Guests see a KVM without a PIT they can calibrate against in
# time (the VM is emulated), so Linux guests inside need lpj= and
# tsc=reliable (tests/linux does that).
#
# The root is shared writable (the command may write its build directory or
# logs, as it would outside); the VM mounts its own /proc, /sys, /dev, /tmp
# and /run over it, so nothing of those is shared, except the directories
# under /tmp that the working directory, OUTDIR or an argument lie in.
#
# usage: scripts/nested-kvm.sh OUTDIR [--mem M] [--timeout S] -- CMD [ARG...]
#   OUTDIR  where the VM's initramfs is built (kept, rebuilt when its inputs
#           change) and its console log written (OUTDIR/console.PID.log);
#           several runs may share it at once
# exit status: the command's, or 125 when the VM could not run it (message
# on stderr), 2 when a package is missing (message says which; tests turn
# that into a skip).
set -eu
export LC_ALL=C

usage() { echo "usage: nested-kvm.sh OUTDIR [--mem M] [--timeout S] -- CMD [ARG...]" >&2; exit 125; }
[ $# -ge 1 ] || usage
out=$1; shift
mem=3G; timeout=1800
while [ $# -gt 0 ]; do
    case $1 in
    --mem) mem=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[ $# -ge 1 ] || usage

missing() {
    echo "nested-kvm: $1 (scripts/install-deps.sh installs it)" >&2
    exit 2
}
qemu=${QEMU_BINARY:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || missing "$qemu is not installed"
dpkg-query -W -f='${Status}' linux-image-amd64 2>/dev/null | grep -q "install ok installed" ||
    missing "linux-image-amd64 is not installed"
kpkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | tr ',' '\n' |
       sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
vmlinuz=$(dpkg -L "$kpkg" 2>/dev/null | grep '^/boot/vmlinuz-' | head -1)
[ -n "$vmlinuz" ] && [ -r "$vmlinuz" ] || missing "$kpkg has no readable /boot/vmlinuz-*"
kver=${vmlinuz#/boot/vmlinuz-}
moddir=/lib/modules/$kver
[ -r "$moddir/modules.dep" ] || missing "$moddir/modules.dep is missing"
busybox=/bin/busybox
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" &&
    [ -x "$busybox" ] || missing "busybox-static is not installed"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- the initramfs: busybox, the virtio/9p modules, an init that mounts the
# host's root and hands over to the command (everything else, kvm included,
# comes from the host's root by modprobe) ---
want="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
netfs fscache 9pnet 9pnet_virtio 9p"
stamp_text=$(echo "kernel $kver"; sha256sum "$0" "$busybox" | cut -c1-64)
initrd=$out/initrd.img
if [ -f "$initrd" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp_text" ]; then
    :
else
    # Per process: two runs may share OUTDIR (meson runs tests in parallel).
    root=$out/root.$$
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/host" "$root/orig" "$root/cmd" "$root/modules"
    cp "$busybox" "$root/bin/busybox"
    order=""
    for m in $want; do
        rel=$(sed -n "s|^\(kernel/[^:]*/$m\.ko[^:]*\):.*|\1|p" "$moddir/modules.dep" | head -1)
        [ -n "$rel" ] || missing "module $m not found in $moddir"
        case $rel in
        *.xz) xz -dc "$moddir/$rel" >"$root/modules/$m.ko" ;;
        *.zst) zstd -qdc "$moddir/$rel" >"$root/modules/$m.ko" ;;
        *.gz) gzip -dc "$moddir/$rel" >"$root/modules/$m.ko" ;;
        *) cp "$moddir/$rel" "$root/modules/$m.ko" ;;
        esac
        order="$order $m"
    done
    echo "$order" >"$root/modules/order"
    cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# The nested-KVM VM's init (scripts/nested-kvm.sh): mount the host's root,
# load KVM from it, run /run/nested/cmd.sh in it, print its status, power off.
/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 1 >/proc/sys/kernel/printk
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "nested-kvm: insmod $m failed"; done
fail() { echo "NESTED-KVM-STATUS 125 $*"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /host || fail "cannot mount the host's root"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 cmd /cmd || fail "cannot mount the command share"
# Directories under /tmp that the command uses (its working directory, a
# build tree) are kept aside and come back over the VM's own /tmp.
for d in $(cat /cmd/binds); do
    mkdir -p "/orig$d" && mount --bind "/host$d" "/orig$d" || fail "cannot keep $d"
done
for d in proc sys dev; do mount --bind /$d /host/$d || fail "cannot bind /$d"; done
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
mkdir -p /host/run/nested /host/dev/shm /host/run/netns
mount -t tmpfs shm /host/dev/shm
mount --bind /cmd /host/run/nested || fail "cannot bind the command share"
for d in $(cat /cmd/binds); do
    mkdir -p "/host$d" && mount --bind "/orig$d" "/host$d" || fail "cannot bind $d"
done
chroot /host /sbin/modprobe -a kvm_amd tun veth 2>&1 | sed 's/^/nested-kvm: /'
[ -c /host/dev/kvm ] || fail "no /dev/kvm inside (kvm_amd did not load)"
ip link set lo up 2>/dev/null
chroot /host /bin/sh /run/nested/cmd.sh
echo "NESTED-KVM-STATUS $?"
sync
poweroff -f
EOF
    chmod 755 "$root/init"
    (cd "$root" && find . | sort | cpio -o -H newc --quiet | gzip -n -1) >"$initrd.tmp.$$"
    mv "$initrd.tmp.$$" "$initrd"
    echo "$stamp_text" >"$out/stamp.tmp.$$"
    mv "$out/stamp.tmp.$$" "$out/stamp"
    rm -rf "$root"
fi

# --- the command, as a script on a share of its own ---
cmddir=$out/cmd.$$
rm -rf "$cmddir"
mkdir -p "$cmddir"
# The VM has its own /tmp; the top directories under /tmp that the working
# directory, this OUTDIR and any argument name are shared into it.
tmp_tops() {
    for p in "$@"; do
        case $p in /tmp/?*) r=${p#/tmp/}; echo "/tmp/${r%%/*}" ;; esac
    done
}
tmp_tops "$(pwd)" "$out" "$@" $(env | sed -n 's/^QNIC_[A-Z_]*=//p') | sort -u >"$cmddir/binds"
{
    echo "export QNIC_IN_NESTED_KVM=1"
    echo "cd '$(pwd)' || exit 125"
    echo "export PATH='$PATH'"
    env | grep -E '^(QNIC_|QEMU_|MESON_|HOME=|PYTHON)' | sed "s/'/'\\\\''/g; s/=/='/; s/^/export /; s/\$/'/"
    printf 'exec'
    for a in "$@"; do printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done
    echo
} >"$cmddir/cmd.sh"

# --- the VM: its console is this script's output; the command's status is
# the last NESTED-KVM-STATUS line ---
log=$out/console.$$.log
set +e
timeout "$timeout" "$qemu" -machine pc -accel tcg -cpu max -smp 2 -m "$mem" \
    -nodefaults -display none -no-reboot -serial stdio -bios /usr/share/qemu/qboot.rom \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap \
    -virtfs local,path="$cmddir",mount_tag=cmd,security_model=none \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null | tee "$log"
qrc=$?
set -e
st=$(sed -n 's/.*NESTED-KVM-STATUS \([0-9]*\).*/\1/p' "$log" | tail -1)
rm -rf "$cmddir"
if [ -z "$st" ]; then
    echo "nested-kvm: the VM ended (status $qrc) without running the command to its end" >&2
    exit 125
fi
exit "$st"
